"""Sphinx configuration: numpydoc docstrings, MyST markdown with math, API from __all__."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import structla  # noqa: E402

project = "structla"
author = "the structla developers"
release = version = structla.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
html_theme = "alabaster"
suppress_warnings = ["myst.header"]


def _write_api_page() -> None:
    """docs/api/index.rst: one autosummary entry per name in ``structla.__all__``."""
    functions, classes, errors = [], [], []
    for name in structla.__all__:
        obj = getattr(structla, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            errors.append(name)
        elif inspect.isclass(obj):
            classes.append(name)
        else:
            functions.append(name)
    lines = ["API reference", "=============", "",
             "Every public name, generated from ``structla.__all__``.", "",
             ".. currentmodule:: structla", ""]
    for title, names in (("Functions", functions), ("Classes", classes),
                         ("Errors and warnings", errors)):
        if names:
            lines += [title, "-" * len(title), "", ".. autosummary::", "   :toctree: generated",
                      "", *(f"   {n}" for n in names), ""]
    (HERE / "api").mkdir(exist_ok=True)
    target = HERE / "api" / "index.rst"
    text = "\n".join(lines)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


_write_api_page()

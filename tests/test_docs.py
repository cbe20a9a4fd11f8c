"""The documentation builds with warnings as errors, and docstring examples run."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import structla

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.skipif(importlib.util.find_spec("sphinx") is None, reason="Sphinx not installed")
def test_sphinx_build_with_warnings_as_errors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _library_modules():
    for info in pkgutil.walk_packages(structla.__path__, "structla."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf in ("_numba", "_cupy", "__main__") or ".tests" in info.name:
            continue
        yield info.name


@pytest.mark.parametrize("module_name", sorted(_library_modules()))
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    for test in finder.find(module, module_name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) failed in {module_name}"

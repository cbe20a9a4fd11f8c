"""Pick the implementation of a routine for the array library of its arguments.

A family ``structla/<family>/`` provides ``_reference.py`` (NumPy/CuPy-generic
maths), and optionally ``_numba.py`` (CPU kernels) and ``_cupy.py`` (GPU
launches). ``implementation(family, name, xp)`` returns ``<family>._numba.<name>``
for NumPy, ``<family>._cupy.<name>`` for CuPy, and ``<family>._reference.<name>``
when no fast path exists. There is no central table: defining the function in the
right module is the registration.

``STRUCTLA_BACKEND=reference`` forces the reference path everywhere (debugging).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["BACKEND_MODULES", "defined_names", "implementation"]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
BACKEND_MODULES = {"reference": "_reference", "numba": "_numba", "cuda": "_cupy"}


def _backend_for(xp: ModuleType) -> str:
    return "cuda" if xp.__name__ == "cupy" else "numba"


@functools.cache
def defined_names(family: str, backend: str) -> frozenset[str]:
    """Public functions defined at top level of ``<family>/<backend module>.py``.

    Read from the source with ``ast``, so asking does not import Numba or CuPy.
    """
    path = PACKAGE_ROOT / family / f"{BACKEND_MODULES[backend]}.py"
    if not path.exists():
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    )


def _module(family: str, backend: str) -> ModuleType:
    return importlib.import_module(f"structla.{family}.{BACKEND_MODULES[backend]}")


def implementation(
    family: str, name: str, xp: ModuleType, *, backend: str | None = None
) -> Callable[..., Any]:
    """The function computing ``name`` of ``family`` for arrays of module ``xp``.

    Parameters
    ----------
    family, name : str
        E.g. ``("tril", "tril_dlr_solve")``.
    xp : module
        ``numpy`` or ``cupy``.
    backend : {"reference", "numba", "cuda"}, optional
        Force one implementation (tests compare them); raises ``LookupError`` if
        that backend does not define ``name``.
    """
    forced = backend or (
        "reference" if os.environ.get("STRUCTLA_BACKEND", "") == "reference" else None
    )
    if forced is not None:
        if name not in defined_names(family, forced):
            raise LookupError(f"structla.{family} has no {forced} implementation of {name!r}")
        return getattr(_module(family, forced), name)
    fast = _backend_for(xp)
    if name in defined_names(family, fast):
        return getattr(_module(family, fast), name)
    if name in defined_names(family, "reference"):
        return getattr(_module(family, "reference"), name)
    raise LookupError(f"structla.{family} defines no implementation of {name!r}")

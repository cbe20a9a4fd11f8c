"""Which array library a call's arguments come from.

NumPy is the fast path: plain ``numpy.ndarray`` arguments (and Python scalars) are
recognised without looking further. Other libraries are recognised by the module
that defines the array's type, which is already in ``sys.modules`` whenever such an
array exists, so nothing is imported just to check.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["array_namespace", "is_cupy_namespace", "library_of", "to_numpy"]

_SCALARS = (int, float, complex, bool, np.generic)

# Libraries structla cannot compute on directly, with the way to bring their arrays in.
_BRIDGED = {
    "torch": "structla.interop (zero-copy DLPack) or tensor.numpy() / cupy.from_dlpack(tensor)",
    "jax": "structla.interop (zero-copy DLPack) or numpy.asarray(array)",
    "jaxlib": "structla.interop (zero-copy DLPack) or numpy.asarray(array)",
    "dask": "dask.array.map_blocks over structla routines, or array.compute()",
}


def library_of(x: Any) -> str:
    """Name of the array library ``x`` belongs to ("numpy", "cupy", "torch", ...).

    Python scalars, lists and NumPy scalars count as "numpy".
    """
    if isinstance(x, np.ndarray) or isinstance(x, _SCALARS) or isinstance(x, list | tuple):
        return "numpy"
    root = type(x).__module__.partition(".")[0]
    if root == "cupy" or root == "cupyx":
        return "cupy"
    if root in _BRIDGED:
        return "jax" if root == "jaxlib" else root
    if hasattr(x, "__array__"):
        return "numpy"
    raise TypeError(f"unsupported argument of type {type(x).__module__}.{type(x).__qualname__}")


def array_namespace(**arguments: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) shared by the named arguments.

    ``None`` arguments are ignored. Raises ``TypeError`` naming the offending
    arguments when they come from different libraries, or from a library that
    structla reaches only through :mod:`structla.interop`.

    Examples
    --------
    >>> import numpy as np
    >>> array_namespace(a=np.ones(3), b=2.0, c=None).__name__
    'numpy'
    """
    first_name = None
    first_library = "numpy"
    for name, value in arguments.items():
        if value is None or isinstance(value, np.ndarray) or isinstance(value, _SCALARS):
            continue
        library = library_of(value)
        if library == "numpy":
            continue
        if library in _BRIDGED:
            raise TypeError(
                f"argument {name!r} is a {library} array; structla computes on NumPy and CuPy "
                f"arrays. Convert it with {_BRIDGED[library]}."
            )
        if first_name is None:
            first_name, first_library = name, library
        elif library != first_library:
            raise TypeError(_mixed_message(first_name, first_library, name, library))
    if first_library == "cupy":
        numpy_args = [
            n for n, v in arguments.items() if isinstance(v, np.ndarray) and v.ndim > 0
        ]
        if numpy_args:
            raise TypeError(_mixed_message(numpy_args[0], "numpy", first_name, "cupy"))
        return sys.modules["cupy"]
    return np


def _mixed_message(name_a: str, lib_a: str, name_b: str, lib_b: str) -> str:
    return (
        f"arguments {name_a!r} ({lib_a}) and {name_b!r} ({lib_b}) come from different array "
        f"libraries; move them to one, e.g. cupy.asarray({name_a if lib_a == 'numpy' else name_b}) "
        f"to compute on the GPU or .get() to compute on the CPU."
    )


def is_cupy_namespace(xp: ModuleType) -> bool:
    """True when ``xp`` is CuPy (checked without importing CuPy)."""
    return xp.__name__ == "cupy"


def to_numpy(x: Any) -> np.ndarray:
    """Copy ``x`` to a NumPy array (a no-op for NumPy input)."""
    if isinstance(x, np.ndarray):
        return x
    if library_of(x) == "cupy":
        return x.get()
    return np.asarray(x)

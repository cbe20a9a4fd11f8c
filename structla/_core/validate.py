"""Argument checks shared by every family: dtypes, shapes, finiteness.

Each failure is a ``ValueError`` (or ``TypeError`` for a wrong kind of object)
that names the argument, states what was expected and what was given.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .namespace import is_cupy_namespace

__all__ = [
    "as_array",
    "check_finite",
    "check_ndim",
    "check_square",
    "checks_finite",
    "compute_dtype",
    "result_dtype",
]

_INEXACT = (np.float16, np.float32, np.float64, np.complex64, np.complex128)


def result_dtype(*arrays: Any, real_only: bool = False) -> np.dtype:
    """The promoted output dtype of the arguments (``None`` entries ignored).

    Booleans and integers promote to float64; the result depends only on the
    dtypes, never on values. float16 stays float16 here; see :func:`compute_dtype`.

    Parameters
    ----------
    *arrays : array_like or dtype or None
    real_only : bool
        Raise ``TypeError`` if the promotion is complex.

    Examples
    --------
    >>> import numpy as np
    >>> result_dtype(np.ones(2, np.int32), np.ones(2, np.float32))
    dtype('float64')
    >>> result_dtype(np.ones(2, np.float32), np.ones(2, np.complex64))
    dtype('complex64')
    """
    dtypes = []
    for a in arrays:
        if a is None:
            continue
        if isinstance(a, np.dtype | type):
            dt = np.dtype(a)
        elif isinstance(a, int | float | complex):
            continue  # Python scalars are weak: they never widen the array dtypes
        else:
            dt = np.dtype(getattr(a, "dtype", None) or np.asarray(a).dtype)
        if dt.kind in "biu":
            dt = np.dtype(np.float64)
        elif dt.kind not in "fc" or dt.type not in _INEXACT:
            raise TypeError(f"unsupported dtype {dt}; use float32, float64, complex64 or complex128")
        dtypes.append(dt)
    if not dtypes:
        out = np.dtype(np.float64)
        scalar_complex = any(isinstance(a, complex) for a in arrays)
        return np.dtype(np.complex128) if scalar_complex else out
    out = np.result_type(*dtypes)
    if any(isinstance(a, complex) for a in arrays) and out.kind == "f":
        out = np.result_type(out, np.complex64)
    if real_only and out.kind == "c":
        raise TypeError("this routine needs real inputs; got a complex dtype")
    return out


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype arithmetic is carried out in: float16 computes in float32."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def as_array(x: Any, name: str, xp: ModuleType, dtype: np.dtype | None = None) -> Any:
    """``x`` as an ``xp`` array of ``dtype`` (no copy when it already is one).

    Never modifies ``x``; the result may share memory with it, so callers that
    write into it must copy first unless an ``overwrite_*`` flag allows it.
    """
    try:
        return xp.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"argument {name!r} could not be converted to an array: {exc}") from None


def check_finite(x: Any, name: str, xp: ModuleType) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity (SciPy's ``check_finite``)."""
    if x is None or x.size == 0:
        return
    if not bool(xp.isfinite(x).all()):
        raise ValueError(
            f"argument {name!r} must not contain infs or NaNs "
            "(pass check_finite=False to skip this check)"
        )


def checks_finite(check_finite: bool | None, xp: ModuleType) -> bool:
    """Whether to check for NaN/infinity: the caller's choice, else on the CPU only.

    On the GPU the check is a host synchronisation, so ``None`` skips it there.
    """
    return (not is_cupy_namespace(xp)) if check_finite is None else bool(check_finite)


def check_ndim(x: Any, name: str, minimum: int, what: str) -> None:
    """Require ``x.ndim >= minimum``; ``what`` describes the expected shape."""
    if x.ndim < minimum:
        raise ValueError(
            f"argument {name!r} must have shape {what} with at least {minimum} dimension(s); "
            f"got shape {tuple(x.shape)}"
        )


def check_square(x: Any, name: str) -> None:
    """Require ``x`` to be a stack of square matrices ``(..., n, n)``."""
    check_ndim(x, name, 2, "(..., n, n)")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"argument {name!r} must be square in its last two dimensions; got shape {tuple(x.shape)}"
        )

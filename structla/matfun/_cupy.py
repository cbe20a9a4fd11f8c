"""GPU path of msign: the reference iteration with its elementwise work fused.

The products are cuBLAS calls in :mod:`structla.matfun._reference` (a stack of one
matrix goes through the 2-D GEMM, float16 on tensor cores). What is left per step
besides the three products is forming ``H = aI + bY + cY²``: five CuPy operations
(and temporaries) in the reference, one kernel here. For a stack of small matrices
(e.g. 256 × 128×128) the step is launch-bound, so this matters there most.
"""

from __future__ import annotations

import functools
from typing import Any

import cupy
import numpy as np

from . import _reference

__all__ = ["msign"]


@functools.cache
def _combine_kernel() -> Any:
    # H = aI + bY + cY² for real Y, Y2 of a stack of n×n matrices; the scalars and the
    # arithmetic are in S (float32 for float16/float32, float64 for float64); the flat
    # index i runs in C order over the contiguous stack (n and i are CuPy's names)
    return cupy.ElementwiseKernel(
        "T Y, T Y2, S a, S b, S c, int64 side",
        "T H",
        """
        const long long r = i % (side * side);
        const S d = (r / side == r % side) ? a : S(0);
        H = T(S(Y) * b + S(Y2) * c + d);
        """,
        "structla_matfun_poly_matrix",
    )


def poly_matrix(row: np.ndarray, Y: Any, Y2: Any, eye: Any) -> Any:
    """``aI + bY + cY²`` in one kernel (real dtypes; complex ones take the reference)."""
    if Y.dtype.kind == "c":
        return _reference.poly_matrix(row, Y, Y2, eye)
    scalar = np.float64 if Y.dtype == np.float64 else np.float32
    a, b, c = (scalar(v) for v in row)
    if Y2 is None:
        Y2, c = Y, scalar(0)
    return _combine_kernel()(Y, Y2, a, b, c, np.int64(Y.shape[-1]))


def msign(M: Any, table: np.ndarray, **options: Any) -> tuple[Any, Any]:
    """:func:`structla.matfun._reference.msign` with the fused ``H`` kernel."""
    return _reference.msign(M, table, combine=poly_matrix, **options)

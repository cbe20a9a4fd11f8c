"""GPU path of the sign method: cuSOLVER/cuBLAS inverses, then matmul-only Newton–Schulz steps.

On the GPU a matrix product costs a small fraction of an inverse, so scaled Newton
runs only until its relative update is below ``NS_SWITCH`` (then ``‖Z² − I‖`` is
well below 1, where Newton–Schulz converges quadratically) and the remaining steps
are ``Z ← Z(3I − Z²)/2``, blockwise, stopped on the measured residual ``‖Z² − I‖``.
Each step synchronises with the host once, for the convergence flags.
"""

from __future__ import annotations

from typing import Any

import cupy

from ._reference import sign_iteration

__all__ = ["sylvester_sign"]

#: Relative Newton update below which the iteration continues with Newton–Schulz.
NS_SWITCH = 0.1

#: From this size on, each matrix is inverted on its own (cuSOLVER getrf/getrs, blocked);
#: below it the whole stack goes to cuBLAS's batched LU, made for many small matrices.
BATCHED_INV_MAX = 128


def _inverse(x: Any) -> Any:
    if x.shape[-1] < BATCHED_INV_MAX:
        return cupy.linalg.inv(x)
    return cupy.stack([cupy.linalg.inv(m) for m in x])


def sylvester_sign(A: Any, B: Any | None, C: Any, *, tol: float, max_iter: int
                   ) -> tuple[Any, dict[str, Any]]:
    """Sign method on CuPy stacks ``(count, n, n)``, ``(count, m, m)`` (or None: Aᴴ), ``(count, n, m)``."""
    # Broadcast operands arrive as stride-0 views; cuBLAS batched products want real strides.
    A = cupy.ascontiguousarray(A)
    B = None if B is None else cupy.ascontiguousarray(B)
    C = cupy.ascontiguousarray(C)
    return sign_iteration(A, B, C, cupy, tol=tol, max_iter=max_iter, ns_switch=NS_SWITCH,
                          inv=_inverse)

"""Readable reference maths for diagonal + low-rank triangular matrices (MATH A, F3–F4).

Written against the array namespace ``xp`` of the inputs, so the same code runs on NumPy
and CuPy; it is the oracle the fast paths are tested against and the fallback where no
fast path exists.

Every function here receives what ``_api.py`` prepared: one flattened batch axis first,
arrays of one compute dtype, the lower-triangular problem only (transposes are reduced to
it by reversing the sequence, see ``_api._reversed``), right-hand sides as matrices, and
``log_decay`` (real, shape ``(B, n)``) or ``None``. ``exp(log_decay[:, i])`` is the factor
of step ``i``: ``Γ_ij = exp(log_decay_{j+1} + ⋯ + log_decay_i)`` for ``i > j``.
"""

from __future__ import annotations

from typing import Any

from .._core.namespace import array_namespace


def _step_factor(xp: Any, log_decay: Any, i: int) -> Any:
    """The factor by which the running state shrinks between row ``i - 1`` and row ``i``."""
    return xp.exp(log_decay[:, i, None, None])


def tril_dlr_solve(diag: Any, q: Any, k: Any, b: Any, log_decay: Any) -> Any:
    """Forward substitution ``T x = b`` with the running state ``z = Σ_{j<i} Γ_ij k_j x_jᵀ`` (A1)."""
    xp = array_namespace(diag=diag, q=q, k=k, b=b, log_decay=log_decay)
    count, n, d = q.shape
    z = xp.zeros((count, d, b.shape[2]), dtype=b.dtype)
    x = xp.empty_like(b)
    for i in range(n):
        if log_decay is not None:
            z = z * _step_factor(xp, log_decay, i)
        x[:, i] = (b[:, i] - xp.einsum("bd,bdm->bm", q[:, i], z)) / diag[:, i, None]
        z = z + k[:, i, :, None] * x[:, i, None, :]
    return x


def tril_dlr_matmul(diag: Any, q: Any, k: Any, x: Any, log_decay: Any) -> Any:
    """``T x`` by the same running state as the solve: ``y_i = λ_i x_i + q_iᵀ z``."""
    xp = array_namespace(diag=diag, q=q, k=k, x=x, log_decay=log_decay)
    count, n, d = q.shape
    z = xp.zeros((count, d, x.shape[2]), dtype=x.dtype)
    y = xp.empty_like(x)
    for i in range(n):
        if log_decay is not None:
            z = z * _step_factor(xp, log_decay, i)
        y[:, i] = diag[:, i, None] * x[:, i] + xp.einsum("bd,bdm->bm", q[:, i], z)
        z = z + k[:, i, :, None] * x[:, i, None, :]
    return y


def log_gamma(log_decay: Any) -> Any:
    """``log Γ`` as a ``(B, n, n)`` array, ``-inf`` on and above the diagonal.

    Differences of one cumulative sum taken in float64, so that a sequence whose decays
    add up to -10⁴ still gives every entry to ~1e-12 relative accuracy; only the exponent
    differences below the diagonal (≤ 0 for decays) are exponentiated.
    """
    xp = array_namespace(log_decay=log_decay)
    n = log_decay.shape[-1]
    g = xp.cumsum(log_decay.astype(xp.float64), axis=-1)
    diff = g[:, :, None] - g[:, None, :]
    lower = xp.tri(n, n, -1, dtype=bool)
    return xp.where(lower, diff, -xp.inf)


def tril_dlr_dense(diag: Any, q: Any, k: Any, log_decay: Any) -> Any:
    """``diag(λ) + tril((Q Kᵀ) ⊙ Γ, -1)``, built densely (O(n²·d))."""
    xp = array_namespace(diag=diag, q=q, k=k, log_decay=log_decay)
    n = q.shape[1]
    a = q @ xp.swapaxes(k, 1, 2)
    if log_decay is None:
        a = a * xp.tri(n, n, -1, dtype=a.real.dtype)
    else:
        a = a * xp.exp(log_gamma(log_decay)).astype(a.real.dtype)
    index = xp.arange(n)
    a[:, index, index] = diag
    return a


def tril_dlr_inv(diag: Any, q: Any, k: Any, log_decay: Any) -> Any:
    """``T⁻¹`` row by row (MATH A5), keeping ``Z = Σ_{j<l} Γ_lj k_j Y[j, :]`` (Θ(n²·d))."""
    xp = array_namespace(diag=diag, q=q, k=k, log_decay=log_decay)
    count, n, d = q.shape
    y = xp.zeros((count, n, n), dtype=q.dtype)
    z = xp.zeros((count, d, n), dtype=q.dtype)
    for row in range(n):
        if log_decay is not None:
            z = z * _step_factor(xp, log_decay, row)
        y[:, row, :row] = -xp.einsum("bd,bdj->bj", q[:, row], z[:, :, :row]) / diag[:, row, None]
        y[:, row, row] = 1 / diag[:, row]
        z = z + k[:, row, :, None] * y[:, row, None, :]
    return y


def ut_transform(k: Any, beta: Any, log_decay: Any) -> Any:
    """``(I + tril((diag(β) K Kᵀ) ⊙ Γ, -1))⁻¹ diag(β)``: the inverse with ``λ = 1``, ``Q = diag(β) K``."""
    xp = array_namespace(k=k, beta=beta, log_decay=log_decay)
    ones = xp.ones(beta.shape, dtype=k.dtype)
    return tril_dlr_inv(ones, beta[:, :, None] * k, k, log_decay) * beta[:, None, :]

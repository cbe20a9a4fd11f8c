"""CPU kernels of the hippo family: the sequential O(N) and O(rNL) recurrences (serial).

Everything else in the family is dense LAPACK, FFT or the cauchy family's kernels,
reached through ``_reference``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core.jit import kernel
from . import _reference

__all__ = ["legs_solve", "ssm_kernel_dplr"]


@kernel
def _legs_solve(v, lam, out):  # pragma: no cover - compiled
    # Serial on purpose: O(N) work per row is far below the cost of waking a thread pool.
    count, N = v.shape
    for c in range(count):
        previous = v[c, 0] * 0
        for n in range(N):
            rn = math.sqrt(2.0 * n + 1.0)
            current = ((1 - lam[c] * n) * previous + rn * v[c, n]) / (1 + lam[c] * (n + 1))
            out[c, n] = (current - previous) / rn
            previous = current


def legs_solve(v: Any, lam: Any) -> Any:
    """``(I − λA) z = v`` for LegS by the recurrence of MATH C1 (see ``_reference``)."""
    v = np.ascontiguousarray(v)
    lam = np.ascontiguousarray(lam, dtype=v.dtype)
    out = np.empty_like(v)
    if v.size:
        _legs_solve(v, lam, out)
    return out


@kernel
def _fold(acc, conj_pairs):  # pragma: no cover - compiled
    """A sum over the stored modes → the sum over the whole system (twice its real part)."""
    if conj_pairs:
        return acc.real * 2 + acc * 0
    return acc


@kernel
def _power_row(Lambda, P, C, dt, length, conj_pairs, out):  # pragma: no cover - compiled
    """``out = C Āᴸ`` with ``Ā = (I − hD)⁻¹(I + hD)``, ``D = diag(Λ) − PᵀP̄``, ``h = Δ/2``.

    One row-vector step is O(rN): ``u = y(I − hD)⁻¹`` by Woodbury with the diagonal
    ``E = I − hΛ``, then ``y = u(I + hD)``. With conj_pairs the stored half stands for the
    whole system: every inner product over all modes is twice the real part of the half sum.
    """
    count, rank, N = P.shape
    for c in range(count):
        h = dt[c] / 2
        inv_e = np.empty(N, dtype=Lambda.dtype)
        for i in range(N):
            inv_e[i] = 1 / (1 - h * Lambda[c, i])
        # M = I + h Pᵀ E⁻¹ P̄ (rank × rank), inverted once per channel by Gauss–Jordan.
        M = np.zeros((rank, 2 * rank), dtype=Lambda.dtype)
        for r in range(rank):
            M[r, rank + r] = 1
            for s in range(rank):
                acc = Lambda[c, 0] * 0
                for i in range(N):
                    acc += P[c, r, i] * np.conj(P[c, s, i]) * inv_e[i]
                M[r, s] = (1.0 if r == s else 0.0) + h * _fold(acc, conj_pairs)
        for r in range(rank):
            pivot = r
            for s in range(r + 1, rank):
                if abs(M[s, r]) > abs(M[pivot, r]):
                    pivot = s
            for s in range(2 * rank):
                M[r, s], M[pivot, s] = M[pivot, s], M[r, s]
            scale = 1 / M[r, r]
            for s in range(2 * rank):
                M[r, s] *= scale
            for q in range(rank):
                if q != r:
                    factor = M[q, r]
                    for s in range(2 * rank):
                        M[q, s] -= factor * M[r, s]
        y = C[c].copy()
        u = np.empty(N, dtype=Lambda.dtype)
        t = np.empty(rank, dtype=Lambda.dtype)
        sol = np.empty(rank, dtype=Lambda.dtype)
        for _ in range(length):
            for r in range(rank):
                acc = Lambda[c, 0] * 0
                for i in range(N):
                    acc += P[c, r, i] * y[i] * inv_e[i]
                t[r] = _fold(acc, conj_pairs)
            for r in range(rank):
                acc = Lambda[c, 0] * 0
                for s in range(rank):
                    acc += M[r, rank + s] * t[s]
                sol[r] = h * acc
            for i in range(N):
                acc = y[i]
                for r in range(rank):
                    acc -= np.conj(P[c, r, i]) * sol[r]
                u[i] = acc * inv_e[i]
            for r in range(rank):
                acc = Lambda[c, 0] * 0
                for i in range(N):
                    acc += u[i] * P[c, r, i]
                t[r] = _fold(acc, conj_pairs)
            for i in range(N):
                acc = u[i] * Lambda[c, i]
                for r in range(rank):
                    acc -= t[r] * np.conj(P[c, r, i])
                y[i] = u[i] + h * acc
        for i in range(N):
            out[c, i] = y[i]


def ssm_kernel_dplr(Lambda: Any, P: Any, B: Any, C: Any, dt: Any, length: int, *,
                    conj_pairs: bool, c_tilde: bool, real: bool) -> Any:
    """S4 kernel (MATH B2); the ``C̃ = C(I − Āᴸ)`` correction by an O(rNL) recurrence."""
    if not c_tilde and Lambda.size and length:
        Lambda, P, C = (np.ascontiguousarray(x) for x in (Lambda, P, C))
        powered = np.empty_like(C)
        _power_row(Lambda, P, C, np.ascontiguousarray(dt), length, conj_pairs, powered)
        C = C - powered
    return _reference.generating_kernel(Lambda, P, B, C, dt, length, conj_pairs=conj_pairs,
                                        real=real)

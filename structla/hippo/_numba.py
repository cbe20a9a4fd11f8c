"""CPU kernels of the hippo family: the O(N) and O(rNL) recurrences and the fused S4 spectrum.

Everything else in the family is dense LAPACK or FFT, reached through ``_reference``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core.jit import kernel, prange
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


#: Nodes of one parallel work item: a channel's spectrum is cut into blocks of this many.
NODE_BLOCK = 128
#: Ranks the fused kernel handles (closed-form Woodbury); higher ranks use ``_reference``.
MAX_FUSED_RANK = 2


@kernel
def _cauchy_value(s1, s2, s3, s4, t, conj_pairs):  # pragma: no cover - compiled
    """One Cauchy sum from ``s1..s4 = (c1·er, c1·ei, c2·er, c2·ei)`` (see ``_dplr_coefficients``);
    with conj_pairs still to be multiplied by the node's σ²."""
    if conj_pairs:
        return complex(-s1 - t * s4, t * s3 - s2)
    return complex(s1 - s4, s2 + s3)


@kernel
def _woodbury(ks, j, scale, rank):  # pragma: no cover - compiled
    """``k₀₀ − k₀₁(I + k₁₁)⁻¹k₁₀`` with the sums ``k_uv = scale·ks[j, u(r+1) + v]``, rank ≤ 2
    (Cramer's rule)."""
    k00 = scale * ks[j, 0]
    if rank == 0:
        return k00
    if rank == 1:
        return k00 - (scale * ks[j, 1]) * (scale * ks[j, 2]) / (1.0 + scale * ks[j, 3])
    k01, k02, k10, k20 = (scale * ks[j, 1], scale * ks[j, 2], scale * ks[j, 3],
                          scale * ks[j, 6])
    m00, m01 = 1.0 + scale * ks[j, 4], scale * ks[j, 5]
    m10, m11 = scale * ks[j, 7], 1.0 + scale * ks[j, 8]
    det = m00 * m11 - m01 * m10
    x0 = (m11 * k10 - m01 * k20) / det
    x1 = (m00 * k20 - m10 * k10) / det
    return k00 - k01 * x0 - k02 * x1


@kernel(parallel=True)
def _dplr_spectrum(pole_re, pole_im, c1, c2, tangent, scale, skip, conj_pairs,
                   out):  # pragma: no cover - compiled
    """``out[c, l] = (1 + iτ_l)·[k₀₀ − k₀₁(I + k₁₁)⁻¹k₁₀]`` at ``g = iτ_l·scale[c]`` (MATH B2).

    Work items are (channel, block of NODE_BLOCK nodes). Nodes go two at a time: one
    vectorised pass over the stored poles builds the reciprocals of both (one division per
    conjugate pair), then each of the ``(r+1)²`` Cauchy sums is eight real dot products with
    the coefficients ``c1, c2`` (structure of arrays; each coefficient load serves both nodes).
    Node ``skip`` (the Nyquist node) is left to the caller.
    """
    count, sums, M = c1.shape
    rank = 1 if sums == 4 else (2 if sums == 9 else 0)
    nodes = tangent.shape[0]
    blocks = (nodes + NODE_BLOCK - 1) // NODE_BLOCK
    for job in prange(count * blocks):
        c = job // blocks
        start = (job % blocks) * NODE_BLOCK
        stop = min(nodes, start + NODE_BLOCK)
        er = np.empty((2, M))
        ei = np.empty((2, M))
        ks = np.empty((2, sums), dtype=np.complex128)
        rescale = np.empty(2)
        for first in range(start, stop, 2):
            # An odd block end evaluates its last node twice (the copy is not stored).
            second = min(first + 1, stop - 1)
            t0 = tangent[first] * scale[c]
            t1 = tangent[second] * scale[c]
            for j in range(2):
                # er + i·ei = 1/(g − λ_i), or with conj_pairs 1/(σ²(g − λ_i)(g − λ̄_i)) at g = it:
                # the pair's denominator λr² − (t − λi)(t + λi) − 2iλr·t, in factored form (no
                # cancellation near t = λi), grows like t², so it is scaled by σ² = 1/max(1, |t|)²
                # (undone in _woodbury). Written inline: a helper call stops vectorisation.
                t = t0 if j == 0 else t1
                lr, li, x, y = pole_re[c], pole_im[c], er[j], ei[j]
                sigma = 1.0 / max(1.0, abs(t)) if conj_pairs else 1.0
                rescale[j] = sigma * sigma
                if conj_pairs:
                    ts = t * sigma
                    tss = ts * sigma
                    for i in range(M):
                        d1 = ts - li[i] * sigma
                        d2 = ts + li[i] * sigma
                        rs = lr[i] * sigma
                        dr = rs * rs - d1 * d2
                        di = 2.0 * lr[i] * tss
                        w = 1.0 / (dr * dr + di * di)
                        x[i] = dr * w
                        y[i] = di * w
                else:
                    for i in range(M):
                        dr = -lr[i]
                        di = t - li[i]
                        w = 1.0 / (dr * dr + di * di)
                        x[i] = dr * w
                        y[i] = -di * w
            x0, y0, x1, y1 = er[0], ei[0], er[1], ei[1]
            for k in range(sums):
                a = c1[c, k]
                b = c2[c, k]
                p1 = p2 = p3 = p4 = 0.0
                q1 = q2 = q3 = q4 = 0.0
                for i in range(M):
                    p1 += a[i] * x0[i]
                    p2 += a[i] * y0[i]
                    p3 += b[i] * x0[i]
                    p4 += b[i] * y0[i]
                    q1 += a[i] * x1[i]
                    q2 += a[i] * y1[i]
                    q3 += b[i] * x1[i]
                    q4 += b[i] * y1[i]
                ks[0, k] = _cauchy_value(p1, p2, p3, p4, t0, conj_pairs)
                ks[1, k] = _cauchy_value(q1, q2, q3, q4, t1, conj_pairs)
            for j in range(min(2, stop - first)):
                l = first + j
                if l != skip:
                    out[c, l] = complex(1.0, tangent[l]) * _woodbury(ks, j, rescale[j], rank)


def _dplr_coefficients(Lambda: Any, P: Any, B: Any, Ct: Any, *, conj_pairs: bool):
    """Real numerator coefficients ``(c1, c2)`` (count, (r+1)², M) of the fused spectrum.

    The sums are ``k_uv = Σ_i a_i/(g − λ_i)`` with ``a = u·v``, u ∈ (C̃, P̄₀, …), v ∈ (B, P₀, …).
    Without conj_pairs ``c1 + i·c2 = a``. With conj_pairs a pair contributes
    ``a/(g − λ) + ā/(g − λ̄) = (2Re(a)·g − 2Re(a λ̄)) / ((g − λ)(g − λ̄))``:
    ``c1 = 2Re(a λ̄)``, ``c2 = 2Re(a)``.
    """
    left = np.concatenate([Ct[:, None, :], P.conj()], axis=1)
    right = np.concatenate([B[:, None, :], P], axis=1)
    count, terms, M = left.shape
    a = (left[:, :, None, :] * right[:, None, :, :]).reshape(count, terms * terms, M)
    if conj_pairs:
        return 2 * (a * Lambda.conj()[:, None, :]).real, 2 * a.real
    return np.ascontiguousarray(a.real), np.ascontiguousarray(a.imag)


def generating_kernel(Lambda: Any, P: Any, B: Any, Ct: Any, dt: Any, length: int, *,
                      conj_pairs: bool, real: bool) -> Any:
    """``K̄ = IFFT(K̂)`` like ``_reference.generating_kernel``, the spectrum by one fused kernel.

    Computed in float64 whatever the input precision (one compiled signature); the result is
    cast back to the compute dtype.
    """
    count, rank, _ = P.shape
    if rank > MAX_FUSED_RANK or length == 0 or count == 0:
        return _reference.generating_kernel(Lambda, P, B, Ct, dt, length,
                                            conj_pairs=conj_pairs, real=real)
    real_dtype, dtype = Lambda.real.dtype, Lambda.dtype
    nodes = length // 2 + 1 if real else length
    Lambda, P, B, Ct = (x.astype(np.complex128, copy=False) for x in (Lambda, P, B, Ct))
    c1, c2 = _dplr_coefficients(Lambda, P, B, Ct, conj_pairs=conj_pairs)
    spectrum = np.empty((count, nodes), dtype=np.complex128)
    skip = length // 2 if length % 2 == 0 else -1
    # Fresh writable copies: one compiled signature, whatever the caller's flags.
    _dplr_spectrum(np.array(Lambda.real), np.array(Lambda.imag), c1, c2,
                   _reference.node_tangents(length, nodes), 2 / dt.astype(np.float64), skip,
                   conj_pairs, spectrum)
    if skip >= 0:
        # The Nyquist node ω = −1 (g = ∞) by its limit (Δ/2)·C̃ᵀB (the k₀₀ numerators).
        limit = c2[:, 0].sum(axis=-1) if conj_pairs else (c1[:, 0] + 1j * c2[:, 0]).sum(axis=-1)
        spectrum[:, skip] = dt / 2 * limit
    if real:
        return np.fft.irfft(spectrum, n=length, axis=-1).astype(real_dtype, copy=False)
    return np.fft.ifft(spectrum, n=length, axis=-1).astype(dtype, copy=False)


def ssm_kernel_dplr(Lambda: Any, P: Any, B: Any, C: Any, dt: Any, length: int, *,
                    conj_pairs: bool, c_tilde: bool, real: bool) -> Any:
    """S4 kernel (MATH B2); the ``C̃ = C(I − Āᴸ)`` correction by an O(rNL) recurrence."""
    if not c_tilde and Lambda.size and length:
        Lambda, P, C = (np.ascontiguousarray(x) for x in (Lambda, P, C))
        powered = np.empty_like(C)
        _power_row(Lambda, P, C, np.ascontiguousarray(dt), length, conj_pairs, powered)
        C = C - powered
    return generating_kernel(Lambda, P, B, C, dt, length, conj_pairs=conj_pairs, real=real)

"""CPU kernels for the scan family: one recurrence per (row, column block) or per
(batch, channel), run in parallel, with the state held in a short local vector.

The arguments are normalised by ``_api.py`` (see ``_reference.py`` for the layouts).
``selective_scan`` never forms the ``(batch, D, L, N)`` tensors of the reference:
each task keeps its ``N`` states and streams over time once.
"""

from __future__ import annotations

import cmath
import math
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .._core.jit import FASTMATH, kernel, prange

__all__ = ["linear_scan", "selective_scan"]

_COLUMN_BLOCK = 64


@kernel(parallel=True)
def _linear_scan_kernel(a, b, h0, out, reverse):
    rows, length, cols = out.shape
    # Axes of size 1 in a or b are broadcast: index 0 instead of the loop index.
    pa, ta, qa = a.shape[0] > 1, a.shape[1] > 1, a.shape[2] > 1
    pb, tb, qb = b.shape[0] > 1, b.shape[1] > 1, b.shape[2] > 1
    blocks = (cols + _COLUMN_BLOCK - 1) // _COLUMN_BLOCK
    for task in prange(rows * blocks):
        p = task // blocks
        q0 = (task % blocks) * _COLUMN_BLOCK
        q1 = min(cols, q0 + _COLUMN_BLOCK)
        h = h0[p, q0:q1].copy()
        ar = a[p if pa else 0]
        br = b[p if pb else 0]
        for s in range(length):
            t = length - 1 - s if reverse else s
            at = ar[t if ta else 0]
            bt = br[t if tb else 0]
            for q in range(q0, q1):
                value = at[q if qa else 0] * h[q - q0] + bt[q if qb else 0]
                h[q - q0] = value
                out[p, t, q] = value


def linear_scan(a: Any, b: Any, h0: Any, reverse: bool) -> Any:
    """``h_t = a_t h_{t-1} + b_t`` along axis 1 of contiguous ``(P, L, Q)`` arrays."""
    shape = tuple(n if m == 1 else m for m, n in zip(a.shape, b.shape, strict=True))
    out = np.empty(shape, dtype=h0.dtype)
    if out.size:
        _linear_scan_kernel(a, b, h0, out, reverse)
    return out


@intrinsic
def _bits_as_float32(typingctx, bits):
    """Reinterpret an int32 bit pattern as float32 (builds 2**k without a libm call)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


def fast_exp(x: float) -> float:
    """``exp(x)``; float32 arguments use an inlined polynomial the compiler vectorises."""
    return math.exp(x)


@overload(fast_exp, inline="always", jit_options={"fastmath": set(FASTMATH)})
def _fast_exp_overload(x):
    if x != types.float32:
        return lambda x: math.exp(x)

    def exp32(x):
        # exp(x) = 2**k · √2 · exp(r), k = floor(x / ln2) clipped to the normal exponents
        # −126 … 127, r = x − k·ln2 − ln2/2 in [−ln2/2, ln2/2] (Cody–Waite), degree-6
        # polynomial: ≤ 2 ulp over the float32 range, exact 0 below −87.34, inf above
        # 88.72, NaN in → NaN out. Written with selects only, so the state loop
        # vectorises (libm's expf is a scalar call and would dominate the scan).
        xc = max(x, np.float32(-87.33654))
        xc = min(xc, np.float32(88.72283))
        k = np.floor(xc * np.float32(1.4426950408889634))
        k = min(max(k, np.float32(-126.0)), np.float32(127.0))
        r = xc - k * np.float32(0.693145751953125)
        r = r - k * np.float32(1.428606765330187e-06) - np.float32(0.34657359027997264)
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        p = p * r * r + r + np.float32(1.0)
        scale = _bits_as_float32(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))
        value = p * (np.float32(1.4142135623730951) * scale)
        value = np.float32(0.0) if x < np.float32(-87.33654) else value
        value = np.float32(np.inf) if x > np.float32(88.72283) else value
        return value

    return exp32


# ``zero`` and ``one`` carry the real dtype: a bare ``0.0`` literal would widen float32 to float64.
@kernel
def _softplus(x, zero):
    return max(x, zero) + math.log1p(math.exp(-abs(x)))


@kernel
def _silu(x, one):
    return x / (one + math.exp(-x))


@kernel(parallel=True)
def _selective_scan_real(u, delta, A, Bt, Ct, Dv, z, bias, h0, y, h_last,
                         softplus, has_D, has_z, has_bias, has_h0, zero, one):
    batch, dim, length = u.shape
    nstate = A.shape[1]
    per_group_b = dim // Bt.shape[1]
    per_group_c = dim // Ct.shape[1]
    for task in prange(batch * dim):
        b = task // dim
        d = task % dim
        bb = b if Bt.shape[0] > 1 else 0
        bc = b if Ct.shape[0] > 1 else 0
        gb = d // per_group_b
        gc = d // per_group_c
        h = np.zeros(nstate, dtype=h_last.dtype)
        if has_h0:
            h[:] = h0[b, d]
        for t in range(length):
            dt = delta[b, d, t]
            if has_bias:
                dt += bias[d]
            if softplus:
                dt = _softplus(dt, zero)
            x = u[b, d, t]
            du = dt * x
            tb = t if Bt.shape[2] > 1 else 0
            tc = t if Ct.shape[2] > 1 else 0
            acc = zero
            for n in range(nstate):
                hn = fast_exp(dt * A[d, n]) * h[n] + du * Bt[bb, gb, tb, n]
                h[n] = hn
                acc += hn * Ct[bc, gc, tc, n]
            if has_D:
                acc += Dv[d] * x
            if has_z:
                acc *= _silu(z[b, d, t], one)
            y[b, d, t] = acc
        h_last[b, d] = h


@kernel(parallel=True)
def _selective_scan_complex(u, delta, A, Bt, Ct, Dv, z, bias, h0, y, h_last,
                            softplus, has_D, has_z, has_bias, has_h0, zero, one):
    batch, dim, length = u.shape
    nstate = A.shape[1]
    per_group_b = dim // Bt.shape[1]
    per_group_c = dim // Ct.shape[1]
    for task in prange(batch * dim):
        b = task // dim
        d = task % dim
        bb = b if Bt.shape[0] > 1 else 0
        bc = b if Ct.shape[0] > 1 else 0
        gb = d // per_group_b
        gc = d // per_group_c
        h = np.zeros(nstate, dtype=h_last.dtype)
        if has_h0:
            h[:] = h0[b, d]
        for t in range(length):
            dt = delta[b, d, t]
            if has_bias:
                dt += bias[d]
            if softplus:
                dt = _softplus(dt, zero)
            x = u[b, d, t]
            du = dt * x
            tb = t if Bt.shape[2] > 1 else 0
            tc = t if Ct.shape[2] > 1 else 0
            acc = zero
            for n in range(nstate):
                hn = cmath.exp(dt * A[d, n]) * h[n] + du * Bt[bb, gb, tb, n]
                h[n] = hn
                # Each complex mode stands for a conjugate pair: C h + conj(C h) = 2 Re(C h).
                part = (hn * Ct[bc, gc, tc, n]).real
                acc += part + part
            if has_D:
                acc += Dv[d] * x
            if has_z:
                acc *= _silu(z[b, d, t], one)
            y[b, d, t] = acc
        h_last[b, d] = h


def _time_last(M: Any, dtype: np.dtype) -> Any:
    """``(bB, G, N, LB)`` → contiguous ``(bB, G, LB, N)``: the states of one step adjacent."""
    return np.ascontiguousarray(np.swapaxes(M, 2, 3), dtype=dtype)


def selective_scan(u: Any, delta: Any, A: Any, B: Any, C: Any, D: Any, z: Any,
                   delta_bias: Any, delta_softplus: bool, h0: Any) -> tuple[Any, Any]:
    """Mamba's selective scan; returns ``(y, h_last)`` (see ``_reference.selective_scan``)."""
    real = u.dtype
    state = A.dtype
    batch, dim, _ = u.shape
    y = np.empty(u.shape, dtype=real)
    h_last = np.empty((batch, dim, A.shape[1]), dtype=state)
    if y.size == 0 and h_last.size == 0:
        return y, h_last
    args = (
        np.ascontiguousarray(u), np.ascontiguousarray(delta), np.ascontiguousarray(A),
        _time_last(B, state), _time_last(C, state),
        np.ascontiguousarray(D, dtype=real) if D is not None else np.zeros(1, real),
        np.ascontiguousarray(z, dtype=real) if z is not None else np.zeros((1, 1, 1), real),
        np.ascontiguousarray(delta_bias, dtype=real) if delta_bias is not None else np.zeros(1, real),
        np.ascontiguousarray(h0, dtype=state) if h0 is not None else np.zeros((1, 1, 1), state),
        y, h_last, bool(delta_softplus), D is not None, z is not None, delta_bias is not None,
        h0 is not None, real.type(0), real.type(1),
    )
    if state.kind == "c":
        _selective_scan_complex(*args)
    else:
        _selective_scan_real(*args)
    return y, h_last

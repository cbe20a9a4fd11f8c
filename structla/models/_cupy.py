"""GPU launches of the sequence models (CuPy arrays, ``models.cu``).

Inputs as prepared by ``_api.py``: ``(B, T, d)`` arrays of one compute dtype, log-gates
floored, ``h0`` ``(B, d_v, d_k)``. Everything runs on CuPy's current stream and nothing waits
for the device.

(Gated) DeltaNet by chunks, MATH F3–F4, in three launches plus elementwise work: the UT
transform of every chunk at once (the tril family's ``ut_transform`` kernel), the unmasked
in-chunk scores ``Q Kᵀ`` of every chunk (one batched product, matfun's cuBLAS call), and a
carry kernel (``models.cu``) that runs the chunks of each sequence in order and writes the
outputs; the gates enter as per-step factors that the kernel applies to the rows it reads, so
no gated copy of Q or K is written. ``W = T_c diag(e^g) K`` and ``Ũ = T_c V`` are never formed:
the carry computes ``V_new = T_c (V − diag(e^g) K Sᵀ)`` per chunk, the same product count as
forming ``Ũ``, and saves the ``W`` product and both round trips through memory.
"""

from __future__ import annotations

import functools

import cupy as cp
import numpy as np

from .._core.cuda import get_kernel, launch
from ..matfun._cupy import matmul
from ..tril._cupy import ut_transform

# Mirrors models.cu (DELTA_THREADS, DELTA_TILE, DELTA_CMAX, DELTA_ROWS, DELTA_SLAB, delta_stride);
# delta_chunk_carry_narrow / _wide take DELTA_TILE / 2 and 2 · DELTA_TILE value columns per block.
_THREADS = 256
_TILE = 32
_CMAX = 64
_ROWS = 128
_SLAB = 32
_NULL = np.uint64(0)
_CARRY_KERNELS = {_TILE // 2: "delta_chunk_carry_narrow", _TILE: "delta_chunk_carry",
                  2 * _TILE: "delta_chunk_carry_wide"}


def _empty(shape, dtype):
    """Output allocation (tests replace it by a NaN-filled one to catch unwritten entries)."""
    return cp.empty(shape, dtype=dtype)


def _or_null(x):
    return _NULL if x is None else x


def _carry_shared_bytes(dk, tile, dtype):
    """Shared memory of the carry kernels: the state tile, R and V_new, two staged slabs."""
    hrows = _SLAB * -(-dk // _SLAB)
    stride = _SLAB + 4 if dtype == np.float32 else _SLAB + 1
    return (hrows * tile + 2 * _CMAX * tile + 2 * _ROWS * stride) * dtype.itemsize


@functools.cache
def _multiprocessors(device_id):
    return cp.cuda.Device(device_id).attributes["MultiProcessorCount"]


def _carry_tile(count, dv):
    """Value columns per block of the carry (the sequences run their chunks in order, so blocks
    are the only parallelism): 64 where one block per multiprocessor fills ≥ 90 % of them (half
    the staging work and L2 traffic per column of 32), else 32 where two blocks per
    multiprocessor fill them, else 16."""
    sms = _multiprocessors(cp.cuda.runtime.getDevice())
    if 10 * count * -(-dv // (2 * _TILE)) >= 9 * sms:
        return 2 * _TILE
    return _TILE if count * -(-dv // _TILE) >= sms else _TILE // 2


def _chunks(x, chunk, nc):
    """``(B, T, …)`` → ``(B·nc, chunk, …)``, zero-padded at the end (padded steps are no-ops)."""
    pad = nc * chunk - x.shape[1]
    if pad:
        x = cp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
    return cp.ascontiguousarray(x).reshape(x.shape[0] * nc, chunk, *x.shape[2:])


def delta_chunked(q, k, v, beta, log_alpha, h0, chunk):
    """(Gated) DeltaNet by chunks of ``chunk ≤ 64`` steps, ``d_k ≤ 128``: ``(out, state)``."""
    count, length, dk = q.shape
    dv = v.shape[2]
    dtype = q.dtype
    out = _empty((count, length, dv), dtype)
    state = _empty((count, dv, dk), dtype)
    if length == 0 or state.size == 0:
        out.fill(0)
        state[...] = h0
        return out, state
    nc = -(-length // chunk)
    qc, kc = _chunks(q, chunk, nc), _chunks(k, chunk, nc)
    lc = None if log_alpha is None else _chunks(log_alpha, chunk, nc)
    tc = ut_transform(kc, _chunks(beta, chunk, nc), lc)
    # one strided-batched GEMM with K passed transposed (CuPy's `@` copies Kᵀ first: 0.16 ms here)
    scores = matmul(qc, cp.swapaxes(kc, -1, -2))
    grow = shrink = g = last = None
    if lc is not None:
        # e^{g}, e^{g_last − g} and e^{g_last} per step; the kernel scales the rows it stages
        g = cp.cumsum(lc.astype(cp.float64), axis=-1)
        grow = cp.exp(g).astype(dtype)
        shrink = cp.exp(g[:, -1:] - g).astype(dtype)
        last = cp.exp(g[:, -1]).astype(dtype)
    tile = _carry_tile(count, dv)
    kernel = get_kernel("models", "models.cu", _CARRY_KERNELS[tile], dtype)
    shared = _carry_shared_bytes(dk, tile, dtype)
    launch(kernel, (count, -(-dv // tile)), _THREADS,
           (np.int64(count), np.int32(length), np.int32(nc), np.int32(chunk), np.int32(dk), np.int32(dv),
            kc, qc, tc, scores, cp.ascontiguousarray(v), _or_null(grow), _or_null(shrink), _or_null(g),
            _or_null(last), cp.ascontiguousarray(h0), out, state),
           shared_mem=shared)
    return out, state

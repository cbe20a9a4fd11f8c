"""GPU launches for the scan family (kernels in ``scan.cu``).

Arguments arrive normalised by ``_api.py`` (layouts in ``_reference.py``). Every
kernel runs on CuPy's current stream.
"""

from __future__ import annotations

import math
from typing import Any

import cupy as cp
import numpy as np

from .._core.cuda import get_kernel, launch

__all__ = ["linear_scan", "selective_scan"]

_LINEAR_ITEMS = 8  # steps per thread (LINEAR_ITEMS in scan.cu)
_LINEAR_THREADS = 256  # largest block: chunks of 2048 steps
_SELECTIVE_STATES = 4  # SEL_STATES in scan.cu: states per staged tile
_SELECTIVE_LANE_BYTES = 80  # a lane's 64 bytes of states and 16 of padding in a tile (Sel<T>)
# Two buffers of the B and C tiles: 40 KiB, under the 48 KiB a launch may ask without an opt-in.
_SELECTIVE_SHARED = 2 * 2 * _SELECTIVE_STATES * 32 * _SELECTIVE_LANE_BYTES
# Bits of the kernels' `flags` (SelFlag in scan.cu, SeqFlag in selective.cu).
_SEL_VEC_IO, _SEL_VEC_BC, _SEL_HAS_D, _SEL_HAS_Z, _SEL_HAS_BIAS, _SEL_SOFTPLUS, _SEL_HAS_H0 = \
    1, 2, 4, 8, 16, 32, 64
# selective.cu's sequential kernel (seq_detail there): 4 lanes × 4 states per channel, 8 channels
# a warp, rows of 128 bytes of steps padded to 144, two buffers of (B, C) and of (Δ, u, z) rows.
_SEQUENTIAL_STATES = 16
_SEQUENTIAL_CHANNELS = 8  # 32 / QUARTERS (lanes per channel) of selective.cu
_SEQUENTIAL_ROW_BYTES = 144
_SEQUENTIAL_BUFFERS = 2
_SEQUENTIAL_GROUP = 16  # steps whose partial sums are added at a time
# Where the sequential kernel beats the chunked one (H100, L = 2048, N = 16: 0.25 against
# 0.38 ms at 8 × 1536 channels, 0.17 against 0.14 ms at 2 × 1536): many channels (below, too
# few lanes to keep the GPU busy) and more than 8 states (fewer leave lanes idle: N = 4 took
# 0.24 against 0.18 ms at 8 × 1536).
_SEQUENTIAL_MIN_CHANNELS = 8192
_SEQUENTIAL_MIN_STATES = 9


def _empty(shape: tuple[int, ...], dtype: Any) -> Any:
    """Output allocation (a seam: GPU tests fill outputs with NaN before the kernels write)."""
    return cp.empty(shape, dtype=dtype)


def _rows_scan(a: Any, b: Any, h0: Any, reverse: bool, out: Any) -> None:
    """Scan contiguous ``(rows, L)`` arrays along the last axis into ``out``."""
    rows, length = b.shape
    dtype = b.dtype
    threads = min(_LINEAR_THREADS, 32 * math.ceil(length / (32 * _LINEAR_ITEMS)))
    chunks = math.ceil(length / (threads * _LINEAR_ITEMS))
    if chunks > 65535:
        raise ValueError(f"linear_scan on the GPU supports L up to {65535 * threads * _LINEAR_ITEMS}; "
                         f"got L = {length}")
    grid = (rows, chunks)
    if chunks == 1:
        carry = h0
    else:
        agg_a = cp.empty((rows, chunks), dtype=dtype)
        agg_b = cp.empty((rows, chunks), dtype=dtype)
        launch(get_kernel("scan", "scan.cu", "linear_scan_chunk_reduce", dtype), grid, threads,
               (a, b, np.int64(length), np.int32(reverse), agg_a, agg_b))
        carry = cp.empty((rows, chunks), dtype=dtype)
        launch(get_kernel("scan", "scan.cu", "linear_scan_carry", dtype), math.ceil(rows / 128), 128,
               (agg_a, agg_b, h0, np.int64(rows), np.int32(chunks), carry))
    launch(get_kernel("scan", "scan.cu", "linear_scan_chunk_apply", dtype), grid, threads,
           (a, b, carry, np.int64(length), np.int32(reverse), out))


def linear_scan(a: Any, b: Any, h0: Any, reverse: bool) -> Any:
    """``h_t = a_t h_{t-1} + b_t`` along axis 1 of contiguous ``(P, L, Q)`` arrays.

    Each sequence is split into chunks of up to 2048 steps, one thread block each:
    pass 1 reduces every chunk to one (a, b) pair, pass 2 carries the state across
    the chunks of a row, pass 3 rescans every chunk from its entering state. With
    one chunk per row only pass 3 runs.
    """
    shape = tuple(n if m == 1 else m for m, n in zip(a.shape, b.shape, strict=True))
    a = cp.ascontiguousarray(cp.broadcast_to(a, shape))
    b = cp.ascontiguousarray(cp.broadcast_to(b, shape))
    rows, length, cols = shape
    out = _empty(shape, b.dtype)
    if b.size == 0:
        return out
    if cols == 1:
        _rows_scan(a.reshape(rows, length), b.reshape(rows, length), h0.reshape(rows),
                   reverse, out.reshape(rows, length))
        return out
    # Time must be the contiguous axis of every row: transpose (P, L, Q) → (P·Q, L) and back.
    at = cp.ascontiguousarray(a.transpose(0, 2, 1)).reshape(rows * cols, length)
    bt = cp.ascontiguousarray(b.transpose(0, 2, 1)).reshape(rows * cols, length)
    ot = cp.empty((rows * cols, length), dtype=b.dtype)
    _rows_scan(at, bt, cp.ascontiguousarray(h0).reshape(rows * cols), reverse, ot)
    out[...] = ot.reshape(rows, cols, length).transpose(0, 2, 1)
    return out


def _bc_strides(M: Any, dim: int) -> tuple[np.int64, np.int64, np.int64, np.int64, np.int32]:
    """Element strides (batch, group, state, time) of canonical ``(bB, G, N, LB)`` and D // G."""
    bB, groups, nstate, steps = M.shape
    return (np.int64(groups * nstate * steps if bB > 1 else 0), np.int64(nstate * steps),
            np.int64(steps), np.int64(1 if steps > 1 else 0), np.int32(dim // groups))


def _channels_per_block(dim: int, shared: list[int]) -> int:
    """Warps (channels) per block: ≤ 8, dividing D and every time-varying group size."""
    for warps in (8, 4, 2):
        if dim % warps == 0 and all(per % warps == 0 for per in shared):
            return warps
    return 1


def _sequential_warps(dim: int, shared: list[int]) -> int:
    """Warps per block of the sequential kernel: ≤ 4 of 8 channels, one B/C group a block (0: none)."""
    for warps in (4, 2, 1):
        channels = _SEQUENTIAL_CHANNELS * warps
        if dim % channels == 0 and all(per % channels == 0 for per in shared):
            return warps
    return 0


def _sequential_shared(warps: int, itemsize: int) -> int:
    """Bytes of shared memory of a sequential block (Smem in selective.cu)."""
    bc = _SEQUENTIAL_BUFFERS * 2 * _SEQUENTIAL_STATES * _SEQUENTIAL_ROW_BYTES
    rows = _SEQUENTIAL_BUFFERS * 3 * _SEQUENTIAL_CHANNELS * _SEQUENTIAL_ROW_BYTES  # Δ, u, z
    du = _SEQUENTIAL_CHANNELS * _SEQUENTIAL_ROW_BYTES
    partial = 32 * (_SEQUENTIAL_GROUP * itemsize + 16)
    return bc + warps * (rows + du + partial)


def _aligned(*arrays: Any, length: int) -> bool:
    """16-byte vector access is possible: aligned starts and rows of whole 16-byte packs."""
    return all(x.data.ptr % 16 == 0 for x in arrays) and (length * arrays[0].itemsize) % 16 == 0


def selective_scan(u: Any, delta: Any, A: Any, B: Any, C: Any, D: Any, z: Any,
                   delta_bias: Any, delta_softplus: bool, h0: Any) -> tuple[Any, Any]:
    """Mamba's selective scan on the GPU; returns ``(y, h_last)``.

    With real states, 9 ≤ N ≤ 16, time-varying B and C and at least _SEQUENTIAL_MIN_CHANNELS
    channels: selective.cu's sequential kernel, 4 lanes × 4 states per channel walking the
    whole sequence, blocks of up to 32 channels sharing one B/C group. Otherwise scan.cu's
    chunked kernel: one block per (batch, group of up to 8 channels), each warp scanning one
    channel in chunks of 64 bytes of states per lane (512 steps in float32), the state
    carried between chunks, B and C tiles staged in shared memory for the block. Either way
    one kernel launch and two allocations: no other work is queued.
    """
    batch, dim, length = u.shape
    nstate = A.shape[1]
    real, state_dtype = u.dtype, A.dtype
    y = _empty(u.shape, real)
    if batch * dim == 0 or length == 0:
        state = cp.zeros((batch, dim, nstate), dtype=state_dtype) if h0 is None else \
            cp.array(h0, dtype=state_dtype, order="C", copy=True)
        return y, state
    # Without h0 the kernel only writes the state: no zero fill.
    state = _empty((batch, dim, nstate), state_dtype) if h0 is None else \
        cp.array(h0, dtype=state_dtype, order="C", copy=True)
    B = cp.ascontiguousarray(B, dtype=state_dtype)
    C = cp.ascontiguousarray(C, dtype=state_dtype)
    strides_b, strides_c = _bc_strides(B, dim), _bc_strides(C, dim)
    varying = [M for M in (B, C) if M.shape[3] > 1]
    u, delta = cp.ascontiguousarray(u), cp.ascontiguousarray(delta)
    if z is not None:
        z = cp.ascontiguousarray(z, dtype=real)
    flags = (_SEL_VEC_IO * _aligned(u, delta, y, *(() if z is None else (z,)), length=length)
             + _SEL_VEC_BC * (not varying or _aligned(*varying, length=length))
             + _SEL_HAS_D * (D is not None) + _SEL_HAS_Z * (z is not None)
             + _SEL_HAS_BIAS * (delta_bias is not None) + _SEL_SOFTPLUS * bool(delta_softplus)
             + _SEL_HAS_H0 * (h0 is not None))
    # Arrays of absent options are never read: u stands in for them.
    inputs = (
        u, delta, cp.ascontiguousarray(A), B, C,
        u if D is None else cp.ascontiguousarray(D, dtype=real),
        u if z is None else z,
        u if delta_bias is None else cp.ascontiguousarray(delta_bias, dtype=real),
        state, y, np.int32(dim), np.int64(length), np.int32(nstate),
    )
    sequential = (state_dtype.kind == "f" and _SEQUENTIAL_MIN_STATES <= nstate <= _SEQUENTIAL_STATES
                  and len(varying) == 2 and batch * dim >= _SEQUENTIAL_MIN_CHANNELS)
    warps = _sequential_warps(dim, [dim // B.shape[1], dim // C.shape[1]]) if sequential else 0
    if warps:
        kernel = get_kernel("scan", "selective.cu", "selective_scan_sequential", state_dtype)
        shared = _sequential_shared(warps, state_dtype.itemsize)
        (sb_b, sg_b, _, _, per_b), (sb_c, sg_c, _, _, per_c) = strides_b, strides_c
        launch(kernel, (dim // (_SEQUENTIAL_CHANNELS * warps), batch), 32 * warps,
               (*inputs, sb_b, sg_b, per_b, sb_c, sg_c, per_c, np.int32(flags)), shared_mem=shared)
        return y, state
    warps = _channels_per_block(dim, [dim // M.shape[1] for M in varying])
    args = (*inputs, *strides_b, *strides_c, np.int32(flags))
    launch(get_kernel("scan", "scan.cu", "selective_scan_chunked", state_dtype), (dim // warps, batch),
           32 * warps, args, shared_mem=_SELECTIVE_SHARED)
    return y, state

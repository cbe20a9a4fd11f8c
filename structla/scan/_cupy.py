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
# Bits of the kernel's `flags` (SelFlag in scan.cu).
_SEL_VEC_IO, _SEL_VEC_BC, _SEL_HAS_D, _SEL_HAS_Z, _SEL_HAS_BIAS, _SEL_SOFTPLUS, _SEL_HAS_H0 = \
    1, 2, 4, 8, 16, 32, 64


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


def _aligned(*arrays: Any, length: int) -> bool:
    """16-byte vector access is possible: aligned starts and rows of whole 16-byte packs."""
    return all(x.data.ptr % 16 == 0 for x in arrays) and (length * arrays[0].itemsize) % 16 == 0


def selective_scan(u: Any, delta: Any, A: Any, B: Any, C: Any, D: Any, z: Any,
                   delta_bias: Any, delta_softplus: bool, h0: Any) -> tuple[Any, Any]:
    """Mamba's selective scan on the GPU; returns ``(y, h_last)``.

    One block per (batch, group of up to 8 channels); each warp scans one channel in
    chunks of 64 bytes of states per lane (512 steps in float32), the state carried between
    chunks, B and C tiles staged in shared memory for the block (see ``scan.cu``). One
    kernel launch and two allocations: no other work is queued.
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
    warps = _channels_per_block(dim, [dim // M.shape[1] for M in varying])
    u, delta = cp.ascontiguousarray(u), cp.ascontiguousarray(delta)
    if z is not None:
        z = cp.ascontiguousarray(z, dtype=real)
    flags = (_SEL_VEC_IO * _aligned(u, delta, y, *(() if z is None else (z,)), length=length)
             + _SEL_VEC_BC * (not varying or _aligned(*varying, length=length))
             + _SEL_HAS_D * (D is not None) + _SEL_HAS_Z * (z is not None)
             + _SEL_HAS_BIAS * (delta_bias is not None) + _SEL_SOFTPLUS * bool(delta_softplus)
             + _SEL_HAS_H0 * (h0 is not None))
    # Arrays of absent options are never read: u stands in for them.
    args = (
        u, delta, cp.ascontiguousarray(A), B, C,
        u if D is None else cp.ascontiguousarray(D, dtype=real),
        u if z is None else z,
        u if delta_bias is None else cp.ascontiguousarray(delta_bias, dtype=real),
        state, y, np.int32(dim), np.int64(length), np.int32(nstate), *strides_b, *strides_c,
        np.int32(flags),
    )
    launch(get_kernel("scan", "scan.cu", "selective_scan_chunked", state_dtype), (dim // warps, batch),
           32 * warps, args, shared_mem=_SELECTIVE_SHARED)
    return y, state

"""GPU launches for diagonal + low-rank triangular matrices (CuPy arrays, ``tril.cu``).

Inputs as prepared by ``_api.py`` (see ``_reference.py``). Everything is launched on
CuPy's current stream and nothing waits for the device.

The chunked solve (MATH A2): for float32 with d ≤ 128 one kernel (``tril_solve.cu``) walks
the chunks of each sequence, a thread block per 64 columns of b, with the d×64 state on chip
and each chunk's T_II⁻¹ formed there. Otherwise the two-pass form: the diagonal blocks of
every chunk are inverted at once (``tril_block_inv_small``); cuBLAS batched products give,
per chunk I, ``U = T_II⁻¹ B_I``, ``W = T_II⁻¹ diag(a) Q_I`` and the state step
``Z_{I+1} = M_I Z_I + V_I`` with ``M_I = last·I − K̃_IᵀW``, ``V_I = K̃_IᵀU``;
``tril_state_scan`` runs that short recurrence over chunks, and one more batched product
gives ``X_I = U − W Z_I``.
"""

from __future__ import annotations

import functools

import cupy as cp
import numpy as np

from .._core.cuda import get_kernel, launch

# Chunk lengths: the solve's diagonal blocks are inverted one thread block each; the
# inverse wants longer chunks (its d×d state step is paid once per chunk and column).
_SOLVE_CHUNK = 64
_INV_CHUNK = 128
_SHARED_LIMIT = 48 * 1024  # dynamic shared memory usable without an opt-in
_NULL = np.uint64(0)
_SMALL_THREADS = 256  # SMALL_THREADS of tril.cu
_SCAN_TILE = 32  # SCAN_TILE of tril.cu
# tril_solve.cu: largest d, columns per thread block, and its dynamic shared memory (floats:
# Z d×68, Q and K C×132, T⁻¹ and X C×68, two C-vectors of decay factors and one more, padded;
# then C doubles of log-decay sums)
_SOLVE_D = 128
_SOLVE_TILE = 64
_SOLVE_SHARED_BYTES = (4 * (_SOLVE_D * 68 + 2 * _SOLVE_CHUNK * (132 + 68) + 2 * _SOLVE_CHUNK + 4)
                       + 8 * _SOLVE_CHUNK)


def _empty(shape, dtype):
    """Output allocation (tests replace it by a NaN-filled one to catch unwritten entries)."""
    return cp.empty(shape, dtype=dtype)


def _or_null(x):
    return _NULL if x is None else x


def _small_shared_bytes(c, dtype, same):
    """Dynamic shared memory of ``tril_block_inv_small`` for blocks of size c, or None where
    that kernel does not apply (c > 64, or more than the 48 KiB usable without an opt-in).

    The layout mirrors the kernel: chunk-local sums (``padded`` doubles), then the Q and K
    tiles, later reused for the padded matrix and the merges' scratch, all in double precision
    (``wide_of<T>``: complex128 for complex data).
    """
    if c > 64:
        return None
    padded = 16 if c <= 16 else 32 if c <= 32 else 64
    wide = 16 if dtype.kind == "c" else 8
    stride = 17 if dtype.kind == "c" else 33  # small_tile<WT>::stride of tril.cu
    tiles = (1 if same else 2) * padded * stride
    matrix = padded * padded + (padded // 2) ** 2
    shared = 8 * padded + max(tiles, matrix) * wide
    return shared if shared <= _SHARED_LIMIT else None


def block_inverse(diag, scale, q, k, log_decay):
    """``(diag(λ) + diag(s) tril(Q Kᵀ ⊙ Γ, -1))⁻¹ diag(s)`` for a stack of small blocks.

    ``diag``, ``scale`` (nb, C) or None (ones); q, k (nb, C, d); log_decay real (nb, C) or
    None. Returns (nb, C, C).
    """
    nb, c, d = q.shape
    dtype = q.dtype
    out = _empty((nb, c, c), dtype)
    if out.size == 0:
        return out
    item = dtype.itemsize
    shared = _small_shared_bytes(c, dtype, q is k)
    if shared is not None:
        kernel = get_kernel("tril", "tril.cu", "tril_block_inv_small", dtype)
        launch(kernel, nb, _SMALL_THREADS,
               (np.int64(nb), np.int32(c), np.int32(d), _or_null(diag), _or_null(scale), q, k,
                _or_null(log_decay), out),
               shared_mem=shared)
        return out
    cum_bytes = -(-8 * c // 16) * 16
    work = None
    if cum_bytes + 2 * c * c * item <= _SHARED_LIMIT:
        mode, shared = 0, cum_bytes + 2 * c * c * item
    elif cum_bytes + c * c * item <= _SHARED_LIMIT:
        mode, shared = 1, cum_bytes + c * c * item
    else:
        mode, shared = 2, cum_bytes
        work = cp.empty((nb, c, c), dtype=dtype)
    threads = 128 if c <= 128 else 256
    kernel = get_kernel("tril", "tril.cu", "tril_block_inv", dtype)
    launch(kernel, nb, threads,
           (np.int64(nb), np.int32(c), np.int32(d), np.int32(mode), _or_null(diag), _or_null(scale),
            q, k, _or_null(log_decay), out, _or_null(work)),
           shared_mem=shared)
    return out


def _state_scan(m_steps, v_steps):
    """States entering each chunk: ``Z_0 = 0``, ``Z_{I+1} = M_I Z_I + V_I`` (B, nc, d, m)."""
    count, nc, d, m = v_steps.shape
    zs = _empty(v_steps.shape, v_steps.dtype)
    if zs.size == 0:
        return zs
    item = v_steps.dtype.itemsize
    slab = 16 if v_steps.dtype == np.float32 else 8  # scan_slab<T>::width of tril.cu
    shared = d * (_SCAN_TILE + slab + 1) * item
    if d <= 128 and shared <= _SHARED_LIMIT:
        kernel = get_kernel("tril", "tril.cu", "tril_state_scan_tiled", v_steps.dtype)
        launch(kernel, (count, -(-m // _SCAN_TILE)), 256,
               (np.int64(count), np.int32(nc), np.int32(d), np.int32(m),
                cp.ascontiguousarray(m_steps), cp.ascontiguousarray(v_steps), zs),
               shared_mem=shared)
        return zs
    tile = min(32, m, _SHARED_LIMIT // (2 * d * item))
    if tile < 1:
        z = cp.zeros((count, d, m), dtype=v_steps.dtype)
        for i in range(nc):
            zs[:, i] = z
            z = m_steps[:, i] @ z + v_steps[:, i]
        return zs
    kernel = get_kernel("tril", "tril.cu", "tril_state_scan", v_steps.dtype)
    launch(kernel, (count, -(-m // tile)), 256,
           (np.int64(count), np.int32(nc), np.int32(d), np.int32(m), np.int32(tile),
            cp.ascontiguousarray(m_steps), cp.ascontiguousarray(v_steps), zs),
           shared_mem=2 * d * tile * item)
    return zs


class _Chunks:
    """A problem cut into chunks of length c, padded with identity rows."""

    def __init__(self, diag, q, k, log_decay, c):
        count, n, d = q.shape
        self.count, self.n, self.c = count, n, c
        self.nc = max(1, -(-n // c))
        pad = self.nc * c - n
        self.diag = self.pad(diag, pad, 1).reshape(count, self.nc, c)
        self.q = self.pad(q, pad, 0).reshape(count, self.nc, c, d)
        self.k = self.pad(k, pad, 0).reshape(count, self.nc, c, d)
        self.log_decay = None
        if log_decay is not None:
            self.log_decay = self.pad(log_decay, pad, 0).reshape(count, self.nc, c)

    @functools.cached_property
    def decayed(self):
        """``(diag(a) Q_I, diag(f) K_I, last)`` per chunk: ``a_i`` the decay into row i from the
        previous chunk's end, ``f_i`` from row i to the chunk's end, ``last`` across the chunk
        (only the two-pass forms use them; the one-pass kernel forms them on chip)."""
        real = self.q.real.dtype
        if self.log_decay is None:
            return self.q, self.k, cp.ones((self.count, self.nc), dtype=real)
        cum = cp.cumsum(self.log_decay.astype(cp.float64), axis=-1)
        qa = self.q * cp.exp(cum).astype(real)[..., None]
        kt = self.k * cp.exp(cum[..., -1:] - cum).astype(real)[..., None]
        return qa, kt, cp.exp(cum[..., -1]).astype(real)

    @property
    def qa(self):
        return self.decayed[0]

    @property
    def kt(self):
        return self.decayed[1]

    @property
    def last(self):
        return self.decayed[2]

    def pad(self, x, pad, value):
        if pad == 0:
            return cp.ascontiguousarray(x)
        widths = [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2)
        return cp.pad(x, widths, constant_values=value)

    def blocks(self, x):
        """(count, n, m) → (count, nc, c, m), zero rows appended."""
        return self.pad(x, self.nc * self.c - self.n, 0).reshape(self.count, self.nc, self.c, -1)

    def block_inverses(self):
        count, nc, c, d = self.q.shape
        g = None if self.log_decay is None else self.log_decay.reshape(count * nc, c)
        inv = block_inverse(self.diag.reshape(count * nc, c), None, self.q.reshape(count * nc, c, d),
                            self.k.reshape(count * nc, c, d), g)
        return inv.reshape(count, nc, c, c)

    def step_matrices(self, w):
        """``M_I = last_I·I − K̃_Iᵀ W_I`` (count, nc, d, d)."""
        d = self.q.shape[-1]
        steps = -(cp.swapaxes(self.kt, -1, -2) @ w)
        index = cp.arange(d)
        steps[..., index, index] += self.last[..., None]
        return steps


def _one_pass(chunks, b, out):
    """Whether ``tril_chunk_solve`` (tril_solve.cu) applies: float32, chunks of 64, d ≤ 128,
    d and m multiples of 4 and 16-byte aligned rows (its float4 loads)."""
    d = chunks.q.shape[-1]
    return (b.dtype == np.float32 and chunks.c == _SOLVE_CHUNK and chunks.nc > 1 and d <= _SOLVE_D
            and d % 4 == 0 and b.shape[2] % 4 == 0
            and all(x.data.ptr % 16 == 0 for x in (chunks.q, chunks.k, b, out)))


def _solve_one_pass(chunks, b, out):
    count, n, m = b.shape
    kernel = get_kernel("tril", "tril_solve.cu", "tril_chunk_solve", b.dtype)
    if kernel.max_dynamic_shared_size_bytes < _SOLVE_SHARED_BYTES:
        kernel.max_dynamic_shared_size_bytes = _SOLVE_SHARED_BYTES
    launch(kernel, (count, -(-m // _SOLVE_TILE)), 256,
           (np.int64(count), np.int32(n), np.int32(chunks.nc), np.int32(chunks.q.shape[-1]), np.int32(m),
            chunks.q, chunks.k, _or_null(chunks.log_decay), chunks.diag, b, out),
           shared_mem=_SOLVE_SHARED_BYTES)


def tril_dlr_solve(diag, q, k, b, log_decay, *, chunk=None):
    """``T x = b`` by chunks: one pass (``tril_chunk_solve``) where it applies, else the
    two-pass form of the module docstring."""
    count, n, _ = q.shape
    m = b.shape[2]
    out = _empty((count, n, m), b.dtype)
    if out.size == 0:
        return out
    chunks = _Chunks(diag, q, k, log_decay, chunk or _SOLVE_CHUNK)
    b = cp.ascontiguousarray(b)
    if _one_pass(chunks, b, out):
        _solve_one_pass(chunks, b, out)
        return out
    inv = chunks.block_inverses()
    u = inv @ chunks.blocks(b)
    if chunks.nc > 1:
        w = inv @ chunks.qa
        v = cp.swapaxes(chunks.kt, -1, -2) @ u
        zs = _state_scan(chunks.step_matrices(w), v)
        u -= w @ zs
    out[...] = u.reshape(count, chunks.nc * chunks.c, m)[:, :n]
    return out


def tril_dlr_matmul(diag, q, k, x, log_decay, *, chunk=None):
    """``T x`` by chunks: the diagonal blocks densely, the rest through the carried state."""
    count, n, d = q.shape
    m = x.shape[2]
    out = _empty((count, n, m), x.dtype)
    if out.size == 0:
        return out
    chunks = _Chunks(diag, q, k, log_decay, chunk or _SOLVE_CHUNK)
    c = chunks.c
    lower = cp.tri(c, c, -1, dtype=bool)
    blocks = chunks.q @ cp.swapaxes(chunks.k, -1, -2)
    if chunks.log_decay is None:
        blocks *= lower
    else:
        cum = cp.cumsum(chunks.log_decay.astype(cp.float64), axis=-1)
        gamma = cp.exp(cp.where(lower, cum[..., :, None] - cum[..., None, :], -cp.inf))
        blocks *= gamma.astype(blocks.real.dtype)
    index = cp.arange(c)
    blocks[..., index, index] = chunks.diag
    xb = chunks.blocks(x)
    y = blocks @ xb
    if chunks.nc > 1:
        eye = cp.zeros((count, chunks.nc, d, d), dtype=x.dtype)
        eye[..., cp.arange(d), cp.arange(d)] = chunks.last[..., None]
        zs = _state_scan(eye, cp.swapaxes(chunks.kt, -1, -2) @ xb)
        y += chunks.qa @ zs
    out[...] = y.reshape(count, chunks.nc * c, m)[:, :n]
    return out


def tril_dlr_inv(diag, q, k, log_decay, *, chunk=None):
    """``T⁻¹`` by the chunked block recursion (MATH A5) with cuBLAS products."""
    count, n, d = q.shape
    y = cp.zeros((count, n, n), dtype=q.dtype)
    if y.size == 0:
        return y
    chunks = _Chunks(diag, q, k, log_decay, chunk or _INV_CHUNK)
    c = chunks.c
    inv = chunks.block_inverses()
    z = cp.zeros((count, d, n), dtype=q.dtype)
    for i in range(chunks.nc):
        s, e = i * c, min(n, (i + 1) * c)
        size = e - s
        block = inv[:, i, :size, :size]
        y[:, s:e, s:e] = block
        kt_t = cp.swapaxes(chunks.kt[:, i, :size], -1, -2)
        if s > 0:
            w = block @ chunks.qa[:, i, :size]
            y[:, s:e, :s] = -(w @ z[:, :, :s])
            steps = -(kt_t @ w)
            steps[:, cp.arange(d), cp.arange(d)] += chunks.last[:, i, None]
            z[:, :, :s] = steps @ z[:, :, :s]
        z[:, :, s:e] = kt_t @ block
    return y


def ut_transform(k, beta, log_decay):
    """One thread block per chunk: ``(I + diag(β) tril(K Kᵀ ⊙ Γ, -1))⁻¹ diag(β)``."""
    return block_inverse(None, beta, k, k, log_decay)

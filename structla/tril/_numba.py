"""CPU kernels for diagonal + low-rank triangular matrices: Numba loops and BLAS blocks.

Inputs are what ``_api.py`` prepared (see ``_reference.py``): one flattened batch axis,
one compute dtype, lower-triangular problems only, ``log_decay`` real or ``None``.

Two kinds of path, picked by size:

* the O(n·d·m) row recursion (MATH A1) in a Numba loop, parallel over batch entries and
  blocks of right-hand-side columns (columns never interact);
* the chunked form (MATH A2, A5), which spends its time in BLAS matrix products: the
  diagonal blocks are inverted once, and a short loop over chunks carries the d×m state.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.linalg

from .._core.jit import kernel, prange

# From this state size (d·m entries, 512 KiB in float64) the state no longer stays in the
# core's cache during the row recursion and the chunked BLAS form takes over; below it the
# recursion wins on the 2-core development machine (the chunked form also pays O(c·(d + m))
# per row for the diagonal blocks, and per-chunk call overhead).
_CHUNKED_MIN_DM = 256 * 256
# Chunk lengths: solves keep the extra per-row work c·(d + m) small against d·m; the
# inverse wants long chunks, since its state update costs d²/c per entry of T⁻¹.
_SOLVE_CHUNK = 64
_INV_CHUNK = 256
# Inverses of order up to this use the row recursion, parallel over the batch.
_INV_ROWS_MAX_N = 192


@kernel(parallel=True)
def _rows(diag, q, k, e, src, out, width, solve):
    """Row recursion for ``T x = src`` (``solve``) or ``out = T src``, ``width`` columns per task.

    ``z[c]`` holds ``Σ_{j<i} Γ_ij x_jc k_j`` for column c of the task. One pass over ``z`` per
    row both adds row i and forms ``q_{i+1}ᵀ z`` for the next row; folding the decay of the
    next step ``e[i + 1]`` into that update keeps every factor ≤ 1 for decays.
    """
    count, n, d = q.shape
    m = src.shape[2]
    blocks = (m + width - 1) // width
    for task in prange(count * blocks):
        bi = task // blocks
        c0 = (task - bi * blocks) * width
        w = min(m, c0 + width) - c0
        z = np.zeros((w, d), dtype=src.dtype)
        acc = np.zeros(w, dtype=src.dtype)
        for i in range(n):
            lam = diag[bi, i]
            inv = 1 / lam
            nxt = min(i + 1, n - 1)
            f = e[bi, nxt]
            for c in range(w):
                if solve:
                    v = (src[bi, i, c0 + c] - acc[c]) * inv
                    out[bi, i, c0 + c] = v
                else:
                    v = src[bi, i, c0 + c]
                    out[bi, i, c0 + c] = lam * v + acc[c]
                s = acc[c] * 0
                for r in range(d):
                    t = f * (z[c, r] + k[bi, i, r] * v)
                    z[c, r] = t
                    s += q[bi, nxt, r] * t
                acc[c] = s


@kernel(parallel=True)
def _inv_rows(diag, q, k, e, colscale, y, wide):
    """``y = T⁻¹ diag(colscale)`` row by row (MATH A5), parallel over the batch; ``y`` arrives zeroed.

    The state and each row are carried in ``wide.dtype`` (double precision for single
    precision data): intermediate sums of a float32 UT block can exceed float32's range
    even when every entry of the answer fits.
    """
    count, n, d = q.shape
    for bi in prange(count):
        z = np.zeros((d, n), dtype=wide.dtype)
        acc = np.empty(n, dtype=wide.dtype)
        for row in range(n):
            for j in range(row + 1):
                acc[j] = 0
            for r in range(d):
                qr = q[bi, row, r]
                for j in range(row):
                    acc[j] += qr * z[r, j]
            # acc[row] is 0 here: adding it makes the division happen in the wide type
            inv = 1 / (acc[row] + diag[bi, row])
            for j in range(row):
                acc[j] = -acc[j] * inv
            acc[row] = inv
            for j in range(row + 1):
                y[bi, row, j] = acc[j] * colscale[bi, j]
            f = e[bi, row + 1] if row + 1 < n else e[bi, row]
            for r in range(d):
                kr = k[bi, row, r]
                for j in range(row + 1):
                    z[r, j] = f * (z[r, j] + kr * acc[j])


def _decay_factors(log_decay, count, n, real):
    if log_decay is None:
        return np.ones((count, n), dtype=real)
    return np.exp(log_decay).astype(real, copy=False)


def _task_width(count: int, m: int) -> int:
    """Columns per task: enough tasks to keep every thread busy, at least 8 columns each."""
    threads = numba.get_num_threads()
    blocks = max(1, min(-(-m // 8), -(-threads // max(count, 1))))
    return max(1, -(-m // blocks))


def _recursive(diag, q, k, src, log_decay, solve):
    count, n, _ = q.shape
    out = np.empty_like(src)
    if out.size == 0:
        return out
    e = _decay_factors(log_decay, count, n, src.real.dtype)
    _rows(diag, q, k, e, src, out, _task_width(count, src.shape[2]), solve)
    return out


def _chunk_views(log_decay, s, e):
    """Decay factors of chunk [s, e): to the chunk's rows, from its rows, and across it.

    Built from the cumulative sum within the chunk only, so every exponent is a sum of
    given log-decays over at most one chunk (≤ 0 for decays): no overflow, and no
    cancellation between long sums.
    """
    cum = np.cumsum(log_decay[s:e])
    to_rows = np.exp(cum)
    from_rows = np.exp(cum[-1] - cum)
    gamma = np.exp(np.tril(cum[:, None] - cum[None, :], -1))
    return to_rows, from_rows, float(to_rows[-1]), gamma


def _diagonal_block(diag, q, k, gamma):
    """The dense lower-triangular diagonal block ``T_II``."""
    a = np.tril(q @ k.T, -1)
    if gamma is not None:
        a *= gamma
    a[np.diag_indices_from(a)] = diag
    return a


def _solve_chunked_one(diag, q, k, b, log_decay, chunk):
    """``T x = b`` for one problem by chunks (MATH A2): per chunk three BLAS products."""
    n, d = q.shape
    m = b.shape[1]
    x = np.empty_like(b)
    z = np.zeros((d, m), dtype=b.dtype)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        if log_decay is None:
            qa, kt, last, gamma = q[s:e], k[s:e], 1.0, None
        else:
            to_rows, from_rows, last, gamma = _chunk_views(log_decay, s, e)
            qa = q[s:e] * to_rows[:, None].astype(q.real.dtype)
            kt = k[s:e] * from_rows[:, None].astype(q.real.dtype)
        block = _diagonal_block(diag[s:e], q[s:e], k[s:e], gamma)
        rhs = b[s:e] - qa @ z
        x[s:e] = scipy.linalg.solve_triangular(block, rhs, lower=True, check_finite=False)
        if last != 1.0:
            z *= last
        z += kt.T @ x[s:e]
    return x


def tril_dlr_solve(diag, q, k, b, log_decay, *, method="auto", chunk=None):
    """``T x = b``; ``method`` "recursive", "chunked" or "auto" (by d·m)."""
    count, n, d = q.shape
    m = b.shape[2]
    if method == "auto":
        method = "chunked" if d * m >= _CHUNKED_MIN_DM and n > 2 * _SOLVE_CHUNK else "recursive"
    if method == "recursive" or b.size == 0:
        return _recursive(diag, q, k, b, log_decay, True)
    chunk = chunk or _SOLVE_CHUNK
    out = np.empty_like(b)
    for i in range(count):
        g = None if log_decay is None else log_decay[i]
        out[i] = _solve_chunked_one(diag[i], q[i], k[i], b[i], g, chunk)
    return out


def tril_dlr_matmul(diag, q, k, x, log_decay):
    """``T x`` by the row recursion (one pass, O(n·d·m))."""
    return _recursive(diag, q, k, x, log_decay, False)


@kernel
def _inv_chunks(blocks, qa, kt, last, y):
    """``y = T⁻¹`` for one problem by chunks (MATH A5), given the diagonal blocks' inverses.

    ``z[:, :s] = Σ_{j<s} Γ_{s-1,j} k_j Y[j, :s]``. A chunk's rows left of it are ``-W z``
    with ``W = Y_II diag(a) Q_I``; the state moves on by the d×d matrix ``last·I − K̃ᵀW``
    (cheaper than ``K̃ᵀ Y_{I,:s}`` once the chunk is longer than d). Plain loops rather than
    BLAS calls: many mid-sized multithreaded BLAS calls collapse on a busy 2-core machine.
    Serial on purpose: the ~6 parallel regions per chunk each wait for the slowest thread,
    which on a shared 2-core machine cost more than they gained (measured 1.0 s vs 0.4 s
    at n = 4096, d = 64).
    """
    nc, c, d = qa.shape
    n = y.shape[0]
    z = np.zeros((d, n), dtype=y.dtype)
    w = np.empty((c, d), dtype=y.dtype)
    step = np.empty((d, d), dtype=y.dtype)
    tmp = np.empty((d, n), dtype=y.dtype)
    zero = np.zeros(1, dtype=y.dtype)[0]
    for chunk in range(nc):
        s = chunk * c
        size = min(n, s + c) - s
        for i in range(size):
            for j in range(i + 1):
                y[s + i, s + j] = blocks[chunk, i, j]
        if s > 0:
            for i in range(size):
                for r in range(d):
                    acc = zero
                    for l in range(i + 1):
                        acc += blocks[chunk, i, l] * qa[chunk, l, r]
                    w[i, r] = acc
            for i in range(size):
                for r in range(d):
                    wr = -w[i, r]
                    for j in range(s):
                        y[s + i, j] += wr * z[r, j]
            for a in range(d):
                for b in range(d):
                    acc = zero
                    for i in range(size):
                        acc += kt[chunk, i, a] * w[i, b]
                    step[a, b] = -acc
                step[a, a] += last[chunk]
            for a in range(d):
                for j in range(s):
                    tmp[a, j] = 0
                for b in range(d):
                    sab = step[a, b]
                    for j in range(s):
                        tmp[a, j] += sab * z[b, j]
            for a in range(d):
                for j in range(s):
                    z[a, j] = tmp[a, j]
        for a in range(d):
            for j in range(size):
                acc = zero
                for i in range(j, size):
                    acc += kt[chunk, i, a] * blocks[chunk, i, j]
                z[a, s + j] = acc


def _inv_chunked_one(diag, q, k, log_decay, chunk, y):
    """Chunk-local decay factors and diagonal-block inverses, then :func:`_inv_chunks`."""
    n, d = q.shape
    nc = -(-n // chunk)
    pad = nc * chunk - n
    real = q.real.dtype
    diag_p = np.concatenate([diag, np.ones(pad, dtype=diag.dtype)]).reshape(nc, chunk)
    q_p = np.concatenate([q, np.zeros((pad, d), dtype=q.dtype)]).reshape(nc, chunk, d)
    k_p = np.concatenate([k, np.zeros((pad, d), dtype=k.dtype)]).reshape(nc, chunk, d)
    g = np.zeros(nc * chunk) if log_decay is None else np.concatenate([log_decay, np.zeros(pad)])
    cum = np.cumsum(g.reshape(nc, chunk).astype(np.float64), axis=1)
    qa = q_p * np.exp(cum).astype(real)[:, :, None]
    kt = k_p * np.exp(cum[:, -1:] - cum).astype(real)[:, :, None]
    last = np.exp(cum[:, -1]).astype(real)
    blocks = np.zeros((nc, chunk, chunk), dtype=q.dtype)
    factors = np.exp(g).astype(real).reshape(nc, chunk)
    _inv_rows(diag_p, q_p, k_p, factors, np.ones((nc, chunk), dtype=q.dtype), blocks, _wide(q.dtype))
    _inv_chunks(blocks, qa, kt, last, y)


def tril_dlr_inv(diag, q, k, log_decay, *, method="auto", chunk=None):
    """``T⁻¹``, Θ(n²·d): row recursion for small n (parallel over the batch), chunked form above."""
    count, n, _ = q.shape
    y = np.zeros((count, n, n), dtype=q.dtype)
    if y.size == 0:
        return y
    if method == "auto":
        method = "recursive" if n <= _INV_ROWS_MAX_N else "chunked"
    if method == "recursive":
        ones = np.ones((count, n), dtype=q.dtype)
        _inv_rows(diag, q, k, _decay_factors(log_decay, count, n, q.real.dtype), ones, y, _wide(q.dtype))
        return y
    chunk = chunk or _INV_CHUNK
    for i in range(count):
        _inv_chunked_one(diag[i], q[i], k[i], None if log_decay is None else log_decay[i], chunk, y[i])
    return y


def _wide(dtype):
    """A zero-size array of the double-precision type of ``dtype``."""
    return np.empty(0, dtype=np.complex128 if np.dtype(dtype).kind == "c" else np.float64)


def ut_transform(k, beta, log_decay):
    """DeltaNet's UT block: the inverse with λ = 1 and Q = diag(β) K, columns scaled by β."""
    count, n, _ = k.shape
    ones = np.ones(beta.shape, dtype=k.dtype)
    q = beta[:, :, None] * k
    if n > _INV_ROWS_MAX_N:
        y = tril_dlr_inv(ones, q, k, log_decay)
        y *= beta[:, None, :]
        return y
    y = np.zeros((count, n, n), dtype=k.dtype)
    if y.size:
        _inv_rows(ones, q, k, _decay_factors(log_decay, count, n, k.real.dtype), beta, y, _wide(k.dtype))
    return y


def tril_dlr_dense(diag, q, k, log_decay):
    """The dense matrix, one batched BLAS product plus the mask."""
    n = q.shape[1]
    a = q @ np.swapaxes(k, 1, 2)
    if log_decay is None:
        a *= np.tri(n, n, -1, dtype=a.real.dtype)
    else:
        g = np.cumsum(log_decay.astype(np.float64), axis=1)
        diff = np.where(np.tri(n, n, -1, dtype=bool), g[:, :, None] - g[:, None, :], -np.inf)
        a *= np.exp(diff).astype(a.real.dtype)
    index = np.arange(n)
    a[:, index, index] = diag
    return a

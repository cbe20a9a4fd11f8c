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
# Solve chunk length: keeps the extra per-row work c·(d + m) small against d·m.
_SOLVE_CHUNK = 64
# Leaves of the inverse's merge tree: the row recursion inside them costs 2·leaf·d per entry,
# each merge level above them n·d² (about d) in total, so a leaf near d balances the two.
_INV_LEAF = 64
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


@kernel(parallel=True)
def _inv_leaves(diag, q, k, g, leaf, diagonal, wn, kyt, steps, wide):
    """Leaves of the merge tree (see :func:`_inv_tree_one`), parallel over leaves L = [s, e).

    Writes ``Y_LL = T_LL⁻¹`` (rows of ``diagonal``, lower triangles) by the row recursion (A5), the leaf's
    ``Wn_L`` (rows of ``wn``), ``KY_Lᵀ`` (rows of ``kyt``: the recursion's state after row
    e - 1, left undecayed) and ``S_L``. Rows and state are carried in ``wide.dtype`` (double
    precision for single precision data), as in :func:`_inv_rows`.
    """
    n, d = q.shape
    for leaf_index in prange((n + leaf - 1) // leaf):
        s = leaf_index * leaf
        size = min(n, s + leaf) - s
        z = np.zeros((d, size), dtype=wide.dtype)
        qa = np.empty((size, d), dtype=wide.dtype)
        acc = np.empty(size, dtype=wide.dtype)
        w = np.empty(d, dtype=wide.dtype)
        total = 0.0
        for i in range(size):
            row = s + i
            total += g[row]
            a = np.exp(total)
            for r in range(d):
                qa[i, r] = a * q[row, r]
            for j in range(i + 1):
                acc[j] = 0
            for r in range(d):
                qr = q[row, r]
                for j in range(i):
                    acc[j] += qr * z[r, j]
            inv = 1 / (acc[i] + diag[row])
            for j in range(i):
                acc[j] = -acc[j] * inv
            acc[i] = inv
            for r in range(d):
                w[r] = 0
            for j in range(i + 1):
                diagonal[row, j] = acc[j]
                yj = acc[j]
                for r in range(d):
                    w[r] -= yj * qa[j, r]
            for r in range(d):
                wn[row, r] = w[r]
            f = np.exp(g[row + 1]) if i + 1 < size else 1.0
            for r in range(d):
                kr = k[row, r]
                for j in range(i + 1):
                    z[r, j] = f * (z[r, j] + kr * acc[j])
        last = np.exp(total)
        for r in range(d):
            for c in range(d):
                w[c] = 0
            for j in range(size):
                zj = z[r, j]
                kyt[s + j, r] = zj
                for c in range(d):
                    w[c] -= zj * qa[j, c]
            for c in range(d):
                steps[leaf_index, r, c] = w[c]
            steps[leaf_index, r, r] += last


def _serial_tile(d, dtype):
    """Side of the square tiles in which the merge tree calls BLAS.

    OpenBLAS computes a product on the calling thread up to m·n·k = 64³ real (measured here:
    16·16·64 complex) multiply-adds and splits larger ones over its own threads. Tiles under
    that size leave Numba's threads, which run the tiles side by side, as the only
    parallelism: the two thread pools never compete for the cores.
    """
    cap = 16 * 16 * 64 if np.dtype(dtype).kind == "c" else 64 ** 3
    side = 64
    while side > 1 and side * side * d > cap:
        side //= 2
    return side, max(1, cap // (d * d))


@kernel(parallel=True)
def _inv_generators(leaf, rows, kytv, steps, offsets):
    """``KY_Xᵀ`` (rows of ``kytv[level]``) and ``S_X`` (``steps[offsets[level] + X]``) of every block.

    Level 0 holds the leaves'. Merging A and B gives ``KY`` on A ← ``S_B KY_A``, on B ← ``KY_B``
    and ``S = S_B S_A``, in BLAS calls of ``rows`` rows; the last block of each level (the right
    spine) is never an A, so its KY is not carried up.
    """
    n, d = kytv.shape[1], kytv.shape[2]
    count = offsets[1] - offsets[0]
    h = leaf
    for level in range(kytv.shape[0] - 1):
        pairs = count // 2
        base = offsets[level]
        up = offsets[level + 1]
        spine = pairs - 1 if count % 2 == 0 else pairs
        chunks = -(-h // rows)
        per_pair = 2 * chunks + -(-d // rows)
        for task in prange(pairs * per_pair):
            p = task // per_pair
            part = task - p * per_pair
            if part < 2 * chunks:
                side = part // chunks
                r0 = (2 * p + side) * h + (part - side * chunks) * rows
                r1 = min(r0 + rows, (2 * p + 1 + side) * h, n)
                if p < spine and r0 < r1:
                    if side == 0:
                        np.dot(kytv[level, r0:r1], steps[base + 2 * p + 1].T, kytv[level + 1, r0:r1])
                    else:
                        kytv[level + 1, r0:r1] = kytv[level, r0:r1]
            else:
                r0 = (part - 2 * chunks) * rows
                r1 = min(r0 + rows, d)
                np.dot(steps[base + 2 * p + 1, r0:r1], steps[base + 2 * p], steps[up + p, r0:r1])
        if count % 2:
            steps[up + pairs] = steps[base + count - 1]
        count = -(-count // 2)
        h *= 2


@kernel(parallel=True)
def _inv_bands(leaf, tile, rows, y, diagonal, wn, kytv, steps, offsets):
    """Every row band of ``y`` (one leaf's rows) from the diagonal leftwards, one band at a time.

    The band's rows lie in B at the levels where its leaf index has a 1 bit; there
    ``Y_BA = Wn_B KY_A`` in ``tile``-square BLAS calls, after which the band's ``Wn`` moves on
    by ``S_A``. A band is written right after the kernel has zeroed its fresh pages, while they
    are still in cache. Band b costs about b tiles, so task t takes bands t and bands - 1 - t.
    """
    n = wn.shape[0]
    bands = -(-n // leaf)
    for task in prange((bands + 1) // 2):
        for which in range(2):
            band = (bands - 1 - 2 * task) * which + task
            if which and band == task:
                continue
            s = band * leaf
            m = min(n, s + leaf) - s
            for i in range(m):
                for j in range(i + 1):
                    y[s + i, s + j] = diagonal[s + i, j]
            w = wn[s:s + m].copy()
            block_index = band
            level = 0
            h = leaf
            while block_index > 0:
                if block_index % 2:
                    left = (block_index - 1) * h
                    for r0 in range(0, m, tile):
                        r1 = min(r0 + tile, m)
                        for c0 in range(left, left + h, tile):
                            c1 = min(c0 + tile, left + h)
                            block = np.empty((r1 - r0, c1 - c0), dtype=y.dtype)
                            np.dot(w[r0:r1], kytv[level, c0:c1].T, block)
                            y[s + r0:s + r1, c0:c1] = block
                    if block_index > 1:
                        moved = np.empty_like(w)
                        for r0 in range(0, m, rows):
                            r1 = min(r0 + rows, m)
                            np.dot(w[r0:r1], steps[offsets[level] + block_index - 1], moved[r0:r1])
                        w = moved
                block_index //= 2
                level += 1
                h *= 2


def _inv_tree_one(diag, q, k, g, leaf, y):
    """``y = T⁻¹`` for one problem by merging blocks pairwise, bottom-up (MATH A5 as a tree).

    Every block X = [s, e) carries, besides ``Y_XX = T_XX⁻¹``, ``Wn_X = -Y_XX (a ⊙ Q_X)`` with
    ``a_i = Γ_{i,s-1}``, ``KY_X = (b ⊙ K_X)ᵀ Y_XX`` with ``b_j = Γ_{e-1,j}`` and the d×d transition
    ``S_X = Γ_{e-1,s-1} I - (b ⊙ K_X)ᵀ Y_XX (a ⊙ Q_X)``. Merging A = [s, m) and B = [m, e):

    * ``Y_BA = Wn_B KY_A`` (``[[A, 0], [C, B]]⁻¹`` with the rank-d ``C = T_BA``); these blocks
      tile the strict lower triangle, d·n² flops;
    * ``Wn_X`` on B ← ``Wn_B S_A``, ``KY_X`` on A ← ``S_B KY_A``, ``S_X = S_B S_A``: 2·h·d² per
      merge, n·d² per level (skipped where no later merge reads them: the tree's spines).

    Decays enter only through leaf-local factors and the Γ across each leaf inside ``S``, so
    no exponent exceeds one leaf's log-decays and nothing of the form ``exp(+cumsum)`` appears.
    Three parallel passes: the leaves; ``KY`` and ``S`` of every block, level by level; then
    ``y`` band by band (:func:`_inv_bands`), carrying each band's ``Wn`` up the tree, so that
    ``y`` is written in one sweep. Every BLAS call is small enough to stay on the calling
    thread (:func:`_serial_tile`), so Numba's threads are the only parallelism.
    """
    n, d = q.shape
    counts = [-(-n // leaf)]
    while counts[-1] > 1:
        counts.append(-(-counts[-1] // 2))
    levels = max(1, len(counts) - 1)
    offsets = np.cumsum([0, *counts[:levels]])
    wn = np.empty((n, d), dtype=y.dtype)
    kytv = np.empty((levels, n, d), dtype=y.dtype)
    steps = np.empty((offsets[-1], d, d), dtype=y.dtype)
    diagonal = np.empty((n, min(leaf, n)), dtype=y.dtype)
    tile, rows = _serial_tile(d, y.dtype)
    # tasks handed out one at a time: a thread that the OS pauses leaves its share to the other
    previous = numba.set_parallel_chunksize(1)
    try:
        _inv_leaves(diag, q, k, g, leaf, diagonal, wn, kytv[0], steps, _wide(y.dtype))
        _inv_generators(leaf, rows, kytv, steps, offsets)
        _inv_bands(leaf, tile, rows, y, diagonal, wn, kytv, steps, offsets)
    finally:
        numba.set_parallel_chunksize(previous)


def tril_dlr_inv(diag, q, k, log_decay, *, method="auto", chunk=None):
    """``T⁻¹``, Θ(n²·d): row recursion for small n (parallel over the batch), merge tree above.

    ``chunk`` is the leaf size of the tree (``method="chunked"``).
    """
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
    leaf = chunk or _INV_LEAF
    g = np.zeros((count, n), dtype=q.real.dtype) if log_decay is None else log_decay
    for i in range(count):
        _inv_tree_one(diag[i], q[i], k[i], g[i], leaf, y[i])
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

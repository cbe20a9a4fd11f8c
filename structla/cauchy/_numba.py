"""CPU kernels for Cauchy and Vandermonde sums (Numba).

Both kernels split the work into tasks (batch row × block of nodes), run in
parallel over tasks, and stream over the poles inside a task: for one pole the
innermost loop sweeps a block of nodes held in small real/imaginary scratch
arrays, so it vectorises (8 float32 or 4 float64 lanes on AVX2) and no
``N × L`` temporary ever exists.

Divisions go through ``np.divide``: the ``/`` operator under Numba's Python error
model tests every divisor for zero, which both blocks vectorisation and turns a
pole that hits a node into an exception instead of the documented ``inf``/``nan``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .._core.jit import kernel, prange

__all__ = ["cauchy", "vandermonde"]

#: Nodes per task of the Cauchy kernel: 4 scratch rows of this length stay in L1.
CAUCHY_BLOCK = 256
#: Table entries ``exp(j·s)`` are products ``T1[j // TABLE_SPLIT] · T0[j % TABLE_SPLIT]``.
TABLE_SPLIT = 16
#: Largest Vandermonde block; smaller for many poles so the table stays in L2 (≤ 2**15 entries).
VANDERMONDE_BLOCK = 256
_TABLE_ENTRIES = 2**15


@kernel(parallel=True)
def _cauchy_kernel(v, w, z, zrow, conj_pairs, one, out):  # pragma: no cover - compiled
    count, n = v.shape
    length = z.shape[1]
    block = CAUCHY_BLOCK
    nblocks = (length + block - 1) // block
    for task in prange(count * nblocks):
        row = task // nblocks
        start = (task % nblocks) * block
        m = min(block, length - start)
        real = z.real.dtype
        zr = np.empty(block, real)
        zi = np.empty(block, real)
        ar = np.zeros(block, real)
        ai = np.zeros(block, real)
        zsrc = z[zrow[row]]
        for j in range(m):
            zr[j] = zsrc[start + j].real
            zi[j] = zsrc[start + j].imag
        for i in range(n):
            wr = w[row, i].real
            wi = w[row, i].imag
            vr = v[row, i].real
            vi = v[row, i].imag
            if conj_pairs:
                # The pair shares Re(z − w): v/(z − w) + v̄/(z − w̄) with d₁ = z − w, d₂ = z − w̄.
                for j in range(m):
                    dr = zr[j] - wr
                    d1 = zi[j] - wi
                    d2 = zi[j] + wi
                    dr2 = dr * dr
                    s1 = np.divide(one, dr2 + d1 * d1)
                    s2 = np.divide(one, dr2 + d2 * d2)
                    ar[j] += (vr * dr + vi * d1) * s1 + (vr * dr - vi * d2) * s2
                    ai[j] += (vi * dr - vr * d1) * s1 - (vi * dr + vr * d2) * s2
            else:
                for j in range(m):
                    dr = zr[j] - wr
                    di = zi[j] - wi
                    s = np.divide(one, dr * dr + di * di)
                    ar[j] += (vr * dr + vi * di) * s
                    ai[j] += (vi * dr - vr * di) * s
        orow = out[row]
        for j in range(m):
            orow[start + j] = complex(ar[j], ai[j])


def cauchy(v, w, z, *, conj_pairs):
    """Kernel entry for ``_api.cauchy``: v, w (count, N), z (count, L) of one complex dtype."""
    count, length = v.shape[0], z.shape[1]
    out = np.empty((count, length), dtype=z.dtype)
    if z.strides[0] == 0:
        # One node set shared by the batch: read that row, never copy it `count` times.
        zc = np.ascontiguousarray(z[:1])
        zrow = np.zeros(count, dtype=np.int64)
    else:
        zc = np.ascontiguousarray(z)
        zrow = np.arange(count, dtype=np.int64)
    one = np.finfo(z.dtype).dtype.type(1)
    _cauchy_kernel(_readonly(v), _readonly(w), _readonly(zc), zrow, conj_pairs, one, out)
    return out


def _readonly(a):
    """A C-contiguous read-only view (or copy): one compiled signature whatever the input flags."""
    a = np.ascontiguousarray(a).view()
    a.flags.writeable = False
    return a


@kernel
def _exp_l(l, sr, si):  # pragma: no cover - compiled
    """``exp(l·s)`` in double precision, with ``exp(0·s) = 1`` also for ``Re s = −inf``."""
    if l == 0:
        return 1.0 + 0.0j
    magnitude = math.exp(l * sr)
    angle = l * si
    return complex(magnitude * math.cos(angle), magnitude * math.sin(angle))


@kernel
def _power_table(s, block, pr, pi):  # pragma: no cover - compiled
    """``pr + i·pi = exp(j·s_i)`` for j < block, as products of two direct evaluations."""
    n = s.shape[0]
    split = TABLE_SPLIT
    low = np.empty(split, np.complex128)
    for i in range(n):
        sr = s[i].real
        si = s[i].imag
        for b in range(split):
            low[b] = _exp_l(b, sr, si)
        for a in range((block + split - 1) // split):
            high = _exp_l(a * split, sr, si)
            for b in range(min(split, block - a * split)):
                p = high * low[b]
                pr[i, a * split + b] = p.real
                pi[i, a * split + b] = p.imag


@kernel(parallel=True)
def _vandermonde_kernel(v, s, length, block, nsuper, conj_pairs, out, out_real):  # pragma: no cover
    count, n = v.shape
    real = out_real.dtype
    nblocks = (length + block - 1) // block
    per_super = (nblocks + nsuper - 1) // nsuper
    for task in prange(count * nsuper):
        row = task // nsuper
        first = (task % nsuper) * per_super
        last = min(first + per_super, nblocks)
        if first >= last:
            continue
        pr = np.empty((n, block), real)
        pi = np.empty((n, block), real)
        _power_table(s[row], block, pr, pi)
        anchor_r = np.empty(n, real)
        anchor_i = np.empty(n, real)
        ar = np.empty(block, real)
        ai = np.empty(block, real)
        for b in range(first, last):
            start = b * block
            m = min(block, length - start)
            for i in range(n):
                # Re-anchor every block: v·exp(start·s) directly, so errors never accumulate over l.
                a = v[row, i] * _exp_l(start, s[row, i].real, s[row, i].imag)
                anchor_r[i] = a.real
                anchor_i[i] = a.imag
            ar[:m] = 0
            ai[:m] = 0
            for i in range(n):
                cr = anchor_r[i]
                ci = anchor_i[i]
                tr = pr[i]
                ti = pi[i]
                if conj_pairs:
                    for j in range(m):
                        ar[j] += cr * tr[j] - ci * ti[j]
                else:
                    for j in range(m):
                        ar[j] += cr * tr[j] - ci * ti[j]
                        ai[j] += cr * ti[j] + ci * tr[j]
            if conj_pairs:
                orow_real = out_real[row]
                for j in range(m):
                    orow_real[start + j] = ar[j] + ar[j]
            else:
                orow = out[row]
                for j in range(m):
                    orow[start + j] = complex(ar[j], ai[j])


def vandermonde(v, x, length, *, log, conj_pairs):
    """Kernel entry for ``_api.vandermonde``: v, x (count, N) of one complex dtype."""
    count, n = v.shape
    real = np.finfo(v.dtype).dtype
    if log:
        s = x.astype(np.complex128)
    else:
        # x**l = exp(l·log x); log 0 = −inf makes every power but the zeroth vanish.
        x128 = x.astype(np.complex128)
        with np.errstate(divide="ignore"):
            s = np.where(x128 == 0, complex(-np.inf, 0.0), np.log(np.where(x128 == 0, 1, x128)))
    block = VANDERMONDE_BLOCK
    while block > TABLE_SPLIT and n * block > _TABLE_ENTRIES:
        block //= 2
    block = min(block, max(length, 1))
    nblocks = -(-length // block)
    threads = numba.get_num_threads()
    nsuper = min(nblocks, max(1, -(-4 * threads // count)))
    if conj_pairs:
        out_real = np.empty((count, length), dtype=real)
        out = np.empty((1, 0), dtype=v.dtype)
    else:
        out = np.empty((count, length), dtype=v.dtype)
        out_real = np.empty((1, 0), dtype=real)
    _vandermonde_kernel(_readonly(v.astype(np.complex128)), _readonly(s),
                        length, block, nsuper, conj_pairs, out, out_real)
    return out_real if conj_pairs else out

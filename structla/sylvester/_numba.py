"""CPU fast path of the sign method.

Large matrices go through the stacked NumPy iteration of ``_reference`` (its cost is
LAPACK inverses and BLAS-3 products, already multithreaded). Stacks of small
matrices, where NumPy's per-call overhead and its slow stacked inverse dominate, run
one problem at a time per core in a Numba kernel: the same scaled Newton iteration and
stopping rule, with LAPACK inverses and BLAS products called from compiled code. Its
tail differs: once the blocks are near ±I it solves ``A_k X + X B_k = C_k`` by
two-product sweeps (``_near_identity_solve``) instead of eight-product Newton–Schulz
steps, and it measures each problem's backward error and separation estimate before
the problem leaves the cache, for ``_api``'s checks. Inverses are two thirds of the time
at n = 64.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import numpy as np

from .._core.jit import kernel
from . import _reference

__all__ = ["sylvester_sign"]

#: Largest max(n, m) handled one problem per thread; above this BLAS-3 threading wins.
SMALL = 160
#: Fewest problems in a stack worth the kernel; a few small problems cost little either way.
MIN_STACK = 8
#: Relative Newton update below which the blocks are close enough to ±I for the
#: near-identity solve. With the 1-/∞-norm scaling that is after three steps on the
#: benchmark spectra, where ‖A_k ∓ I‖ ≈ 4·10⁻³ and the sweeps gain 3–5 digits each.
TAIL_SWITCH = 0.1
#: Most sweeps of the near-identity solve before Newton takes over again.
MAX_SWEEPS = 16


@kernel
def _fro2(x):
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[i, j]
            total += v.real * v.real + v.imag * v.imag
    return total


@kernel
def _norm_1_inf(x):
    """(‖x‖₁, ‖x‖∞): the largest column and row sums of |x| (columns outer, the memory
    order of the Fortran-order blocks)."""
    n, m = x.shape
    rows = np.zeros(n)
    one = 0.0
    for j in range(m):
        col = 0.0
        for i in range(n):
            v = abs(x[i, j])
            col += v
            rows[i] += v
        one = max(one, col)
    return one, rows.max() if n > 0 else 0.0


@kernel
def _newton_update(xk, xi, mu):
    """``xk ← (μ·xk + xi/μ)/2`` in place; returns (‖change‖², ‖new‖²)."""
    change = 0.0
    size = 0.0
    for i in range(xk.shape[0]):
        for j in range(xk.shape[1]):
            v = (mu * xk[i, j] + xi[i, j] / mu) * 0.5
            d = v - xk[i, j]
            change += d.real * d.real + d.imag * d.imag
            size += v.real * v.real + v.imag * v.imag
            xk[i, j] = v
    return change, size


@kernel
def _fortran_copy(x, factor):
    """``factor·x`` in Fortran order: the layout LAPACK works in, so ``np.linalg.inv``
    copies it straight and its result lines up element by element with the matrix."""
    n, m = x.shape
    out = np.empty((m, n), dtype=x.dtype).T
    for j in range(m):
        for i in range(n):
            out[i, j] = factor * x[i, j]
    return out


@kernel
def _ct_fortran(x, factor):
    """``factor·xᴴ`` in Fortran order, the layout ``np.linalg.inv`` returns (one array
    type for both branches that define an inverse)."""
    n, m = x.shape
    out = np.empty((n, m), dtype=x.dtype).T
    for i in range(n):
        for j in range(m):
            out[j, i] = factor * np.conj(x[i, j])
    return out


@kernel
def _power_of_two(a, b, lyap):
    """``2^round(log2 max|entry|)`` of A and B (1 for zero or non-finite), the scaling
    of ``_reference.power_of_two_scale``."""
    peak = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            peak = max(peak, abs(a[i, j]))
    if not lyap:
        for i in range(b.shape[0]):
            for j in range(b.shape[1]):
                peak = max(peak, abs(b[i, j]))
    if peak > 0 and math.isfinite(peak):
        return 2.0 ** round(math.log2(peak))
    return 1.0


@kernel
def _scale_shift(f, s):
    """``f ← s·f − I`` in place."""
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            f[i, j] = s * f[i, j] - (1 if i == j else 0)


@kernel
def _near_identity_solve(ak, bk, ck, s, x, t, u, tol, max_steps):
    """Solve ``A_k X + X B_k = C_k`` where ``A_k = s(I + F_a)``, ``B_k = s(I + F_b)``, F small.

    Jacobi sweeps ``X ← (s·C_k − F_a X − X F_b)/2`` contract by about ``‖F_a‖ + ‖F_b‖`` per
    sweep at two matrix products each, against eight for a Newton–Schulz step on the
    block matrix. Returns (sweeps, converged); X is left in ``x``.
    """
    n, m = ck.shape
    fa = _fortran_copy(ak, 1.0)
    fb = _fortran_copy(bk, 1.0)
    _scale_shift(fa.T, s)
    _scale_shift(fb.T, s)
    for i in range(n):
        for j in range(m):
            x[i, j] = 0.5 * s * ck[i, j]
    prev = np.inf
    sweeps = 0
    while sweeps < max_steps:
        sweeps += 1
        np.dot(fa, x, t)
        np.dot(x, fb, u)
        change = 0.0
        size = 0.0
        for i in range(n):
            for j in range(m):
                v = 0.5 * (s * ck[i, j] - t[i, j] - u[i, j])
                d = v - x[i, j]
                change += d.real * d.real + d.imag * d.imag
                size += v.real * v.real + v.imag * v.imag
                x[i, j] = v
        change = math.sqrt(change)
        size = math.sqrt(size)
        if not math.isfinite(change):
            return sweeps, False
        if change <= tol * size:
            return sweeps, True
        if sweeps > 1:
            rate = change / prev
            # Linear convergence at ``rate``: what is left after this sweep is about
            # change·rate/(1 − rate).
            if rate < 0.5 and change * rate <= (1 - rate) * tol * size:
                return sweeps, True
            if rate >= 0.5:
                # Not contracting any more: rounding noise when already tiny, else F is
                # too large for these sweeps and Newton has to go on.
                return sweeps, change <= math.sqrt(tol) * size
        prev = change
    return sweeps, False


@kernel
def _frobenius_stats(a, b, c, x, t, u, lyap):
    """(backward error, separation estimate) of X, as ``_reference.backward_error`` and
    ``_reference.separation_estimate`` compute them."""
    np.dot(a, x, t)
    if lyap:
        np.dot(x, _ct_fortran(a, 1.0), u)
    else:
        np.dot(x, b, u)
    res = 0.0
    for i in range(t.shape[0]):
        for j in range(t.shape[1]):
            v = t[i, j] + u[i, j] - c[i, j]
            res += v.real * v.real + v.imag * v.imag
    na = math.sqrt(_fro2(a))
    nb = na if lyap else math.sqrt(_fro2(b))
    nx = math.sqrt(_fro2(x))
    nc = math.sqrt(_fro2(c))
    scale = (na + nb) * nx + nc
    backward = math.sqrt(res) / scale if scale > 0 else 0.0
    den = (na + nb) * nx
    if nc > 0 and den > 0:
        separation = nc / den
    elif den > 0:
        separation = 0.0
    else:
        separation = np.inf
    return backward, separation


@kernel
def _sign_one(a, b, c, x, tol, max_iter, lyap, scaling_off, tail_switch, max_sweeps):
    """Scaled Newton, then the near-identity solve, on one problem; writes X into ``x``.

    Returns (iterations, converged, trace of A block, trace of B block).
    """
    n, m = c.shape
    # The iteration is invariant under (A, B, C) → (A, B, C)/s; a power of two near the
    # largest entry keeps norms and scalings far from overflow, at no rounding cost.
    shrink = 1.0 / _power_of_two(a, b, lyap)
    # A and B blocks and their inverses are kept in Fortran order (LAPACK's), and the
    # elementwise loops run over their transposes, i.e. in memory order.
    ak = _fortran_copy(a, shrink)
    bk = _ct_fortran(a, shrink) if lyap else _fortran_copy(b, shrink)
    ck = np.empty_like(c)
    for i in range(n):
        for j in range(m):
            ck[i, j] = shrink * c[i, j]
    t = np.empty_like(ck)
    u = np.empty_like(ck)
    delta = np.inf
    converged = False
    solved = False
    switch = tail_switch
    it = 0
    while it < max_iter:
        it += 1
        ai = np.linalg.inv(ak)
        bi = _ct_fortran(ai, 1.0) if lyap else np.linalg.inv(bk)
        mu = 1.0
        if delta >= scaling_off:
            # Norm scaling of Z's diagonal blocks by (‖D⁻¹‖₁‖D⁻¹‖∞/‖D‖₁‖D‖∞)^¼, D = diag(A, B):
            # the 1-/∞-norm estimate of the 2-norm scaling. On non-normal blocks it leaves
            # ‖A_k ∓ I‖ ten times smaller after three steps than the Frobenius scaling.
            a1, ainf = _norm_1_inf(ak)
            b1, binf = (ainf, a1) if lyap else _norm_1_inf(bk)
            ai1, aiinf = _norm_1_inf(ai)
            bi1, biinf = (aiinf, ai1) if lyap else _norm_1_inf(bi)
            mu = math.sqrt(math.sqrt(max(ai1, bi1) * max(aiinf, biinf)
                                     / (max(a1, b1) * max(ainf, binf))))
        np.dot(ai, ck, t)
        np.dot(t, bi, u)
        _newton_update(ck, u, mu)
        da, sa = _newton_update(ak.T, ai.T, mu)
        if lyap:
            bk = _ct_fortran(ak, 1.0)
            db, sb = da, sa
        else:
            db, sb = _newton_update(bk.T, bi.T, mu)
        step = math.sqrt((da + db) / (sa + sb))
        if not math.isfinite(step):
            delta = step
            break
        # Quadratic convergence: the error after this step is about step²/2; a
        # step that no longer halves is rounding noise.
        if step * step <= tol or (step < 1e-3 and step > delta / 2):
            converged = True
            delta = step
            break
        delta = step
        if step < switch:
            ta = 0.0
            for i in range(n):
                ta += ak[i, i].real
            tb = 0.0
            for i in range(m):
                tb += bk[i, i].real
            s = 1.0 if ta >= 0 else -1.0
            # Only when both blocks head for the same ±I; otherwise Newton runs on, and
            # the final traces report the failed half-plane condition.
            if abs(ta - s * n) < 0.5 and abs(tb - s * m) < 0.5:
                sweeps, ok = _near_identity_solve(ak, bk, ck, s, x, t, u, tol,
                                                  min(max_sweeps, max_iter - it))
                it += sweeps
                if ok:
                    converged = True
                    solved = True
                    break
                switch = switch / 10
    trace_a = 0.0
    for i in range(n):
        trace_a += ak[i, i].real
    trace_b = 0.0
    for i in range(m):
        trace_b += bk[i, i].real
    if not solved:
        s = 0.5 if trace_a >= 0 else -0.5
        for i in range(n):
            for j in range(m):
                x[i, j] = s * ck[i, j]
    return it, converged and math.isfinite(delta), trace_a, trace_b


@kernel
def _sign_stack(a, b, c, x, iterations, converged, stats, start, stop, tol, max_iter, lyap,
                scaling_off, tail_switch, max_sweeps):
    """Problems ``start:stop``; ``stats`` rows: trace of the A block, of the B block,
    backward error, separation estimate."""
    t = np.empty_like(c[0])
    u = np.empty_like(c[0])
    for p in range(start, stop):
        it, ok, ta, tb = _sign_one(a[p], b[p], c[p], x[p], tol, max_iter, lyap, scaling_off,
                                   tail_switch, max_sweeps)
        iterations[p] = it
        converged[p] = ok
        stats[p, 0] = ta
        stats[p, 1] = tb
        stats[p, 2], stats[p, 3] = _frobenius_stats(a[p], b[p], c[p], x[p], t, u, lyap)


def _run_stack(*args: Any, count: int) -> None:
    """``_sign_stack`` over ``count`` problems, in contiguous chunks on all cores.

    The kernel releases the GIL (``nogil``), so plain threads run the chunks in
    parallel, the calling thread taking the first; this avoids compiling a Numba
    parallel region per dtype, which costs far more than the kernel itself for a loop
    whose iterations are whole solves.
    """
    workers = min(os.cpu_count() or 1, count)
    bounds = np.linspace(0, count, workers + 1).astype(int)
    chunks = [(int(lo), int(hi)) for lo, hi in pairwise(bounds)]
    head, tail = args[:7], args[7:]
    if workers == 1:
        _sign_stack(*head, 0, count, *tail)
        return
    with ThreadPoolExecutor(workers - 1) as pool:
        jobs = [pool.submit(_sign_stack, *head, lo, hi, *tail) for lo, hi in chunks[1:]]
        _sign_stack(*head, *chunks[0], *tail)
        for job in jobs:
            job.result()


def sylvester_sign(A: Any, B: Any | None, C: Any, *, tol: float, max_iter: int
                   ) -> tuple[Any, dict[str, Any]]:
    """Sign method on stacks ``(count, n, n)``, ``(count, m, m)`` (or None: Aᴴ), ``(count, n, m)``."""
    count, n, m = C.shape
    if max(n, m) > SMALL or count < MIN_STACK:
        return _reference.sylvester_sign(A, B, C, tol=tol, max_iter=max_iter)
    lyap = B is None
    a = np.ascontiguousarray(A)
    b = a if lyap else np.ascontiguousarray(B)
    c = np.ascontiguousarray(C)
    x = np.empty_like(c)
    iterations = np.zeros(count, dtype=np.int64)
    converged = np.zeros(count, dtype=np.bool_)
    stats = np.zeros((count, 4))
    try:
        _run_stack(a, b, c, x, iterations, converged, stats, tol, max_iter, lyap,
                   _reference.SCALING_OFF, TAIL_SWITCH, MAX_SWEEPS, count=count)
    except np.linalg.LinAlgError:
        # An exactly singular iterate: the reference marks the offending problems
        # (NaN instead of an exception) so the caller can say which one failed.
        return _reference.sylvester_sign(A, B, C, tol=tol, max_iter=max_iter)
    trace_a, trace_b = stats[:, 0], stats[:, 1]
    s = np.where(trace_a >= 0, 1.0, -1.0)
    halfplane = (np.abs(trace_a - s * n) < 0.5) & (np.abs(trace_b - s * m) < 0.5)
    finite = np.isfinite(x).all(axis=(1, 2)) & np.isfinite(stats[:, :2]).all(axis=1)
    status = {"iterations": iterations, "converged": converged & finite, "halfplane": halfplane,
              "finite": finite, "trace_a": trace_a, "trace_b": trace_b,
              "backward_error": stats[:, 2], "separation": stats[:, 3]}
    return x, status

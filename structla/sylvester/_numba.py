"""CPU fast path of the sign method.

Large matrices go through the stacked NumPy iteration of ``_reference`` (its cost is
LAPACK inverses and BLAS-3 products, already multithreaded). Stacks of small
matrices, where NumPy's per-call overhead and its slow stacked inverse dominate, run
one problem at a time per core in a Numba kernel: the same scaled Newton iteration, Newton–Schulz
tail and stopping rules, with LAPACK inverses and BLAS products called from compiled code.
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


@kernel
def _fro2(x):
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[i, j]
            total += v.real * v.real + v.imag * v.imag
    return total


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
def _ns_update(xk, prod):
    """``xk ← (3·xk − prod)/2`` in place (one Newton–Schulz block update)."""
    for i in range(xk.shape[0]):
        for j in range(xk.shape[1]):
            xk[i, j] = (3 * xk[i, j] - prod[i, j]) * 0.5


@kernel
def _minus_identity2(p):
    """``‖P − I‖_F²``."""
    total = 0.0
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            v = p[i, j] - 1 if i == j else p[i, j]
            total += v.real * v.real + v.imag * v.imag
    return total


@kernel
def _sign_one(a, b, c, x, tol, max_iter, lyap, scaling_off, ns_switch):
    """Scaled Newton, then Newton–Schulz, on one problem; writes X into ``x``.

    Returns (iterations, converged, trace of A block, trace of B block).
    """
    n, m = c.shape
    ak = a.copy()
    bk = np.ascontiguousarray(a.conj().T) if lyap else b.copy()
    ck = c.copy()
    delta = np.inf
    converged = False
    newton = True
    switch = ns_switch
    it = 0
    while it < max_iter:
        it += 1
        if newton:
            ai = np.linalg.inv(ak)
            bi = (np.ascontiguousarray(ai.conj().T) if lyap
                  else np.ascontiguousarray(np.linalg.inv(bk)))
            na2 = _fro2(ak)
            nb2 = na2 if lyap else _fro2(bk)
            nai2 = _fro2(ai)
            nbi2 = nai2 if lyap else _fro2(bi)
            mu = math.sqrt(math.sqrt((nai2 + nbi2) / (na2 + nb2)))
            if delta < scaling_off:
                mu = 1.0
            t = (ai @ ck) @ bi
            _newton_update(ck, t, mu)
            da, sa = _newton_update(ak, ai, mu)
            if lyap:
                bk = np.ascontiguousarray(ak.conj().T)
                db, sb = da, sa
            else:
                db, sb = _newton_update(bk, bi, mu)
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
            newton = step >= switch
            delta = step
        else:
            p = ak @ ak
            r = np.ascontiguousarray(p.conj().T) if lyap else bk @ bk
            res = max(math.sqrt(_minus_identity2(p) / n), math.sqrt(_minus_identity2(r) / m))
            if not math.isfinite(res):
                delta = res
                break
            u = ak @ (ak @ ck - ck @ bk) + ck @ r
            _ns_update(ck, u)
            # The step squares the residual measured before it: when that square is
            # below tol (or the residual stagnates at rounding level) only C needed it.
            if res * res <= tol or (res < 1e-3 and res > delta / 2):
                converged = True
                delta = res
                break
            _ns_update(ak, ak @ p)
            if lyap:
                bk = np.ascontiguousarray(ak.conj().T)
            else:
                _ns_update(bk, bk @ r)
            if res >= 0.5:
                # Too far from ±I for Newton–Schulz to contract: back to Newton, and
                # switch again only once much closer.
                newton = True
                switch = switch / 10
            delta = res
    trace_a = 0.0
    for i in range(n):
        trace_a += ak[i, i].real
    trace_b = 0.0
    for i in range(m):
        trace_b += bk[i, i].real
    s = 0.5 if trace_a >= 0 else -0.5
    for i in range(n):
        for j in range(m):
            x[i, j] = s * ck[i, j]
    return it, converged and math.isfinite(delta), trace_a, trace_b


@kernel
def _sign_stack(a, b, c, x, iterations, converged, traces, start, stop, tol, max_iter, lyap,
                scaling_off, ns_switch):
    for p in range(start, stop):
        it, ok, ta, tb = _sign_one(a[p], b[p], c[p], x[p], tol, max_iter, lyap, scaling_off,
                                   ns_switch)
        iterations[p] = it
        converged[p] = ok
        traces[p, 0] = ta
        traces[p, 1] = tb


def _run_stack(*args: Any, count: int) -> None:
    """``_sign_stack`` over ``count`` problems, in contiguous chunks on all cores.

    The kernel releases the GIL (``nogil``), so plain threads run the chunks in
    parallel; this avoids compiling a Numba parallel region per dtype, which costs far
    more than the kernel itself for a loop whose iterations are whole solves.
    """
    workers = min(os.cpu_count() or 1, count)
    bounds = np.linspace(0, count, workers + 1).astype(int)
    head, tail = args[:7], args[7:]
    if workers == 1:
        _sign_stack(*head, 0, count, *tail)
        return
    with ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(_sign_stack, *head, int(lo), int(hi), *tail)
                for lo, hi in pairwise(bounds)]
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
    traces = np.zeros((count, 2))
    try:
        _run_stack(a, b, c, x, iterations, converged, traces, tol, max_iter, lyap,
                   _reference.SCALING_OFF, _reference.NS_SWITCH_CPU, count=count)
    except np.linalg.LinAlgError:
        # An exactly singular iterate: the reference marks the offending problems
        # (NaN instead of an exception) so the caller can say which one failed.
        return _reference.sylvester_sign(A, B, C, tol=tol, max_iter=max_iter)
    s = np.where(traces[:, 0] >= 0, 1.0, -1.0)
    halfplane = (np.abs(traces[:, 0] - s * n) < 0.5) & (np.abs(traces[:, 1] - s * m) < 0.5)
    finite = np.isfinite(x).all(axis=(1, 2)) & np.isfinite(traces).all(axis=1)
    status = {"iterations": iterations, "converged": converged & finite, "halfplane": halfplane,
              "finite": finite, "trace_a": traces[:, 0], "trace_b": traces[:, 1]}
    return x, status

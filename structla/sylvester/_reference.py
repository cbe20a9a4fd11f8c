"""Sylvester solvers written against the array namespace ``xp`` (NumPy or CuPy).

``sylvester_sign`` is the matrix-sign method of MATH D4 on stacks ``(count, n, n)``:
the Newton iteration on the block matrix ``Z = [[A, C], [0, -B]]`` carried out block by
block, so the ``(n + m)``-square matrix is never formed. Every iterate keeps the form
``Z_k = [[A_k, C_k], [0, -B_k]]`` and ``C_k = A_k X + X B_k`` for the one solution X
(functions of Z commute with the similarity that block-diagonalises it), so when
``A_k → s·I`` and ``B_k → s·I`` the top-right block gives ``X = s·C_k / 2``.

``sylvester_schur`` is Bartels–Stewart with LAPACK (``gees``-based Schur forms and
``trsyl``) through SciPy; it is NumPy-only and loops over the stack.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .._core.namespace import array_namespace

__all__ = ["backward_error", "power_of_two_scale", "separation_estimate", "sign_iteration",
           "sylvester_schur", "sylvester_sign"]

#: Below this relative Newton update, the determinant-free norm scaling is switched
#: off: near convergence it would only slow the quadratic rate (Higham, Functions of
#: Matrices, §5.5).
SCALING_OFF = 1e-2

#: On the CPU, scaled Newton runs until its relative update is below this; the last one
#: or two steps are Newton–Schulz (an inverse costs about four matrix products there).
NS_SWITCH_CPU = 1e-2


def _fro(x: Any, xp: ModuleType) -> Any:
    """Frobenius norm of each matrix of a stack, as a real ``(count,)`` array."""
    return xp.sqrt(xp.sum(xp.abs(x) ** 2, axis=(-2, -1)))


def _norm_1_inf(x: Any, xp: ModuleType) -> tuple[Any, Any]:
    """(‖x‖₁, ‖x‖∞) of each matrix of a stack: largest column and row sums of |x|."""
    a = xp.abs(x)
    return a.sum(axis=-2).max(axis=-1), a.sum(axis=-1).max(axis=-1)


def _ct(x: Any, xp: ModuleType) -> Any:
    """Conjugate transpose of each matrix of a stack."""
    return xp.conj(xp.swapaxes(x, -1, -2))


def _inv(x: Any, xp: ModuleType) -> Any:
    """Inverse of each matrix of a stack; a singular one becomes NaN instead of raising.

    (CuPy already returns non-finite values there; NumPy raises for the whole stack.)
    """
    try:
        return xp.linalg.inv(x)
    except np.linalg.LinAlgError:
        out = xp.full_like(x, xp.nan)
        for i in range(x.shape[0]):
            try:
                out[i] = xp.linalg.inv(x[i])
            except np.linalg.LinAlgError:
                continue
        return out


def power_of_two_scale(*mats: Any, xp: ModuleType) -> Any:
    """``2^round(log2 max|entry|)`` per problem, shaped ``(count, 1, 1)``; 1 for 0 or non-finite."""
    peak = xp.abs(mats[0]).max(axis=(-2, -1))
    for x in mats[1:]:
        peak = xp.maximum(peak, xp.abs(x).max(axis=(-2, -1)))
    ok = (peak > 0) & xp.isfinite(peak)
    power = xp.where(ok, xp.round(xp.log2(xp.where(ok, peak, 1))), 0)
    return xp.exp2(power).astype(peak.dtype)[:, None, None]


def sign_iteration(A: Any, B: Any | None, C: Any, xp: ModuleType, *, tol: float, max_iter: int,
                   ns_switch: float, inv: Callable[[Any], Any] | None = None
                   ) -> tuple[Any, dict[str, Any]]:
    """The block sign iteration for ``A X + X B = C`` on stacks.

    Parameters
    ----------
    A : (count, n, n) array
    B : (count, m, m) array or None
        ``None`` means ``B = Aᴴ`` (Lyapunov): one inverse per step instead of two.
    C : (count, n, m) array
    tol : float
        Target relative accuracy of the sign blocks.
    max_iter : int
    ns_switch : float
        Switch from scaled Newton to Newton–Schulz once the relative Newton update
        falls below this (``0`` keeps Newton to the end).
    inv : callable, optional
        Inverse of each matrix of a stack (default: ``xp.linalg.inv``, NaN where
        singular).

    Returns
    -------
    X : (count, n, m) array
    status : dict of (count,) arrays
        ``iterations``, ``converged`` (bool), ``halfplane`` (bool: both sign blocks
        equal the same ±I, i.e. the spectra of A and B lie in one open half-plane),
        ``finite`` (bool: no singular or overflowing iterate), ``trace_a``, ``trace_b``
        (real parts of the traces of the final A and B blocks).
    """
    count, n, m = C.shape
    real = xp.empty(0, dtype=A.dtype).real.dtype
    lyap = B is None
    # The iteration is invariant under (A, B, C) → (A, B, C)/s; a power of two near the
    # largest entry keeps its norms and scalings far from overflow, at no rounding cost.
    scale = power_of_two_scale(*((A,) if lyap else (A, B)), xp=xp)
    A, B, C = A / scale, None if lyap else B / scale, C / scale
    Ak, Bk, Ck = A, (_ct(A, xp) if lyap else B), C
    eye_n = xp.eye(n, dtype=A.dtype)
    eye_m = xp.eye(m, dtype=A.dtype)
    iterations = xp.zeros(count, dtype=np.int64)
    done = xp.zeros(count, dtype=bool)
    delta = xp.full(count, xp.inf, dtype=real)
    newton = True
    root_tol = math.sqrt(tol)
    inv = inv if inv is not None else (lambda x: _inv(x, xp))
    for _ in range(max_iter):
        if newton:
            Ai = inv(Ak)
            Bi = _ct(Ai, xp) if lyap else inv(Bk)
            # Norm scaling of Z's diagonal blocks D = diag(A, B): one μ for the whole block
            # matrix, since any other scaling would change the sign's top-right block;
            # (‖D⁻¹‖₁‖D⁻¹‖∞/‖D‖₁‖D‖∞)^¼ estimates the 2-norm scaling, which on
            # non-normal blocks converges in fewer steps than the Frobenius one.
            a1, ainf = _norm_1_inf(Ak, xp)
            b1, binf = (ainf, a1) if lyap else _norm_1_inf(Bk, xp)
            ai1, aiinf = _norm_1_inf(Ai, xp)
            bi1, biinf = (aiinf, ai1) if lyap else _norm_1_inf(Bi, xp)
            mu = xp.sqrt(xp.sqrt(xp.maximum(ai1, bi1) * xp.maximum(aiinf, biinf)
                                 / (xp.maximum(a1, b1) * xp.maximum(ainf, binf))))
            mu = xp.where(delta < SCALING_OFF, 1.0, mu).astype(real)[:, None, None]
            A1 = (mu * Ak + Ai / mu) / 2
            B1 = _ct(A1, xp) if lyap else (mu * Bk + Bi / mu) / 2
            C1 = (mu * Ck + (Ai @ Ck) @ Bi / mu) / 2
            step = xp.sqrt((_fro(A1 - Ak, xp) ** 2 + _fro(B1 - Bk, xp) ** 2)
                           / (_fro(A1, xp) ** 2 + _fro(B1, xp) ** 2))
            finite = xp.isfinite(step)
            # Quadratic convergence: the error after this step is about step²/2.
            now_done = ~done & finite & (step * step <= tol)
            stalled = ~done & finite & (step < 1e-3) & (step > delta / 2)
            delta = xp.where(done, delta, step)
        else:
            P = Ak @ Ak
            R = _ct(P, xp) if lyap else Bk @ Bk
            res = xp.maximum(_fro(P - eye_n, xp) / math.sqrt(n), _fro(R - eye_m, xp) / math.sqrt(m))
            finite = xp.isfinite(res)
            T = Ak @ Ck - Ck @ Bk
            C1 = (3 * Ck - Ak @ T - Ck @ R) / 2
            A1 = (3 * Ak - Ak @ P) / 2
            B1 = _ct(A1, xp) if lyap else (3 * Bk - Bk @ R) / 2
            # The residual ‖Z² − I‖ is measured before this step; the step squares it.
            now_done = ~done & finite & (res <= root_tol)
            stalled = ~done & finite & (res < 1e-3) & (res > delta / 2)
            delta = xp.where(done, delta, res)
        keep = done[:, None, None]
        Ak = xp.where(keep, Ak, A1)
        Bk = xp.where(keep, Bk, B1)
        Ck = xp.where(keep, Ck, C1)
        iterations = iterations + (~done)
        done = done | now_done | stalled | ~finite
        # One host synchronisation per step: all decisions travel together.
        all_done, all_close, too_far = (bool(f) for f in xp.stack(
            [xp.all(done), xp.all(done | (delta < ns_switch)),
             xp.any(~done & ~(delta < 0.5))]).tolist())
        if all_done:
            break
        if newton:
            newton = not (ns_switch > 0 and all_close)
        elif too_far:
            # ‖Z² − I‖ too large for Newton–Schulz to contract: back to Newton, and
            # switch again only once much closer.
            newton, ns_switch = True, ns_switch / 10
    converged = xp.isfinite(delta) & done
    traces_a = xp.real(xp.trace(Ak, axis1=-2, axis2=-1))
    traces_b = xp.real(xp.trace(Bk, axis1=-2, axis2=-1))
    s = xp.where(traces_a >= 0, 1.0, -1.0).astype(real)
    halfplane = (xp.abs(traces_a - s * n) < 0.5) & (xp.abs(traces_b - s * m) < 0.5)
    X = (s[:, None, None] / 2) * Ck
    status = {"iterations": iterations, "converged": converged, "halfplane": halfplane,
              "finite": xp.isfinite(delta), "trace_a": traces_a, "trace_b": traces_b}
    return X.astype(C.dtype, copy=False), status


def backward_error(A: Any, B: Any | None, C: Any, X: Any, xp: ModuleType) -> Any:
    """``‖AX + XB − C‖_F / ((‖A‖_F + ‖B‖_F)‖X‖_F + ‖C‖_F)`` per problem (``B=None``: Aᴴ)."""
    Bm = _ct(A, xp) if B is None else B
    r = _fro(A @ X + X @ Bm - C, xp)
    scale = (_fro(A, xp) + _fro(Bm, xp)) * _fro(X, xp) + _fro(C, xp)
    return xp.where(scale > 0, r / xp.where(scale > 0, scale, 1), 0 * r)


def separation_estimate(A: Any, B: Any | None, C: Any, X: Any, xp: ModuleType) -> Any:
    """``‖C‖_F / ((‖A‖_F + ‖B‖_F)‖X‖_F)``: an upper bound on sep(A, −B)/(‖A‖_F + ‖B‖_F).

    ``sep(A, −B) = min ‖AY + YB‖_F/‖Y‖_F`` over Y ≠ 0, so the computed pair (X, C) bounds
    it from above; ``inf`` where C = 0 (nothing learned).
    """
    Bm = _ct(A, xp) if B is None else B
    num = _fro(C, xp)
    den = (_fro(A, xp) + _fro(Bm, xp)) * _fro(X, xp)
    ok = (num > 0) & (den > 0)
    return xp.where(ok, num / xp.where(ok, den, 1), xp.where(den > 0, 0 * num, xp.inf))


def sylvester_sign(A: Any, B: Any | None, C: Any, *, tol: float, max_iter: int
                   ) -> tuple[Any, dict[str, Any]]:
    """Sign method on stacks (see :func:`sign_iteration`), with the CPU's switch point."""
    xp = array_namespace(A=A, C=C)
    return sign_iteration(A, B, C, xp, tol=tol, max_iter=max_iter, ns_switch=NS_SWITCH_CPU)


def _schur_eigenvalues(T: np.ndarray) -> np.ndarray:
    """Eigenvalues of a (quasi-)upper-triangular Schur factor, in diagonal order."""
    d = np.diag(T).astype(np.complex128)
    if np.iscomplexobj(T) or T.shape[0] < 2:
        return d
    sub = np.diag(T, -1)
    for i in np.flatnonzero(sub != 0):
        a, b, c, e = T[i, i], T[i, i + 1], T[i + 1, i], T[i + 1, i + 1]
        half = (a + e) / 2
        root = np.sqrt(complex(((a - e) / 2) ** 2 + b * c))
        d[i], d[i + 1] = half + root, half - root
    return d


def sylvester_schur(A: np.ndarray, B: np.ndarray | None, C: np.ndarray
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bartels–Stewart on stacks (NumPy only): Schur forms, ``trsyl``, back-transform.

    Returns X and a status dict with ``separation`` (min |λᵢ(A) + λⱼ(B)| over
    ‖A‖_F + ‖B‖_F, from the Schur diagonals) and ``perturbed`` (``trsyl`` reported
    info = 1: it had to perturb nearly common eigenvalues, so X is not a solution).
    """
    import scipy.linalg as sla
    from scipy.linalg import lapack

    count, n, m = C.shape
    complex_ = np.iscomplexobj(A) or np.iscomplexobj(C) or (B is not None and np.iscomplexobj(B))
    dtype = C.dtype
    trsyl = lapack.get_lapack_funcs("trsyl", dtype=np.dtype(dtype))
    X = np.empty((count, n, m), dtype=dtype)
    separation = np.empty(count)
    perturbed = np.zeros(count, dtype=bool)
    output = "complex" if complex_ else "real"
    for i in range(count):
        TA, U = sla.schur(A[i], output=output)
        if B is None:
            TB, V = TA, U
            tranb = "C" if complex_ else "T"
        else:
            TB, V = sla.schur(B[i], output=output)
            tranb = "N"
        F = U.conj().T @ C[i] @ V
        Y, scale, info = trsyl(TA, TB, F, tranb=tranb)
        if info < 0:
            raise ValueError(f"LAPACK trsyl rejected argument {-info}")
        X[i] = (U @ Y @ V.conj().T) / scale
        perturbed[i] = info == 1
        lam = _schur_eigenvalues(TA)
        mu = np.conj(lam) if B is None else _schur_eigenvalues(TB)
        norm = np.linalg.norm(A[i]) * (2 if B is None else 1) + (0 if B is None else np.linalg.norm(B[i]))
        gap = np.abs(lam[:, None] + mu[None, :]).min()
        separation[i] = gap / norm if norm > 0 else np.inf
    return X, {"separation": separation, "perturbed": perturbed}

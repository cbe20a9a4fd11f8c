"""Public Sylvester and Lyapunov solvers: validation, batching, dispatch, honest failure."""

from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from .._core.batch import Batch, broadcast_batch
from .._core.dispatch import implementation
from .._core.errors import IllConditionedWarning, LinAlgError
from .._core.info import IterationInfo
from .._core.namespace import array_namespace, is_cupy_namespace, to_numpy
from .._core.validate import (
    as_array,
    check_finite,
    check_ndim,
    check_square,
    checks_finite,
    compute_dtype,
    result_dtype,
)
from ._reference import backward_error, separation_estimate, sylvester_schur

__all__ = ["solve_lyapunov", "solve_sylvester"]

METHODS = ("auto", "sign", "schur")

#: A relative separation below ``SINGULAR · max(n, m) · eps`` means A and −B share an
#: eigenvalue to working precision: the equation is singular and X is not defined.
SINGULAR = 4.0

#: The sign method's answer is accepted (``method="auto"``) when its backward error is
#: at most ``ACCEPT · max(n, m) · eps``; otherwise auto falls back to Bartels–Stewart.
ACCEPT = 50.0


def solve_sylvester(A: Any, B: Any, C: Any, *, method: str = "auto",
                    check_finite: bool | None = None, tol: float | None = None,
                    max_iter: int | None = None, return_info: bool = False) -> Any:
    r"""Solve the Sylvester equation ``A X + X B = C``.

    Parameters
    ----------
    A : (..., n, n) array_like
    B : (..., m, m) array_like
    C : (..., n, m) array_like
        Leading (batch) dimensions of the three operands broadcast together.
    method : {"auto", "sign", "schur"}, optional
        ``"sign"``: the matrix-sign iteration (matrix inverses and products only; runs on
        NumPy and CuPy); needs the spectra of A and B in one open half-plane.
        ``"schur"``: Bartels–Stewart with LAPACK (NumPy only), any spectra.
        ``"auto"`` (default): the sign method, checked after the fact; on the CPU the
        problems where it does not apply or is not accurate are redone with Schur, on
        the GPU they raise ``LinAlgError`` saying which condition failed.
    check_finite : bool, optional
        Reject NaN and infinity in the inputs. Default True for NumPy, False for CuPy
        (checking would synchronise with the device).
    tol : float, optional
        Relative accuracy the sign iteration aims at; default ``10·eps``.
    max_iter : int, optional
        Most sign iterations; default 100.
    return_info : bool, optional
        Also return an :class:`structla.IterationInfo`.

    Returns
    -------
    X : (..., n, m) array
        Same array library as the inputs; dtype the promotion of the input dtypes
        (integers → float64).
    info : IterationInfo
        Only with ``return_info=True``: ``iterations`` (most over the batch),
        ``error_estimate`` (largest backward error
        ``‖AX + XB − C‖_F / ((‖A‖_F + ‖B‖_F)‖X‖_F + ‖C‖_F)``), ``converged``, ``method``
        (``"sign"``, ``"schur"`` or ``"sign+schur"``), ``extra`` with per-problem
        ``backward_error``, ``separation`` and ``iterations`` arrays (NumPy, batch-shaped).

    Raises
    ------
    ValueError
        Wrong shapes, unknown method, ``method="schur"`` on CuPy arrays, or NaN/Inf
        with ``check_finite``.
    structla.LinAlgError
        A and −B have a common eigenvalue (to working precision): the equation is
        singular. Also for ``method="sign"`` (and ``"auto"`` on the GPU) when the
        half-plane condition fails, an iterate is singular (an eigenvalue on the
        imaginary axis) or the iteration does not converge, and for ``"auto"`` on the
        GPU when the backward error of X (computed on the device) is above
        ``50·max(n, m)·eps``; the message names which.

    Warns
    -----
    structla.IllConditionedWarning
        The estimated relative separation ``sep(A, −B)/(‖A‖_F + ‖B‖_F)`` is below
        ``sqrt(eps)``: X is determined to fewer than about half the digits.

    Notes
    -----
    The solution is unique iff no eigenvalue of A is the negative of an eigenvalue of
    B. When the spectra of A and B lie in the open right half-plane (MATH D4),

    .. math::

        \operatorname{sign}\begin{pmatrix} A & C \\ 0 & -B \end{pmatrix}
        = \begin{pmatrix} I & 2X \\ 0 & -I \end{pmatrix},

    and with both in the left half-plane the signs flip and the block is ``−2X``. The
    Newton iteration ``Z ← (μZ + (μZ)⁻¹)/2`` on this block matrix is carried out
    block by block, ``A ← (μA + A⁻¹/μ)/2``, ``B ← (μB + B⁻¹/μ)/2``,
    ``C ← (μC + A⁻¹CB⁻¹/μ)/2``, with one scaling μ for the whole block,
    ``(‖D⁻¹‖₁‖D⁻¹‖∞/‖D‖₁‖D‖∞)^¼`` for ``D = diag(A_k, B_k)`` (switched off near
    convergence). Every iterate satisfies ``A_k X + X B_k = C_k``. Once the relative
    update is below 10⁻² (CPU) or 0.1 (GPU, CPU stacks) the inverses stop: single
    matrices and the GPU continue with the inverse-free Newton–Schulz steps
    ``Z ← Z(3I − Z²)/2``, stopped on the measured residual ``‖Z² − I‖`` (the final step
    is needed only for C); stacks of small matrices on the CPU (at least 8 problems,
    ``max(n, m) ≤ 160``) instead solve ``A_k X + X B_k = C_k`` directly with
    ``A_k = s(I + F_a)``, ``B_k = s(I + F_b)`` by the sweeps
    ``X ← (sC_k − F_a X − X F_b)/2`` (two products each, 3–5 digits per sweep).
    Newton itself stops when its update is small enough that the next error, its
    square, is below ``tol``. The traces of the converged sign blocks must be ±n and
    ±m with one sign: that is how ``"auto"`` detects that the method applies. Cost per
    Newton step ``≈ 2n³ + 2m³ + 2nm(n + m)`` flops (two inverses, two products),
    typically 3–4 Newton steps and 2–4 further steps or sweeps; Lyapunov needs one
    inverse per step. ``"schur"`` costs about ``25(n³ + m³)`` flops for the two real
    Schur forms plus ``nm(n + m)`` for ``trsyl``.

    The separation reported and checked is the smaller of the eigenvalue gap
    ``min|λᵢ(A) + λⱼ(B)|`` (Schur method) and ``‖C‖_F/‖X‖_F``, both upper bounds on
    ``sep(A, −B)``, relative to ``‖A‖_F + ‖B‖_F``.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import solve_sylvester
    >>> rng = np.random.default_rng(0)
    >>> A = 3 * np.eye(5) + rng.standard_normal((5, 5)) / 3
    >>> B = 2 * np.eye(4) + rng.standard_normal((4, 4)) / 3
    >>> C = rng.standard_normal((5, 4))
    >>> X = solve_sylvester(A, B, C)
    >>> np.allclose(X, scipy.linalg.solve_sylvester(A, B, C))
    True
    >>> X, info = solve_sylvester(A, -B, C, return_info=True)   # mixed half-planes
    >>> info.method, np.allclose(X, scipy.linalg.solve_sylvester(A, -B, C))
    ('schur', True)
    """
    xp = array_namespace(A=A, B=B, C=C)
    dtype = result_dtype(A, B, C)
    A = as_array(A, "A", xp, dtype)
    B = as_array(B, "B", xp, dtype)
    C = as_array(C, "C", xp, dtype)
    check_square(A, "A")
    check_square(B, "B")
    check_ndim(C, "C", 2, "(..., n, m)")
    batch = broadcast_batch("(n,n),(m,m),(n,m)", A=A, B=B, C=C)
    return _solve(xp, batch, A, B, C, method=method, check=check_finite, tol=tol,
                  max_iter=max_iter, return_info=return_info)


def solve_lyapunov(A: Any, Q: Any, *, method: str = "auto", check_finite: bool | None = None,
                   tol: float | None = None, max_iter: int | None = None,
                   return_info: bool = False) -> Any:
    r"""Solve the continuous Lyapunov equation ``A X + X Aᴴ = Q``.

    Same convention as :func:`scipy.linalg.solve_continuous_lyapunov`.

    Parameters
    ----------
    A : (..., n, n) array_like
    Q : (..., n, n) array_like
        Batch dimensions broadcast.
    method, check_finite, tol, max_iter, return_info
        As in :func:`solve_sylvester`.

    Returns
    -------
    X : (..., n, n) array
    info : IterationInfo
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        Wrong shapes, unknown method, ``method="schur"`` on CuPy, NaN/Inf with
        ``check_finite``.
    structla.LinAlgError
        ``λᵢ + conj(λⱼ) = 0`` for two eigenvalues of A (e.g. one on the imaginary
        axis): singular; and the sign-method failures of :func:`solve_sylvester`.

    Warns
    -----
    structla.IllConditionedWarning
        Relative separation below ``sqrt(eps)``.

    Notes
    -----
    This is :func:`solve_sylvester` with ``B = Aᴴ`` (MATH D4), so the sign method
    applies exactly when A is stable or anti-stable (spectrum in one open
    half-plane), and each Newton step needs only one inverse, since the B block stays
    the conjugate transpose of the A block: ``≈ 2n³ + 4n³`` flops per step. The Schur
    method needs one Schur form (``≈ 25n³``) and ``trsyl``.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import solve_lyapunov
    >>> rng = np.random.default_rng(1)
    >>> A = -2 * np.eye(6) + rng.standard_normal((6, 6)) / 3   # stable
    >>> Q = rng.standard_normal((6, 6))
    >>> X = solve_lyapunov(A, Q)
    >>> np.allclose(X, scipy.linalg.solve_continuous_lyapunov(A, Q))
    True
    """
    xp = array_namespace(A=A, Q=Q)
    dtype = result_dtype(A, Q)
    A = as_array(A, "A", xp, dtype)
    Q = as_array(Q, "Q", xp, dtype)
    check_square(A, "A")
    check_square(Q, "Q")
    batch = broadcast_batch("(n,n),(n,n)", A=A, Q=Q)
    return _solve(xp, batch, A, None, Q, method=method, check=check_finite, tol=tol,
                  max_iter=max_iter, return_info=return_info)


def _sign_failure(status: dict[str, Any], bad: np.ndarray, n: int, m: int, max_iter: int,
                  lyapunov: bool, accept: float) -> str:
    """The reason the sign method failed on the first bad problem of the batch."""
    i = int(np.flatnonzero(bad)[0])
    where = f" (batch problem {i})" if bad.size > 1 else ""
    pair = "A (B = Aᴴ)" if lyapunov else "A and B"
    either = "A" if lyapunov else "A or B"
    if not status["finite"][i]:
        return (f"sign method{where}: a Newton iterate became singular or non-finite, so "
                f"{either} has an eigenvalue on (or numerically on) the imaginary axis and "
                "sign([[A, C], [0, -B]]) is undefined (or the input holds NaN/Inf)")
    if not status["converged"][i]:
        return (f"sign method{where}: the iteration did not converge in max_iter={max_iter} "
                "steps (eigenvalues very close to the imaginary axis?)")
    if status["halfplane"][i]:
        return (f"sign method{where}: the iteration converged, but the backward error of X, "
                f"{status['backward_error'][i]:.2e}, is above {accept:.2e} (= {ACCEPT:g}·"
                "max(n, m)·eps): rounding was amplified, e.g. by ill-conditioned eigenvectors "
                "of A or B. method='schur' (CPU) is backward stable")
    return (f"sign method{where}: the spectra of {pair} are not in one open half-plane "
            f"(trace of sign(A) = {status['trace_a'][i]:.3g}, of sign(B) = "
            f"{status['trace_b'][i]:.3g}; the method needs ±{n} and ±{m} with one sign). "
            "method='schur' (CPU) handles any spectra")


def _solve(xp: ModuleType, batch: Batch, A: Any, B: Any | None, C: Any, *, method: str,
           check: bool | None, tol: float | None, max_iter: int | None,
           return_info: bool) -> Any:
    if method not in METHODS:
        raise ValueError(f"argument 'method' must be one of {METHODS}; got {method!r}")
    gpu = is_cupy_namespace(xp)
    if method == "schur" and gpu:
        raise ValueError("method='schur' runs LAPACK on the CPU and needs NumPy arrays; use "
                         "method='sign' (or 'auto') for CuPy arrays, or move them with .get()")
    names = ("A", "C") if B is None else ("A", "B", "C")
    if checks_finite(check, xp):
        for name, x in zip(names, (A, C) if B is None else (A, B, C), strict=True):
            check_finite(x, "Q" if (B is None and name == "C") else name, xp)
    n, m = batch.sizes["n"], batch.sizes.get("m", batch.sizes["n"])
    dtype = C.dtype
    work = compute_dtype(dtype)
    eps = float(np.finfo(work).eps)
    tol = 10 * eps if tol is None else float(tol)
    max_iter = 100 if max_iter is None else int(max_iter)
    if not tol > 0 or max_iter < 1:
        raise ValueError(f"need tol > 0 and max_iter >= 1; got tol={tol}, max_iter={max_iter}")
    shape = (*batch.shape, n, m)
    if batch.count == 0 or n == 0 or m == 0:
        X = xp.zeros(shape, dtype=dtype)
        info = IterationInfo(0, 0.0, True, "none", {})
        return (X, info) if return_info else X
    Af = batch.flatten(A, 2, xp).astype(work, copy=False)
    Bf = None if B is None else batch.flatten(B, 2, xp).astype(work, copy=False)
    Cf = batch.flatten(C, 2, xp).astype(work, copy=False)

    iterations = np.zeros(batch.count, dtype=np.int64)
    used = method
    separation = None
    estimate = None
    if method == "schur":
        X, status = sylvester_schur(Af, Bf, Cf)
        separation = status["separation"]
        perturbed = status["perturbed"]
    else:
        sign = implementation("sylvester", "sylvester_sign", xp)
        X, status = sign(Af, Bf, Cf, tol=tol, max_iter=max_iter)
        host = {k: to_numpy(v) for k, v in status.items()}
        iterations = host["iterations"]
        bad = ~(host["converged"] & host["halfplane"] & host["finite"])
        if method == "auto":
            # Backends that already measured the residual (per problem, while the
            # matrices were in cache) hand it back in ``status``; otherwise it is
            # computed where X lives (on the GPU for CuPy) and only the per-problem
            # numbers travel.
            if "backward_error" not in host:
                host["backward_error"] = to_numpy(backward_error(Af, Bf, Cf, X, xp))
            bad |= ~(host["backward_error"] <= ACCEPT * max(n, m) * eps)
        used = "sign"
        perturbed = np.zeros(batch.count, dtype=bool)
        estimate = host.get("separation")
        if bad.any():
            estimate = None
            if method == "sign" or gpu:
                raise LinAlgError(_sign_failure(host, bad, n, m, max_iter, B is None,
                                                ACCEPT * max(n, m) * eps))
            redo = np.flatnonzero(bad)
            Xs, st = sylvester_schur(Af[redo], None if Bf is None else Bf[redo], Cf[redo])
            X[redo] = Xs
            separation = np.full(batch.count, np.inf)
            separation[redo] = st["separation"]
            perturbed[redo] = st["perturbed"]
            used = "schur" if bad.all() else "sign+schur"
    if estimate is None:
        estimate = to_numpy(separation_estimate(Af, Bf, Cf, X, xp))
    separation = estimate if separation is None else np.minimum(separation, estimate)
    worst = float(separation.min())
    if perturbed.any() or worst <= SINGULAR * max(n, m) * eps:
        raise LinAlgError(
            "A and -B have a common eigenvalue to working precision, so the Sylvester "
            f"equation is singular: estimated sep(A, -B)/(|A|_F + |B|_F) = {worst:.2e}"
            + (" and LAPACK trsyl had to perturb the Schur forms" if perturbed.any() else ""))
    if worst < math.sqrt(eps):
        warnings.warn(
            f"A and -B have nearly common eigenvalues: estimated sep(A, -B)/(|A|_F + |B|_F) "
            f"= {worst:.2e}, so X may be accurate to only about {max(0.0, -math.log10(eps / worst)):.0f} "
            "digits", IllConditionedWarning, stacklevel=3)
    X = batch.unflatten(X.astype(dtype, copy=False))
    if not return_info:
        return X
    bwd = to_numpy(backward_error(Af, Bf, Cf, batch.flatten(X, 2, xp), xp))
    info = IterationInfo(
        iterations=int(iterations.max()), error_estimate=float(bwd.max()), converged=True,
        method=used,
        extra={"backward_error": bwd.reshape(batch.shape),
               "separation": separation.reshape(batch.shape),
               "iterations": iterations.reshape(batch.shape)})
    return X, info

"""Public API of the matrix sign family: msign, mcsgn, mclip, polar, square roots, msign VJP."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .._core.batch import Batch, broadcast_batch
from .._core.dispatch import implementation
from .._core.errors import LinAlgError, NotConvergedWarning
from .._core.info import IterationInfo
from .._core.namespace import array_namespace, is_cupy_namespace
from .._core.validate import as_array, check_ndim, check_square, checks_finite, result_dtype
from .._core.validate import check_finite as _check_values
from . import _coefficients

__all__ = [
    "inv_sqrtm",
    "mclip",
    "mcsgn",
    "msign",
    "msign_vjp",
    "ns_coefficients",
    "polar",
    "polar_express_coefficients",
    "sqrtm",
]

_CUSHION = _coefficients.CUSHION
_FAMILIES = ("polar_express", "muon", "cubic", "su", "jiacheng")
#: Steps each published family was designed for; with ``steps=None`` these rows
#: come first and maximally flat rows (:data:`_coefficients.POLISH`) finish the job.
_DESIGNED = {"muon": 5, "su": 5, "jiacheng": 6, "polar_express": 8}
#: Lower end of the Polar Express rows of ``steps=None`` runs. They start from
#: ``M / ‖(MMᴴ)²‖_F^{1/4}``, whose σ₁ lies below 1 by up to ≈ 2× for decaying spectra
#: (1.7× for σ log-spaced in [1e-3, 1], n = 4096): rows designed for σ ≥ 5e-4 then
#: reach 1e-2 and 1e-3 in 7 steps where the 1e-3 rows need 8 (MATH D2 scalar maps).
_ADAPTIVE_LOWER = 5e-4
#: Upper limit of ``steps=None`` iterations (each maximally flat step at least
#: multiplies the smallest singular value by 15/8).
_MAX_STEPS = 100
#: Singular values below max(n, m)·eps·σ₁ count as zero on the exact (SVD) paths.
_VARIANTS = ("v1", "v2", "v3", "leloykun", "svd")
DEFAULT_CLIP_VARIANT = "v2"


# ---------------------------------------------------------------------------------
# coefficient tables


def polar_express_coefficients(steps: int, *, lower: float = 1e-3, degree: int = 5,
                               safety: float = 1.01,
                               cushion: float = _CUSHION) -> np.ndarray:
    """Optimal odd-polynomial coefficients of the Polar Express iteration (MATH D2).

    Step ``t`` maps each singular value by ``p_t(σ) = a σ + b σ³ + c σ⁵``; the rows are
    the greedy minimax polynomials that map ``[lower, 1]`` as close to 1 as possible.

    Parameters
    ----------
    steps : int
        Number of rows (steps), ``≥ 0``.
    lower : float, optional
        Lower end ℓ of the singular values the table is designed for (upper end 1),
        ``0 < lower ≤ 1``.
    degree : {5, 3}, optional
        Odd quintic (``c ≠ 0``) or cubic (``c = 0``) steps.
    safety : float, optional
        The minimax rows except the last are divided by ``(safety, safety³, safety⁵)``
        so that round-off pushing σ slightly above the interval cannot compound into
        divergence. ``1.0`` gives the raw table.
    cushion : float, optional
        Each step is optimised on ``[max(ℓ_t, cushion·u_t), u_t]`` so that small
        singular values are not mapped to (almost) zero.

    Returns
    -------
    (steps, 3) float64 ndarray
        Rows ``(a, b, c)``.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Notes
    -----
    Construction (Amsel, Persson, Musco, Gower 2025; MATH D2): with ℓ₁ = ``lower``,
    u₁ = 1, each step solves ``min_p max_{x∈[ℓ', u_t]} |p(x) − 1|``,
    ``ℓ' = max(ℓ_t, λ u_t)``, by the Remez exchange (equioscillation at ℓ', the
    interior extrema of p and u_t), rescales p so that its image of [ℓ_t, u_t] is
    symmetric about 1, and continues on that image. Once the interval has shrunk to
    ``ℓ'/u > 1 − 5·10⁻⁶`` the rows are the maximally flat quintic
    ``(15/8, −10/8, 3/8)`` (cubic: ``(3/2, −1/2)``), which contract around 1 and are
    not divided by ``safety``. Cost: negligible (a few 4×4 solves per row; cached).

    Examples
    --------
    >>> import numpy as np
    >>> from structla import polar_express_coefficients
    >>> raw = polar_express_coefficients(8, safety=1.0)
    >>> bool(np.allclose(raw[0], [8.28721201814563, -23.595886519098837, 17.300387312530933]))
    True
    >>> bool(np.allclose(raw[-1], [1.875, -1.25, 0.375]))
    True
    """
    steps = _check_steps(steps, "steps")
    if not 0 < lower <= 1:
        raise ValueError(f"argument 'lower' must lie in (0, 1]; got {lower!r}")
    if degree not in (3, 5):
        raise ValueError(f"argument 'degree' must be 3 or 5; got {degree!r}")
    if not safety >= 1:
        raise ValueError(f"argument 'safety' must be >= 1; got {safety!r}")
    if not 0 <= cushion < 1:
        raise ValueError(f"argument 'cushion' must lie in [0, 1); got {cushion!r}")
    if steps == 0:
        return np.zeros((0, 3))
    return _coefficients.polar_express_table(steps, float(lower), degree, float(safety),
                                             float(cushion))


def ns_coefficients(name: str, steps: int) -> np.ndarray:
    """Coefficient table ``(steps, 3)`` of a named Newton–Schulz family (MATH D2).

    Parameters
    ----------
    name : {"polar_express", "muon", "cubic", "su", "jiacheng"}
        ``"polar_express"``: :func:`polar_express_coefficients` ``(steps)``;
        ``"muon"``: Keller Jordan's constant ``(3.4445, −4.7750, 2.0315)``;
        ``"cubic"``: the classic ``(1.5, −0.5, 0)``; ``"su"``: Su Jianlin's 5 per-step
        rows; ``"jiacheng"``: You Jiacheng's 6 per-step rows. The per-step tables
        continue with the maximally flat quintic ``(15/8, −10/8, 3/8)`` when more
        steps are asked for than they define.
    steps : int
        Number of rows, ``≥ 0``.

    Returns
    -------
    (steps, 3) float64 ndarray

    Raises
    ------
    ValueError
        For an unknown name or a negative ``steps``.

    Notes
    -----
    Scalar behaviour on σ₀ ∈ [10⁻³, 1] (MATH D2): cubic converges quadratically but
    starts slowly; Muon's triple has ``p(1) = 0.70`` and does not converge (5 steps
    land in ≈[0.47, 1.20]); Su's 5 rows land in ≈[0.61, 1.05]; You's 6 rows in
    ≈[0.87, 1.0]; Polar Express (with its safety factor) in [0.85, 1.12] after 5
    steps and [0.99999, 1.00001] after 7.

    Examples
    --------
    >>> from structla import ns_coefficients
    >>> ns_coefficients("muon", 2).tolist()
    [[3.4445, -4.775, 2.0315], [3.4445, -4.775, 2.0315]]
    >>> ns_coefficients("cubic", 1).tolist()
    [[1.5, -0.5, 0.0]]
    """
    steps = _check_steps(steps, "steps")
    if name == "polar_express":
        return polar_express_coefficients(steps)
    if name not in _coefficients.NAMED:
        raise ValueError(f"argument 'name' must be one of {', '.join(_FAMILIES)}; got {name!r}")
    return _coefficients.named_table(name, steps)


def _check_steps(steps: Any, name: str) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"argument {name!r} must be a non-negative integer; got {steps!r}")
    return int(steps)


@functools.lru_cache(maxsize=64)
def _fixed_table(name: str, steps: int) -> np.ndarray:
    """Read-only :func:`ns_coefficients` rows, kept: building the Polar Express rows anew
    (≈ 45 µs here) would cost a small GPU call more than its kernel's launch."""
    table = ns_coefficients(name, steps)
    table.flags.writeable = False
    return table


def _table(coeffs: Any, steps: int | None) -> tuple[np.ndarray, bool, str]:
    """(rows, adaptive, label) for the ``coeffs``/``steps`` arguments."""
    if isinstance(coeffs, str):
        if coeffs not in _FAMILIES:
            raise ValueError(f"argument 'coeffs' must be one of {', '.join(_FAMILIES)}, "
                             f"'svd', or an array of shape (steps, 3); got {coeffs!r}")
        if steps is not None:
            return _fixed_table(coeffs, _check_steps(steps, "steps")), False, coeffs
        designed = _DESIGNED.get(coeffs, 0)
        if coeffs == "polar_express":
            head = polar_express_coefficients(designed, lower=_ADAPTIVE_LOWER)
        else:
            head = ns_coefficients(coeffs, designed) if designed else np.zeros((0, 3))
        if coeffs == "cubic":
            tail = np.tile(np.array(_coefficients.NAMED["cubic"][0][0]), (_MAX_STEPS, 1))
        else:
            tail = np.tile(np.array(_coefficients.POLISH), (_MAX_STEPS - designed, 1))
        return np.concatenate([head, tail]), True, coeffs
    table = np.asarray(coeffs, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != 3:
        raise ValueError(f"argument 'coeffs' as an array must have shape (steps, 3); "
                         f"got shape {table.shape}")
    if not np.isfinite(table).all():
        raise ValueError("argument 'coeffs' must be finite")
    if steps is not None and _check_steps(steps, "steps") != table.shape[0]:
        raise ValueError(f"argument 'steps' ({steps}) does not match the {table.shape[0]} rows "
                         "of 'coeffs'")
    return table, False, "explicit"


# ---------------------------------------------------------------------------------
# shared validation


def _compute_dtype(dtype: np.dtype, compute_dtype: Any) -> np.dtype:
    if compute_dtype is None:
        return np.dtype(np.float32) if dtype == np.float16 else dtype
    try:
        cdt = np.dtype(compute_dtype)
    except TypeError:
        raise ValueError(f"argument 'compute_dtype' must be a floating dtype; "
                         f"got {compute_dtype!r}") from None
    if cdt.kind not in "fc" or cdt.itemsize < 2:
        raise ValueError(f"argument 'compute_dtype' must be a floating dtype; got {cdt}")
    if cdt.kind == "c":
        cdt = np.dtype(np.float32) if cdt == np.complex64 else np.dtype(np.float64)
    if dtype.kind == "c":
        if cdt == np.float16:
            raise ValueError("argument 'compute_dtype' float16 has no complex counterpart")
        return np.result_type(cdt, np.complex64)
    return cdt


def _matrix(M: Any, name: str, *, square: bool = False, real: bool = False,
            check: bool | None = None) -> tuple[Any, ModuleType, np.dtype, Any]:
    """Validated ``(stack (count, n, m), xp, output dtype, batch)`` of one argument."""
    xp = array_namespace(**{name: M})
    M = as_array(M, name, xp)
    dtype = result_dtype(M, real_only=real)
    if square:
        check_square(M, name)
    else:
        check_ndim(M, name, 2, "(..., n, m)")
    if M.dtype != dtype:
        M = M.astype(dtype)
    if checks_finite(check, xp):
        _check_values(M, name, xp)
    # one operand is its own batch: the Batch broadcast_batch would return, and the stack
    # as Batch.flatten makes it (a view when the layout allows), without the broadcasting
    # machinery (≈ 30 µs of host time here, a fifth of a small fused GPU call's)
    batch = Batch(tuple(M.shape[:-2]), {"n": M.shape[-2], "m": M.shape[-1]})
    return M.reshape((batch.count, *M.shape[-2:])), xp, dtype, batch


def _tolerance(tol: float | None, cdt: np.dtype) -> float:
    if tol is None:
        return float(np.finfo(cdt).eps)
    if not (isinstance(tol, int | float | np.floating) and tol > 0):
        raise ValueError(f"argument 'tol' must be a positive number; got {tol!r}")
    return float(tol)



def _warn(outcome: Any, adaptive: bool, routine: str, result: Any, xp: ModuleType,
          read_result: bool = True) -> None:
    """Raise on non-finite results (one host read, unless ``read_result`` is False); warn
    when ``steps=None`` fell short."""
    from ._reference import matrix_reduce

    if outcome.diverged or (read_result
                            and not bool(matrix_reduce(xp.all, xp.isfinite(result)).all())):
        raise LinAlgError(f"{routine}: the iteration produced non-finite values (for mcsgn and the "
                          "square roots: eigenvalues off the real axis or at 0, where the "
                          "polynomial iteration has no guarantee)")
    if adaptive and not outcome.converged:
        warnings.warn(f"{routine}: not converged after {outcome.iterations} steps (estimated "
                      f"error {outcome.predicted:.2e}); the result is the last iterate",
                      NotConvergedWarning, stacklevel=3)


def _empty(shape: tuple[int, ...], dtype: np.dtype, xp: ModuleType) -> Any:
    return xp.zeros(shape, dtype=dtype)


def _info(outcome: Any, estimate: float, tol: float, method: str, label: str,
          adaptive: bool) -> IterationInfo:
    converged = outcome.converged if adaptive else bool(estimate <= max(tol, 0.0))
    return IterationInfo(iterations=outcome.iterations, error_estimate=estimate,
                         converged=converged, method=method,
                         extra={"coeffs": label, "defect_history": list(outcome.history),
                                "predicted_error": outcome.predicted})


def _sign_runner(xp: ModuleType, table: np.ndarray, adaptive: bool, tol: float, cdt: np.dtype,
                 method: str, low: np.dtype | None = None,
                 tailor: bool = False) -> Callable[[Any], Any]:
    """``X ↦ (msign(X), outcome)`` with fixed iteration settings (used by mclip)."""
    impl = implementation("matfun", "msign", xp)
    _check_method(method)

    def run(X: Any) -> Any:
        return impl(X, table, cdt=cdt, tol=tol, adaptive=adaptive, method=method, low=low,
                    tailor=tailor)

    return run


def _check_method(method: str) -> None:
    if method not in ("auto", "standard", "gram"):
        raise ValueError(f"argument 'method' must be 'auto', 'standard' or 'gram'; got {method!r}")


# ---------------------------------------------------------------------------------
# msign


def msign(M: Any, *, steps: int | None = None, coeffs: Any = "polar_express",
          compute_dtype: Any = None, return_info: bool = False, tol: float | None = None,
          method: str = "auto", check_finite: bool | None = None) -> Any:
    """Matrix sign of a rectangular matrix: the polar factor ``U_r V_rᴴ`` (MATH D1–D2).

    Parameters
    ----------
    M : (..., n, m) array_like
        Real or complex matrices (a stack; leading dimensions are batch).
    steps : int or None, optional
        Number of iteration steps. ``None`` (default) iterates until the estimated
        error reaches ``tol``.
    coeffs : {"polar_express", "muon", "cubic", "su", "jiacheng", "svd"} or (steps, 3) array
        Coefficients ``(a, b, c)`` of ``σ ← aσ + bσ³ + cσ⁵`` per step (see
        :func:`ns_coefficients`), or ``"svd"`` for the exact SVD path. An explicit table
        runs exactly its rows.
    compute_dtype : dtype or "mixed", optional
        Precision of the iteration (e.g. ``float32`` for float64 input, or
        ``float16`` on the GPU); the output keeps the input's dtype. Default: the
        input's precision (float32 for float16). ``"mixed"`` (real M, ``steps=None``):
        the steps run in float16 (tensor cores on the GPU) until the iterate is
        predicted within 0.05 of 1, then in the input's precision (at least float32)
        until ``tol``, under the same stopping rule. The result is orthogonal to
        ``tol`` but is the polar factor of a matrix within ≈ float16 rounding
        (≈ 5e-4·‖M‖) of M: directions of singular values below ≈ 1e-3·σ₁ can differ
        from ``msign(M)`` at O(1), and zero singular values do not stay zero (as with
        ``float16``). Worth it on the GPU only: NumPy's float16 products are slow.
    return_info : bool, optional
        Also return an :class:`~structla.IterationInfo`.
    tol : float, optional
        Target for ``max |σᵢ(X) − 1|`` when ``steps is None``; default: the machine
        epsilon of ``compute_dtype`` (of the working precision for ``"mixed"``). With
        ``compute_dtype="float16"``, tolerances below ≈ 1e-2 may be out of reach at
        large sizes (the defect is measured in float16); use ``"mixed"`` there.
    method : {"auto", "standard", "gram"}, optional
        ``"standard"`` iterates on X; ``"gram"`` iterates on the small Gram matrix
        ``R = XXᴴ`` and the accumulated polynomial, forming X every 3 steps;
        ``"auto"`` compares the flop counts: Gram when the long side is ≥ 3× the short
        side and the step count is known in advance (the certified path below), ≥ 8×
        otherwise.
    check_finite : bool, optional
        Check the input for NaN/Inf (default: True on the CPU, False on the GPU). On the
        GPU, ``False`` with ``steps`` given also skips the check of the result (a host
        synchronisation): non-finite input then gives NaN in the output.

    Returns
    -------
    X : (..., n, m) ndarray
        ``msign(M)``, same dtype and array library as ``M``.
    info : IterationInfo
        Only with ``return_info=True``. ``error_estimate`` is measured on the
        returned X: ``max_batch ‖YY − Y‖_F / 2`` with ``Y = XXᴴ`` on the smaller
        side, which approximates ``max |σᵢ(X) − 1|`` over the singular values that
        are not zero (its rounding floor is ≈ √n·eps).

    Raises
    ------
    ValueError
        Bad shapes, dtypes, arguments, or NaN/Inf with ``check_finite``.
    LinAlgError
        Non-finite result (only possible with an explicit ``coeffs`` table that
        maps values above 1 out of range, or NaN input with ``check_finite=False``);
        not raised by fixed-step GPU runs with ``check_finite=False`` (see above).

    Warns
    -----
    NotConvergedWarning
        ``steps=None`` and the tolerance was not reached within 100 steps.

    Notes
    -----
    ``msign(M) = (MMᴴ)^{-1/2} M = U_r V_rᴴ`` for ``M = UΣVᴴ`` of rank r (MATH D1). The
    iteration (MATH D2) runs on the side with the smaller Gram matrix: ``M`` is
    scaled by an exact power of two to unit size, then ``X₀ = M/‖M‖_F`` (every
    singular value in [0, 1], so inputs from 1e-30 to 1e30 give the same result and
    zero matrices give zeros), then ``Y = XXᴴ``, ``X ← (aI + bY + cY²) X``. Each step
    maps every singular value by the scalar polynomial and leaves the singular vectors
    alone; zero singular values stay zero. Convergence is checked with the defect
    ``‖YY − Y‖_F`` of the current iterate, turned into a bound after the next step
    through the scalar map; the iteration does not stop while a singular value with
    ``σ ≥ 0.1·√eps·‖M‖_F`` could still be far from 1 (see the family's documentation).
    Smaller singular values are the numerical-rank cutoff and may be returned
    unconverged. With ``steps=None`` the named tables run their designed rows and then
    the maximally flat quintic ``(15/8, −10/8, 3/8)``, which converges cubically.

    Certified path (NumPy, ``coeffs="polar_express"``, ``steps=None``, ``tol ≥ 1000·eps``,
    matrices of at least 2¹⁶ entries): Lanczos on the Gram matrix ``Y = XXᴴ`` estimates its
    extreme eigenvalues and two float64 Cholesky factorisations of ``Y − ℓ²I`` and ``u²I −
    Y`` prove ``σᵢ ∈ [ℓ, u]``. The iteration then runs the fewest Polar Express rows built
    for ``[ℓ/u, 1]`` whose scalar-map band (the exact image of the interval, step by step)
    is within ``tol`` of 1, without measuring a defect: a Gaussian 1024×4096 (``σ_min/σ_max
    = 0.336``) takes 2 steps for ``tol = 1e-3`` (band 6.6e-4) where the Frobenius-defect
    rule took 8. Without a certificate (rank-deficient or very ill-conditioned input) the
    defect rule runs. The band is exact arithmetic on the computed Gram matrix; the table
    must reach ``tol − 4√k·eps·u/ℓ``, room for the products' rounding.

    Cost per step (k ≤ K the sides): ``4k²K + 2k³`` flops (standard), ``8k³`` (Gram,
    plus ``4k²K`` per restart). The exact path costs one SVD.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import msign
    >>> M = np.random.default_rng(0).standard_normal((5, 5))
    >>> X = msign(M)
    >>> bool(np.allclose(X, scipy.linalg.polar(M)[0], atol=1e-12))
    True
    >>> bool(np.allclose(msign(1e-30 * M), X, atol=1e-12))
    True
    """
    M3, xp, dtype, batch = _matrix(M, "M", check=check_finite)
    coeffs_is_svd = isinstance(coeffs, str) and coeffs == "svd"
    if coeffs_is_svd:
        if steps is not None:
            _check_steps(steps, "steps")
        table, adaptive, label = np.zeros((0, 3)), False, "svd"
    else:
        table, adaptive, label = _table(coeffs, steps)
    mixed = isinstance(compute_dtype, str) and compute_dtype == "mixed"
    if mixed and (dtype.kind == "c" or not adaptive or coeffs_is_svd):
        raise ValueError("argument 'compute_dtype' 'mixed' needs real M, steps=None and an "
                         "iterative 'coeffs'")
    cdt = _compute_dtype(dtype, None if mixed else compute_dtype)
    low = np.dtype(np.float16) if mixed else None
    tol = _tolerance(tol, cdt)
    _check_method(method)
    from ._reference import Outcome

    if M3.size == 0:
        X, outcome = _empty(M3.shape, dtype, xp), Outcome(converged=True)
    elif coeffs_is_svd:
        X = implementation("matfun", "msign_svd", xp)(M3, cdt)
        outcome = Outcome(converged=True)
    else:
        tailor = label == "polar_express" and adaptive and not is_cupy_namespace(xp)
        X, outcome = _sign_runner(xp, table, adaptive, tol, cdt, method, low, tailor)(M3)
        # a fixed-step GPU run without check_finite stays asynchronous: reading the result
        # back would be a host synchronisation costing more than a small stack's kernel
        _warn(outcome, adaptive, "msign", X, xp,
              read_result=adaptive or not is_cupy_namespace(xp) or checks_finite(check_finite, xp))
    chosen = "svd" if coeffs_is_svd else (outcome.method or "standard")
    X = batch.unflatten(X.astype(dtype, copy=False))
    if not return_info:
        return X
    X3 = batch.flatten(X, 2, xp)
    estimate = _defect_max(X3, cdt, xp)
    return X, _info(outcome, estimate, tol, chosen, label, adaptive)


def _defect_max(X3: Any, cdt: np.dtype, xp: ModuleType) -> float:
    if X3.size == 0:
        return 0.0
    defect = implementation("matfun", "msign_defect", xp)(X3.astype(cdt, copy=False))
    return float(defect.max())


# ---------------------------------------------------------------------------------
# mcsgn, polar, mclip, square roots


def mcsgn(M: Any, *, steps: int | None = None, coeffs: Any = "polar_express",
          compute_dtype: Any = None, return_info: bool = False, tol: float | None = None,
          check_finite: bool | None = None) -> Any:
    """Matrix sign function ``M (M²)^{-1/2}`` of square matrices (MATH D3), like ``scipy.linalg.signm``.

    Parameters
    ----------
    M : (..., n, n) array_like
        Square matrices with real, non-zero eigenvalues (see Notes otherwise).
    steps, coeffs, compute_dtype, return_info, tol, check_finite
        As in :func:`msign` (``coeffs="svd"`` is not available).

    Returns
    -------
    S : (..., n, n) ndarray
        ``sign(M) = P sign(Λ) P⁻¹``; same dtype and library as ``M``.
    info : IterationInfo
        With ``return_info=True``; ``error_estimate = max_batch ‖S² − I‖_F / 2``
        measured on the returned S.

    Raises
    ------
    ValueError
        Bad shapes, dtypes or arguments; NaN/Inf with ``check_finite``.
    LinAlgError
        The iteration produced non-finite values (eigenvalues off the real axis, for
        which the polynomial iteration carries no guarantee, can make it diverge).

    Warns
    -----
    NotConvergedWarning
        The iteration did not converge (``steps=None``): singular M (an eigenvalue 0
        stays 0), or eigenvalues off the real axis.

    Notes
    -----
    ``X₀ = M / r`` with ``r = min(‖M‖₁, ‖M‖_∞, ‖M‖_F)`` (each bounds the spectral
    radius), then ``X ← (aI + bX² + cX⁴) X``: every eigenvalue follows the scalar map
    of MATH D2 to ±1 (an odd polynomial keeps the sign). Non-normal M converges in
    exact arithmetic as a normal one with the same eigenvalues; in floating point the
    accuracy is limited by the conditioning of the eigenvectors. Cost per step:
    3 matrix products, ``6n³`` flops.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import mcsgn
    >>> rng = np.random.default_rng(0)
    >>> P = rng.standard_normal((6, 6))
    >>> M = P @ np.diag([3.0, 1.0, 0.5, -0.2, -1.0, -4.0]) @ np.linalg.inv(P)
    >>> bool(np.allclose(mcsgn(M), scipy.linalg.signm(M), atol=1e-8))
    True
    """
    M3, xp, dtype, batch = _matrix(M, "M", square=True, check=check_finite)
    table, adaptive, label = _table(coeffs, steps)
    cdt = _compute_dtype(dtype, compute_dtype)
    tol = _tolerance(tol, cdt)
    from ._reference import Outcome

    if M3.size == 0:
        S, outcome = _empty(M3.shape, dtype, xp), Outcome(converged=True)
    else:
        S, outcome = implementation("matfun", "mcsgn", xp)(
            M3, table, cdt=cdt, tol=tol, adaptive=adaptive)
        _warn(outcome, adaptive, "mcsgn", S, xp)
    S = batch.unflatten(S.astype(dtype, copy=False))
    if not return_info:
        return S
    S3 = batch.flatten(S, 2, xp).astype(cdt, copy=False)
    eye = xp.eye(S3.shape[-1], dtype=cdt)
    estimate = float(xp.linalg.norm(S3 @ S3 - eye, axis=(-2, -1)).max()) / 2 if S3.size else 0.0
    return S, _info(outcome, estimate, tol, "newton_schulz", label, adaptive)


def polar(M: Any, *, side: str = "right", steps: int | None = None,
          coeffs: Any = "polar_express", compute_dtype: Any = None, tol: float | None = None,
          check_finite: bool | None = None) -> tuple[Any, Any]:
    """Polar decomposition ``M = U H`` (right) or ``M = H U`` (left), like ``scipy.linalg.polar``.

    Parameters
    ----------
    M : (..., n, m) array_like
    side : {"right", "left"}, optional
    steps, coeffs, compute_dtype, tol, check_finite
        As in :func:`msign` (``coeffs="svd"`` gives the exact factors).

    Returns
    -------
    U : (..., n, m) ndarray
        ``msign(M)``: a partial isometry (orthonormal columns or rows when M has
        full rank).
    H : (..., m, m) or (..., n, n) ndarray
        Hermitian positive semidefinite: ``UᴴM = (MᴴM)^{1/2}`` (right) or
        ``MUᴴ = (MMᴴ)^{1/2}`` (left).

    Raises
    ------
    ValueError
        Bad shapes, ``side``, or NaN/Inf with ``check_finite``.

    Notes
    -----
    ``U`` comes from :func:`msign` (MATH D4, polar decomposition), ``H`` from one more
    product, symmetrised. For rank-deficient M, SciPy completes U to a full isometry
    with arbitrary columns; here those directions stay zero (``U = U_r V_rᴴ``). In
    both cases ``U H = M``. Cost: msign plus ``2nm·min(n, m)`` flops.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import polar
    >>> M = np.random.default_rng(0).standard_normal((6, 4))
    >>> U, H = polar(M)
    >>> U0, H0 = scipy.linalg.polar(M)
    >>> bool(np.allclose(U, U0, atol=1e-12) and np.allclose(H, H0, atol=1e-12))
    True
    """
    if side not in ("right", "left"):
        raise ValueError(f"argument 'side' must be 'right' or 'left'; got {side!r}")
    M3, xp, dtype, batch = _matrix(M, "M", check=check_finite)
    n, m = M3.shape[-2:]
    size = m if side == "right" else n
    if M3.size == 0:
        U = _empty(M3.shape, dtype, xp)
        H = _empty((M3.shape[0], size, size), dtype, xp)
        return batch.unflatten(U), batch.unflatten(H)
    U3 = msign(M3, steps=steps, coeffs=coeffs, compute_dtype=compute_dtype, tol=tol,
               check_finite=False)
    cdt = _compute_dtype(dtype, compute_dtype)
    H3 = implementation("matfun", "polar_hermitian", xp)(
        M3.astype(cdt, copy=False), U3.astype(cdt, copy=False), side)
    return batch.unflatten(U3), batch.unflatten(H3.astype(dtype, copy=False))


def mclip(M: Any, lo: float = 0.0, hi: float = 1.0, *, variant: str = DEFAULT_CLIP_VARIANT,
          steps: int | None = None, coeffs: Any = "polar_express", compute_dtype: Any = None,
          return_info: bool = False, tol: float | None = None,
          check_finite: bool | None = None) -> Any:
    """Clip the singular values to ``[lo, hi]``: ``U clip(Σ, lo, hi) Vᴴ`` (MATH D6).

    Parameters
    ----------
    M : (..., n, m) array_like
    lo, hi : float, optional
        ``0 ≤ lo ≤ hi ≤ ∞``. Default [0, 1] (spectral-norm clipping).
    variant : {"v2", "v1", "v3", "leloykun", "svd"}, optional
        Which msign composition (MATH D6): ``"v2"`` (default; non-nested, 2 msign for
        ``lo = 0``), ``"v1"`` (nested, 2 msign), ``"v3"`` (odd, 3 msign), ``"leloykun"``
        (one msign of the ``(n+m)²`` block ``[[I, M], [Mᴴ, I]]``), ``"svd"`` (exact).
        ``lo > 0`` costs one more clip and shares ``msign(M)``.
    steps, coeffs, compute_dtype, return_info, tol, check_finite
        As in :func:`msign`, for each inner msign.

    Returns
    -------
    C : (..., n, m) ndarray
    info : IterationInfo
        With ``return_info=True``: ``iterations`` is the total over the inner msign
        calls, ``error_estimate`` their largest, ``extra["msign_calls"]`` their number.

    Raises
    ------
    ValueError
        Bad shapes, bounds or variant; NaN/Inf with ``check_finite``.

    Notes
    -----
    General interval: ``clip_{[0,β]}(M) = β·clip_{[0,1]}(M/β)`` and
    ``clip_{[α,β]}(M) = clip_{[0,β]}(M) + α·msign(M) − clip_{[0,α]}(M)``; singular
    values that are exactly zero stay zero (not α). ``[0, 1]`` forms, with O = msign(M):
    v1 ``½[M + O + (I − MOᴴ) msign(M − O)]``; v2 ``½[M + O + msign(MMᴴ − I)(O − M)]``;
    v3 ``½[msign(MMᴴ + I)(O + M) + msign(MMᴴ − I)(O − M)]``. The Gram matrices are
    taken on the smaller side. Singular values close to a bound converge slowly (the
    inner msign sees σ² − β² ≈ 0) but enter the result multiplied by that same small
    gap. The default v2 is the most accurate per cost in the measurement on the
    family's documentation page.

    Examples
    --------
    >>> import numpy as np
    >>> from structla import mclip
    >>> M = np.random.default_rng(0).standard_normal((6, 8))
    >>> U, s, Vh = np.linalg.svd(M, full_matrices=False)
    >>> bool(np.allclose(mclip(M, 0.5, 2.0), (U * np.clip(s, 0.5, 2.0)) @ Vh, atol=1e-10))
    True
    """
    if variant not in _VARIANTS:
        raise ValueError(f"argument 'variant' must be one of {', '.join(_VARIANTS)}; "
                         f"got {variant!r}")
    lo, hi = float(lo), float(hi)
    if not (0 <= lo <= hi) or np.isnan(hi):
        raise ValueError(f"arguments 'lo' and 'hi' must satisfy 0 <= lo <= hi; got {lo}, {hi}")
    M3, xp, dtype, batch = _matrix(M, "M", check=check_finite)
    cdt = _compute_dtype(dtype, compute_dtype)
    tol_value = _tolerance(tol, cdt)
    from ._reference import Outcome

    outcomes: list[Any] = []
    if M3.size == 0:
        C = _empty(M3.shape, dtype, xp)
    elif variant == "svd":
        C = implementation("matfun", "mclip_svd", xp)(M3, lo, hi, cdt)
    else:
        table, adaptive, _ = _table(coeffs, steps)
        run = _sign_runner(xp, table, adaptive, tol_value, cdt, "auto")
        C, outcomes = implementation("matfun", "mclip", xp)(
            M3.astype(cdt, copy=False), lo, hi, variant, run)
        for outcome in outcomes:
            _warn(outcome, adaptive, "mclip", C, xp)
    C = batch.unflatten(C.astype(dtype, copy=False))
    if not return_info:
        return C
    total = Outcome(iterations=sum(o.iterations for o in outcomes),
                    predicted=max((o.predicted for o in outcomes), default=0.0),
                    converged=all(o.converged for o in outcomes))
    estimate = total.predicted if outcomes else 0.0
    info = IterationInfo(iterations=total.iterations, error_estimate=estimate,
                         converged=total.converged or not outcomes, method=variant,
                         extra={"msign_calls": len(outcomes)})
    return C, info


def _roots(C: Any, which: str, steps: int | None, coeffs: Any, compute_dtype: Any,
           return_info: bool, tol: float | None, check_finite: bool | None) -> Any:
    C3, xp, dtype, batch = _matrix(C, "C", square=True, check=check_finite)
    table, adaptive, label = _table(coeffs, steps)
    cdt = _compute_dtype(dtype, compute_dtype)
    tol = _tolerance(tol, cdt)
    from ._reference import Outcome

    if C3.size == 0:
        root, inverse = _empty(C3.shape, dtype, xp), _empty(C3.shape, dtype, xp)
        outcome = Outcome(converged=True)
    else:
        root, inverse, outcome = implementation("matfun", "coupled_sqrt", xp)(
            C3, table, cdt=cdt, tol=tol, adaptive=adaptive)
        _warn(outcome, adaptive, which, root if which == "sqrtm" else inverse, xp)
    out = root if which == "sqrtm" else inverse
    result = batch.unflatten(out.astype(dtype, copy=False))
    if not return_info:
        return result
    estimate = 0.0
    if C3.size:
        residual = implementation("matfun", "root_residual", xp)(
            C3.astype(cdt, copy=False), out.astype(cdt, copy=False), which == "inv_sqrtm")
        estimate = float(residual.max())
    return result, _info(outcome, estimate, tol, "coupled_newton_schulz", label, adaptive)


def sqrtm(C: Any, *, steps: int | None = None, coeffs: Any = "polar_express",
          compute_dtype: Any = None, return_info: bool = False, tol: float | None = None,
          check_finite: bool | None = None) -> Any:
    """Principal square root ``C^{1/2}`` by matrix products only (MATH D4), like ``scipy.linalg.sqrtm``.

    Parameters
    ----------
    C : (..., n, n) array_like
        Matrices with real positive spectrum (e.g. symmetric positive definite).
    steps, coeffs, compute_dtype, return_info, tol, check_finite
        As in :func:`mcsgn`.

    Returns
    -------
    R : (..., n, n) ndarray
        ``R @ R = C``.
    info : IterationInfo
        With ``return_info=True``; ``error_estimate`` is the relative residual
        ``max_batch ‖R² − C‖_F / ‖C‖_F`` of the returned R.

    Raises
    ------
    ValueError
        Bad shapes, dtypes or NaN/Inf with ``check_finite``.
    LinAlgError
        The iteration produced non-finite values (eigenvalues off the positive real
        axis can make the polynomial iteration diverge).

    Warns
    -----
    NotConvergedWarning
        No convergence (``steps=None``): singular C, or eigenvalues off the positive
        real axis, where the polynomial iteration carries no guarantee.

    Notes
    -----
    ``mcsgn([[0, C], [I, 0]]) = [[0, C^{1/2}], [C^{-1/2}, 0]]`` (MATH D4). Odd powers of
    an anti-diagonal block stay anti-diagonal, so the sign iteration runs on the pair
    ``(A, B) → (C^{1/2}, C^{-1/2})``: ``Y = AB``, ``H = aI + bY + cY²``, ``A ← HA``,
    ``B ← BH`` — 4 products (``8n³`` flops) per step. The eigenvalues ±√λ(C) are
    scaled by ``√min(‖C‖₁, ‖C‖_∞, ‖C‖_F) ≥ √ρ(C)``, so the iteration count grows like
    that of msign with condition number ``√κ(C)``.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import sqrtm
    >>> A = np.random.default_rng(0).standard_normal((5, 5))
    >>> C = A @ A.T + np.eye(5)
    >>> bool(np.allclose(sqrtm(C), scipy.linalg.sqrtm(C), atol=1e-10))
    True
    """
    return _roots(C, "sqrtm", steps, coeffs, compute_dtype, return_info, tol, check_finite)


def inv_sqrtm(C: Any, *, steps: int | None = None, coeffs: Any = "polar_express",
              compute_dtype: Any = None, return_info: bool = False, tol: float | None = None,
              check_finite: bool | None = None) -> Any:
    """Inverse principal square root ``C^{-1/2}`` by matrix products only (MATH D4).

    Parameters
    ----------
    C : (..., n, n) array_like
        Matrices with real positive spectrum (e.g. symmetric positive definite).
    steps, coeffs, compute_dtype, return_info, tol, check_finite
        As in :func:`sqrtm`.

    Returns
    -------
    R : (..., n, n) ndarray
        ``R @ R @ C = I``.
    info : IterationInfo
        With ``return_info=True``; ``error_estimate`` is the residual
        ``max_batch ‖RCR − I‖_F / √n`` of the returned R.

    Raises
    ------
    ValueError
        Bad shapes, dtypes or NaN/Inf with ``check_finite``.

    Warns
    -----
    NotConvergedWarning
        As in :func:`sqrtm`.

    Notes
    -----
    The lower-left block of ``mcsgn([[0, C], [I, 0]])``; the same coupled iteration as
    :func:`sqrtm` (MATH D4), ``8n³`` flops per step, no inverse or factorisation.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import inv_sqrtm
    >>> A = np.random.default_rng(0).standard_normal((5, 5))
    >>> C = A @ A.T + np.eye(5)
    >>> bool(np.allclose(inv_sqrtm(C), np.linalg.inv(scipy.linalg.sqrtm(C)), atol=1e-10))
    True
    """
    return _roots(C, "inv_sqrtm", steps, coeffs, compute_dtype, return_info, tol, check_finite)


# ---------------------------------------------------------------------------------
# derivative


def msign_vjp(M: Any, G: Any, *, method: str = "auto", check_finite: bool | None = None) -> Any:
    """Vector-Jacobian product of :func:`msign`: ``∂L/∂M`` from ``G = ∂L/∂O``, ``O = msign(M)``.

    Parameters
    ----------
    M : (..., n, m) array_like
        Real matrices of full rank ``min(n, m)``.
    G : (..., n, m) array_like
        Real cotangent ``∂L/∂O``; batch dimensions broadcast with M's.
    method : {"auto", "svd", "sylvester"}, optional
        ``"svd"``: one thin SVD, the Sylvester equation diagonal in the singular bases
        (exact; the best algorithm on the CPU). ``"sylvester"``: ``O`` by the Newton–
        Schulz iteration, then ``structla.solve_sylvester`` (matrix products only on the
        GPU; square M). ``"auto"``: "svd" on the CPU, "sylvester" on the GPU for square
        M.
    check_finite : bool, optional
        Check inputs for NaN/Inf (default: True on the CPU, False on the GPU).

    Returns
    -------
    (..., n, m) ndarray
        ``∂L/∂M``.

    Raises
    ------
    ValueError
        Bad shapes or method; NaN/Inf with ``check_finite``.
    TypeError
        Complex input.
    LinAlgError
        M is (numerically) rank deficient: msign is not differentiable there.

    Notes
    -----
    Differentiating ``M = O Mᴴ O`` gives (MATH D5): solve ``AX + XB = G`` with
    ``A = (MMᵀ)^{1/2} = MOᵀ``, ``B = (MᵀM)^{1/2} = OᵀM``; then
    ``∂L/∂M = X − O Xᵀ O``. In the SVD ``M = UΣVᵀ``:
    ``X = U[(UᵀGV) ⊘ (σᵢ + σⱼ)]Vᵀ + (I − UUᵀ)GVΣ⁻¹Vᵀ + UΣ⁻¹Uᵀ G(I − VVᵀ)`` (the last
    two terms only for rectangular M). Cost: one SVD plus ``O(nm·min(n, m))``.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import msign_vjp
    >>> rng = np.random.default_rng(0)
    >>> M, G, E = rng.standard_normal((3, 4, 4))
    >>> h = 1e-6
    >>> fd = np.sum(G * (scipy.linalg.polar(M + h * E)[0] - scipy.linalg.polar(M - h * E)[0])) / (2 * h)
    >>> bool(np.isclose(np.sum(msign_vjp(M, G) * E), fd, atol=1e-7))
    True
    """
    xp = array_namespace(M=M, G=G)
    M = as_array(M, "M", xp)
    G = as_array(G, "G", xp)
    check_ndim(M, "M", 2, "(..., n, m)")
    check_ndim(G, "G", 2, "(..., n, m)")
    dtype = result_dtype(M, G, real_only=True)
    if checks_finite(check_finite, xp):
        _check_values(M, "M", xp)
        _check_values(G, "G", xp)
    batch = broadcast_batch("(n,m),(n,m)", M=M, G=G)
    if method not in ("auto", "svd", "sylvester"):
        raise ValueError(f"argument 'method' must be 'auto', 'svd' or 'sylvester'; got {method!r}")
    n, m = M.shape[-2:]
    if method == "auto":
        method = "sylvester" if (is_cupy_namespace(xp) and n == m) else "svd"
    if method == "sylvester" and n != m:
        raise ValueError("method='sylvester' needs square M; use method='svd'")
    M3 = batch.flatten(M.astype(dtype, copy=False), 2, xp)
    G3 = batch.flatten(G.astype(dtype, copy=False), 2, xp)
    if M3.size == 0:
        return batch.unflatten(_empty(M3.shape, dtype, xp))
    if method == "svd":
        grad = implementation("matfun", "msign_vjp_svd", xp)(M3, G3, dtype)
    else:
        from ..sylvester._api import solve_sylvester

        O = msign(M3, check_finite=False)
        A = M3 @ O.swapaxes(-1, -2)
        B = O.swapaxes(-1, -2) @ M3
        A, B = (A + A.swapaxes(-1, -2)) / 2, (B + B.swapaxes(-1, -2)) / 2
        X = solve_sylvester(A, B, G3)
        grad = X - O @ X.swapaxes(-1, -2) @ O
    return batch.unflatten(grad.astype(dtype, copy=False))


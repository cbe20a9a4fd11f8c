"""Matrix-product iterations for the matrix sign family, written against ``xp``.

Every routine takes stacks ``(count, ...)`` prepared by :mod:`structla.matfun._api`
and runs on NumPy (BLAS) and CuPy (cuBLAS) alike: the work is matrix products, so
this module is both the oracle and the fast path on either device. Host
synchronisation happens only at convergence checks.

Notation (MATH D2): one step maps every singular value (msign) or eigenvalue
(mcsgn) by ``p(s) = a s + b s³ + c s⁵``, computed as ``X ← (aI + bY + cY²) X`` with
``Y = X Xᴴ`` (msign) or ``Y = X²`` (mcsgn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .._core.errors import LinAlgError
from . import _coefficients

__all__ = [
    "coupled_sqrt",
    "matrix_reduce",
    "mclip",
    "mclip_svd",
    "mcsgn",
    "msign",
    "msign_defect",
    "msign_svd",
    "msign_vjp_svd",
    "polar_hermitian",
    "predicted_error",
    "root_residual",
]

#: Convergence is judged only once every |s − 1| is below this.
_DEFECT_LIMIT = 0.2
#: Lower bounds, for |s − 1| ≤ 0.2, of the measured defects per unit |s − 1|:
#: s²|s² − 1| ≥ 1.15 |s − 1| (msign, eigenvalues of YY − Y) and |s² − 1| ≥ 1.8 |s − 1|
#: (mcsgn, eigenvalues of X² − I). The spectral norm of a defect matrix is at most
#: its Frobenius norm, so defect / slope bounds max |s − 1|.
_MSIGN_SLOPE = 1.15
_SIGN_SLOPE = 1.8


@dataclass
class Outcome:
    """How an iteration ended (the API turns it into an ``IterationInfo``)."""

    iterations: int = 0
    predicted: float = float("inf")
    converged: bool = False
    diverged: bool = False
    history: list[float] = field(default_factory=list)
    #: Lower bound, after the rows applied, of the singular values that started ≥ rcond.
    smallest: float | None = None
    #: "standard" or "gram" (msign).
    method: str | None = None


def predicted_error(row: np.ndarray, defect: float) -> float:
    """Bound on ``max |p(s) − 1|`` over ``|s − 1| ≤ defect`` for one coefficient row.

    ``defect`` bounds ``|s − 1|`` for the singular values before the step; the
    result bounds them after it (scalar maps act on each singular value alone).
    """
    if not np.isfinite(defect) or defect > _DEFECT_LIMIT:
        return float("inf")
    a, b, c = (float(v) for v in row)
    lo, hi = 1.0 - defect, 1.0 + defect
    points = [lo, hi]
    # extrema of p inside the interval: p'(s) = a + 3b s² + 5c s⁴ = 0
    for y in np.roots([5 * c, 3 * b, a] if c != 0 else [3 * b, a]):
        if abs(y.imag) < 1e-12 and y.real > 0 and lo < np.sqrt(y.real) < hi:
            points.append(float(np.sqrt(y.real)))
    s = np.array(points)
    return float(np.max(np.abs(s * (a + s * s * (b + c * s * s)) - 1.0)))


def _eye_like(n: int, dtype: Any, xp: ModuleType) -> Any:
    return xp.eye(n, dtype=dtype)


def matrix_reduce(reduce: Any, x: Any) -> Any:
    """``reduce`` (``xp.sum``, ``xp.max``, ``xp.all``) over the last two axes, rows first.

    CuPy reduces each output element with one thread block: over both axes of a stack of
    one 4096² matrix that is one block for 16.8M elements (2.2 ms per reduction on an
    H100, measured); rows first gives 4096 blocks, then one short reduction.
    """
    return reduce(reduce(x, axis=-1), axis=-1)


def _frobenius(x: Any, xp: ModuleType) -> Any:
    """Per-matrix Frobenius norm of a stack ``(count, n, m)`` (float16 summed in float32)."""
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    return xp.sqrt(matrix_reduce(xp.sum, (x * x.conj()).real))


def _mm(a: Any, b: Any) -> Any:
    """Product of two stacks; stacks of one matrix go through the 2-D product.

    On CuPy the 2-D product is one cuBLAS GEMM with the transposes passed as flags
    (float16 on tensor cores, float32 accumulation); a 3-D product copies a
    transposed operand first and takes the strided-batched path.
    """
    if a.ndim == 3 and b.ndim == 3 and a.shape[0] == 1 and b.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return a @ b


def _hermitian_square(Y: Any, mm: Any = None) -> Any:
    """``Y²`` of a Hermitian stack: as ``Y Yᴴ`` for NumPy (one ``syrk``/``herk`` for a
    single matrix, half the flops of a product), as ``Y Y`` otherwise (CuPy's product of
    a stack would copy the transposed operand)."""
    mm = mm or _mm
    return mm(Y, _h(Y)) if isinstance(Y, np.ndarray) else mm(Y, Y)


def poly_matrix(row: np.ndarray, Y: Any, Y2: Any, eye: Any) -> Any:
    """``aI + bY + cY²`` for one coefficient row (``Y2`` unused when ``c = 0``)."""
    a, b, c = (float(v) for v in row)
    H = b * Y
    if c != 0.0:
        H += c * Y2
    H += a * eye
    return H


def _power_of_two_scale(M: Any, xp: ModuleType) -> Any:
    """Per-matrix powers of two ``2^-e`` with ``max|M·2^-e|`` in [0.5, 1) (1 for zero matrices).

    Multiplying by a power of two is exact, so inputs anywhere in the floating-point
    range are brought to unit size before anything is squared.
    """
    amax = matrix_reduce(xp.max, xp.abs(M)) if M.size else xp.zeros(M.shape[0], M.real.dtype)
    _, exponent = xp.frexp(amax)
    return xp.ldexp(xp.ones_like(amax), -exponent)


def _scaled(M: Any, cdt: np.dtype, xp: ModuleType) -> Any:
    """``M`` scaled by a power of two to unit size and cast to the compute dtype."""
    scale = _power_of_two_scale(M, xp)
    return (M * scale[:, None, None].astype(M.dtype)).astype(cdt, copy=False)


def _safe_divide(X: Any, norm: Any, xp: ModuleType) -> Any:
    norm = xp.where(norm > 0, norm, xp.ones_like(norm))
    return X / norm[:, None, None].astype(X.dtype)


def _run(step, table: np.ndarray, *, tol: float, adaptive: bool,
         slope: float, rcond: float | None = None) -> Outcome:
    """Apply ``step(row, measure)`` for each row of ``table``; stop early when converged.

    ``step`` returns the Frobenius defect of the iterate *before* the step (a device
    array of per-matrix values) when ``measure`` is true; reading it is the only host
    synchronisation. ``defect / slope`` bounds ``|s − 1|`` for the values near 1. A
    step that returns ``(defect, apply)`` has computed the defect but not yet updated
    the iterate: when the defect alone proves ``tol`` the update is skipped.

    With ``rcond`` (msign, where zero singular values are legitimate) a small defect
    is ambiguous: a singular value s ≪ 1 adds only ≈ s² to it. Every s₀ ≥ rcond has
    grown to at least ``φ_t(rcond)`` (the scalar map of the rows applied so far) while
    it is below 1/2, adding ≥ 0.75·φ_t(rcond)²; a smaller defect proves there is no
    such unconverged value, and only then may the iteration stop.
    """
    out = Outcome()
    with np.errstate(over="ignore", invalid="ignore"):
        # divergence (possible for mcsgn with complex eigenvalues) is reported by the caller
        _iterate(step, table, tol, adaptive, slope, rcond, out)
    return out


def _iterate(step, table, tol, adaptive, slope, rcond, out) -> None:
    smallest = rcond
    for t, row in enumerate(table):
        fixed_point = abs(float(row[0] + row[1] + row[2]) - 1.0)
        # Reading the defect is a host synchronisation on the GPU (tens of µs), but it happens
        # only on rows whose fixed point is within tol of 1 (the last rows of a table).
        measure = adaptive and fixed_point <= tol
        defect = step(row, measure)
        # a step may defer its update (the products it still has to do) until the
        # defect it measured has been read: ``(defect, apply)``, and add a bound on its
        # own rounding beyond the scalar map's: ``(defect, apply, extra(bound))``
        defect, apply, extra = (defect + (None,) * (3 - len(defect))
                                if isinstance(defect, tuple) else (defect, None, None))
        visible = True
        if smallest is not None:
            visible_floor = 0.75 * min(smallest, 0.5) ** 2
        if defect is not None:
            value = float(defect.max()) if defect.size else 0.0
            out.history.append(value)
            if not np.isfinite(value):
                out.iterations = t
                out.diverged = True
                return
            if rcond is not None:
                visible = value < visible_floor
            bound = value / slope
            if apply is not None and visible and bound <= min(tol, _DEFECT_LIMIT):
                # the iterate is already within tol: skip this row's last product
                out.iterations, out.predicted, out.converged = t, bound, True
                return
        if apply is not None:
            apply()
        out.iterations = t + 1
        if smallest is not None:
            a, b, c = (float(v) for v in row)
            smallest = smallest * (a + smallest**2 * (b + c * smallest**2))
            out.smallest = smallest
        if defect is None:
            continue
        out.predicted = predicted_error(row, bound) + (extra(bound) if extra else 0.0)
        if visible and out.predicted <= tol:
            out.converged = True
            return


# ---------------------------------------------------------------------------------
# msign


def _gram_start(X: Any, xp: ModuleType) -> tuple[Any, tuple[Any, Any, Any], float]:
    """The first step's ``(Y, Y², w)`` for the iterate ``wX``, ``w = 1/c``,
    ``c = ‖(XXᴴ)²‖_F^{1/4} ≥ σ₁(X)``, and the largest ``c`` of the stack (one host read).

    ``‖Y²‖_F = (Σ σᵢ⁸)^{1/2}`` is far closer to ``σ₁⁴`` than ``‖X‖_F⁴ = 1`` when the
    spectrum decays (σ log-spaced in [10⁻³, 1], n = 4096: the start σ₁ is 0.58 instead
    of 0.058), so the small singular values start 10× higher and the iteration needs
    3–4 fewer steps. Every singular value is multiplied by ``1/c ≥ 1``: a lower bound
    ``r`` for them before becomes ``r / max c`` after. ``Y`` and ``Y²`` are those of
    ``wX``; X itself is not rescaled (the first ``H`` carries the factor ``w``), which
    saves two passes over the large matrix. The returned X may be X times a power of two.
    """
    k = min(X.shape[-2:])
    s = 1.0
    if X.dtype.itemsize < 4:
        # ‖X‖_F = 1 puts σ₁ in [1/√k, 1], so σ₁⁴ (the scale of Y²) can fall below float16's
        # smallest normal number (6e-5) and c come out too small, which sends σ₁(X/c) above
        # 1 where the iteration diverges (seen at 8192², float16). An exact power of two
        # s ≈ k^{1/4} moves σ₁(sX)⁴ into [s⁴/k², s⁴] ⊂ [1.5e-5, 4096] for k ≤ 2¹⁴.
        s = 2.0 ** int(np.floor(np.log2(max(k, 1)) / 4 + 0.25))
        X = X * X.dtype.type(s)
    Y = _mm(X, _h(X))
    Y2 = _hermitian_square(Y)
    c = xp.sqrt(xp.sqrt(_frobenius(Y2, xp)))
    c = xp.where(c > 0, c, xp.ones_like(c))
    largest = float(c.max()) / s
    # c ≥ σ₁(sX) ≥ s/√k: c² stays a normal float16
    c2 = (c * c).astype(Y.dtype)[:, None, None]
    return X, (Y / c2, Y2 / c2 / c2, 1 / c), largest


def _first_matrix(row: np.ndarray, first: tuple[Any, Any, Any], combine: Any,
                  eye: Any) -> Any:
    """``w·(aI + bY + cY²)``: the first step's polynomial, applied to the unscaled X."""
    Y, Y2, w = first
    return combine(row, Y, Y2, eye) * w.astype(Y.dtype)[:, None, None]


def _msign_standard(X: Any, table: np.ndarray, xp: ModuleType, combine: Any = poly_matrix,
                    first: tuple[Any, Any, Any] | None = None, mm: Any = _mm,
                    **run: Any) -> tuple[Any, Outcome]:
    eye = _eye_like(X.shape[-2], X.dtype, xp)
    state = {"X": X, "first": first}

    def step(row, measure):
        X = state["X"]
        start, state["first"] = state["first"], None
        if start is not None:
            Y, Y2, _ = start
        else:
            Y = mm(X, _h(X))
            Y2 = _hermitian_square(Y, mm) if (row[2] != 0 or measure) else None
        defect = _frobenius(Y2 - Y, xp) if measure else None

        def apply():
            H = combine(row, Y, Y2, eye) if start is None else _first_matrix(row, start,
                                                                              combine, eye)
            state["X"] = mm(H, X)

        if defect is None:
            apply()
            return None
        return defect, apply

    outcome = _run(step, table, **run)
    return state["X"], outcome


def _msign_gram(X: Any, table: np.ndarray, xp: ModuleType, restart: int,
                combine: Any = poly_matrix, first: tuple[Any, Any, Any] | None = None,
                **run: Any) -> tuple[Any, Outcome]:
    """Iterate on the Gram matrix ``R = X Xᴴ`` and the accumulated polynomial ``Q``.

    ``X_t = Q_t X_0`` with ``Q_{t+1} = H_t Q_t`` and ``R_{t+1} = H_t R_t H_t``: only
    k×k products per step. ``R_{t+1}`` is formed when the next step needs it (never
    after the last). Rounding in ``R`` is amplified by 1/σ² for small σ, so every
    ``restart`` steps X is formed and ``R`` recomputed from it.
    """
    eye = _eye_like(X.shape[-2], X.dtype, xp)
    # R and R² are those of the current iterate; "H" is the last step's factor, not yet
    # applied to R
    state = {"X0": X, "Q": None, "R": _mm(X, _h(X)) if first is None else first[0],
             "Y2": None if first is None else first[1], "H": None, "since": 0,
             "first": first}

    def step(row, measure):
        if state["since"] == restart:
            X = _mm(state["Q"], state["X0"])
            state.update(X0=X, Q=None, R=_mm(X, _h(X)), H=None, since=0)
        if state["H"] is not None:
            H = state["H"]
            state["R"], state["H"] = _mm(_mm(H, state["R"]), H), None
        Y = state["R"]
        Y2 = _hermitian_square(Y) if state["Y2"] is None else state["Y2"]
        state["Y2"] = None
        defect = _frobenius(Y2 - Y, xp) if measure else None
        if state["first"] is not None:
            Y0, _, w = state["first"]
            H = _first_matrix(row, (Y0, Y2, w), combine, eye)
            # the first R is that of wX: R₁ = H Y₀ H / w² with H already carrying w
            state["R"] = Y0 / (w * w).astype(Y0.dtype)[:, None, None]
            state["first"] = None
        else:
            H = combine(row, Y, Y2, eye)
        state["Q"] = H if state["Q"] is None else _mm(H, state["Q"])
        state["H"] = H
        state["since"] += 1
        return defect

    outcome = _run(step, table, **run)
    X = state["X0"] if state["Q"] is None else _mm(state["Q"], state["X0"])
    return X, outcome


#: Mixed precision: the float16 phase hands over once its iterate is predicted
#: within this of 1; one or two steps in the working precision then finish.
_MIXED_HANDOVER = 0.05


def msign(M: Any, table: np.ndarray, *, cdt: np.dtype, tol: float, adaptive: bool,
          method: str, restart: int = 3, low: np.dtype | None = None,
          combine: Any = poly_matrix, product16: Any = None, mm: Any = _mm,
          start: Any = None, tailor: bool = False) -> tuple[Any, Outcome]:
    """Polar factor of each ``(n, m)`` matrix of the stack ``M`` by an odd-polynomial iteration.

    Works on the side with the smaller Gram matrix (``Mᴴ`` when ``n > m``). The start
    ``X₀ = M / ‖M‖_F`` has every singular value in [0, 1]; ``M`` is first brought to
    unit size by an exact power-of-two scaling, so neither the squares in the norm
    nor the products overflow or underflow. Adaptive runs (``steps=None``) then divide
    by the sharper bound ``‖(X₀X₀ᴴ)²‖_F^{1/4}`` (see :func:`_gram_start`); fixed-step
    runs keep the Frobenius start, so that they reproduce the published iterations.

    ``tailor`` (adaptive Polar Express runs with ``tol ≥`` :data:`_TAILOR_TOL` · eps, matrices
    of at least :data:`_TAILOR_MIN_SIZE` entries):
    certify an interval for the singular values first (:func:`spectral_interval`) and
    run the fewest Polar Express rows built for it whose scalar-map band proves ``tol``
    (:func:`structla.matfun._coefficients.tailored_table`), with no defect measurement;
    without a certificate the adaptive rule below runs instead.

    ``method`` is "standard", "gram" or "auto" (:func:`choose_method`). ``low``
    (float16, adaptive runs only) runs the rows in ``low`` until the iterate is
    predicted within :data:`_MIXED_HANDOVER` of 1 and the remaining rows in ``cdt``
    (the standard method in both phases). ``combine(row, Y, Y2, eye)`` forms
    ``aI + bY + cY²`` (a fused kernel on CuPy); ``product16(a, b)`` multiplies float16
    stacks with float32 accumulation and output (default :func:`product_float32`; one
    cuBLAS call on CuPy); ``mm`` is the product of the standard method's steps when
    ``low`` is None (on CuPy one strided-batched GEMM with transpose flags for stacks); ``start(M, cdt)``
    forms ``X₀`` (default :func:`frobenius_start`; three fused kernels on CuPy).
    """
    product16 = product16 or product_float32
    tall = M.shape[-2] > M.shape[-1]
    X = (start or frobenius_start)(M.conj().swapaxes(-1, -2) if tall else M, cdt)
    xp = _xp(M)
    # singular values below rcond·‖M‖_F may stay unconverged (see _run)
    run = {"tol": tol, "adaptive": adaptive,
           "slope": _MSIGN_SLOPE, "rcond": _rcond(low if low is not None else cdt)}
    if low is not None and adaptive:
        X, outcome = _msign_mixed(X, table, xp, low, combine, run, product16)
        outcome.method = "standard"
    else:
        first, plan = None, None
        if adaptive:
            X, first, largest = _gram_start(X, xp)
            run["rcond"] /= largest
            if (tailor and tol >= _TAILOR_TOL * float(np.finfo(cdt).eps)
                    and X.shape[-2] * X.shape[-1] >= _TAILOR_MIN_SIZE):
                plan = _tailored(first, tol, cdt, xp)
        if plan is not None:
            table, first, band = plan
            run["adaptive"] = False
        method = choose_method(method, *X.shape[-2:], len(table) if plan else None)
        if method == "gram":
            X, outcome = _msign_gram(X, table, xp, restart, combine, first, **run)
        else:
            X, outcome = _msign_standard(X, table, xp, combine, first, mm, **run)
        if plan is not None:
            outcome.predicted, outcome.converged = band, True
        outcome.method = method
    return (X.conj().swapaxes(-1, -2) if tall else X), outcome


def choose_method(method: str, k: int, big: int, steps: int | None = None) -> str:
    """"standard" or "gram" for a ``k × big`` iterate (``k ≤ big``); "auto" compares costs.

    Per step (syrk for the symmetric products): standard ``2k²K + k²K + k³`` flops, Gram
    ``7k³`` plus ``2k²K`` once at the end and ``3k²K`` per restart. For a known number
    of steps without restart the Gram form is cheaper from ``K > 2k`` on (``3k`` here,
    for the smaller products' lower BLAS efficiency); with an open-ended count the
    restarts and the defect measurement shift the measured break-even to ``K ≈ 8k``.
    """
    if method != "auto":
        return method
    if steps is not None and steps <= _RESTART:
        return "gram" if big >= 3 * k else "standard"
    return "gram" if big >= 8 * k else "standard"


_RESTART = 3
#: Tolerances (in units of the compute dtype's eps) from which a certified band alone
#: decides the step count: below, the iteration's own rounding is no longer small
#: against tol, and the measured defect decides.
_TAILOR_TOL = 1e3
#: Smallest certified (σ_min/σ_max)² (in units of eps) the tailored tables are used for:
#: below it, the computed Gram matrix does not resolve σ_min.
_TAILOR_FLOOR = 1e4
#: Smallest matrices (entries) the certificate is tried for: below, the 40 Lanczos steps and
#: the factorisations (Python- and call-bound on small matrices) cost more than the steps
#: they can save (a stack of 256 × 128×128 would pay ≈ 3× its iteration time).
_TAILOR_MIN_SIZE = 2**16
#: Lanczos steps of the spectrum estimate (full reorthogonalisation): ≈ 10⁻³ relative
#: accuracy at both edges of a 1024-point Marchenko–Pastur spectrum.
_LANCZOS_STEPS = 40
#: Fractions of the Lanczos estimate of λ_min tried as certified lower bounds, in turn.
_LOWER_TRIES = (0.99, 0.9, 0.5, 0.1)
#: The Lanczos estimate of λ_max times this is tried as the certified upper bound.
_UPPER_MARGIN = 1.01


def _tailored(first: tuple[Any, Any, Any], tol: float, cdt: np.dtype,
              xp: ModuleType) -> tuple[np.ndarray, tuple[Any, Any, Any], float] | None:
    """``(table, first, band)`` for the certified spectrum of the start, or None.

    The table's band is at most ``tol`` minus an allowance for rounding (``4√k·eps·u/ℓ``);
    the reported band is the table's own.

    ``first = (Y, Y², w)`` from :func:`_gram_start` has every eigenvalue of Y in [0, 1].
    A certified ``[ℓ², u²]`` (per matrix) rescales the start by ``1/u`` (folded into
    ``Y``, ``Y²``, ``w``) and the stack's smallest ``ℓ/u``, rounded down to a grid of
    200 points per decade, picks the table.
    """
    Y, Y2, w = first
    eps = float(np.finfo(cdt).eps)

    def allowance(ratio):
        # the band is exact arithmetic; leave room for the products' rounding, ≈ √k·eps
        # relative to the largest singular value of Q ≈ (XXᴴ)^{-1/2} (u/ℓ), 4× over
        return 4 * np.sqrt(Y.shape[-1]) * eps / np.sqrt(ratio)

    def viable(ratio):
        return ratio >= _TAILOR_FLOOR * eps and allowance(ratio) < tol / 2

    estimate = _lanczos_extremes(Y, _LANCZOS_STEPS, xp)
    with np.errstate(divide="ignore", invalid="ignore"):
        hopeful = float(np.min(estimate[0] / np.minimum(estimate[1], 1.0)))
    if not viable(hopeful):  # the estimate bounds the certified ratio from above
        return None
    interval = spectral_interval(Y, xp, estimate)
    if interval is None:
        return None
    lower, upper = interval
    upper = np.minimum(upper, 1.0)
    ratio = float(np.min(np.maximum(lower, 0.0) / upper))
    if not viable(ratio):
        return None
    grid = 10 ** (np.floor(np.log10(np.sqrt(ratio)) * 200) / 200)
    plan = _coefficients.tailored_table(float(grid), float(tol - allowance(grid**2)))
    if plan is None:
        return None
    table, band = plan
    real = Y.real.dtype
    u2 = xp.asarray(upper, dtype=real)[:, None, None]
    first = (Y / u2, Y2 / (u2 * u2), w / xp.sqrt(xp.asarray(upper, dtype=w.dtype)))
    return table, first, band


def spectral_interval(Y: Any, xp: ModuleType,
                      estimate: tuple[np.ndarray, np.ndarray] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Certified ``[lower, upper]`` (host float64, per matrix) holding every eigenvalue of
    each Hermitian matrix of the stack ``Y``, or None when no positive lower bound is found.

    Lanczos (:func:`_lanczos_extremes`) estimates the extreme eigenvalues from inside;
    a float64 Cholesky factorisation of ``Y − μI`` (``μI − Y``) that succeeds proves
    ``λ_min ≥ μ`` (``λ_max ≤ μ``) for the whole stack up to its backward error
    ``(k+1)²·eps₆₄·‖Y‖₂``, which is subtracted (added). ``upper`` is ``inf`` where the
    test of the upper estimate fails (the caller has an a-priori bound). ``estimate``:
    the Lanczos values if the caller has them.
    """
    low, high = estimate if estimate is not None else _lanczos_extremes(Y, _LANCZOS_STEPS, xp)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return None  # non-finite input: the iteration reports it
    k = Y.shape[-1]
    A = Y.astype(np.complex128 if Y.dtype.kind == "c" else np.float64)
    eye = xp.eye(k, dtype=A.dtype)
    slack = (k + 1) ** 2 * float(np.finfo(np.float64).eps) * high * _UPPER_MARGIN

    def stack(values):
        return xp.asarray(values, dtype=np.float64)[:, None, None]

    upper = high * _UPPER_MARGIN
    if not ((upper > 0).all() and _positive_definite(stack(upper) * eye - A, xp)):
        upper = np.full_like(upper, np.inf)
    upper = upper + slack
    for fraction in _LOWER_TRIES:
        lower = low * fraction
        if (lower > 0).all() and _positive_definite(A - stack(lower) * eye, xp):
            return lower - slack, upper
    return None


def _positive_definite(A: Any, xp: ModuleType) -> bool:
    """Whether a Cholesky factorisation of every matrix of the (scratch) stack completes."""
    if isinstance(A, np.ndarray):
        # LAPACK's potrf in place on the transposed view (A is Hermitian: the same lower
        # triangle up to conjugation); half the time of numpy.linalg.cholesky, which copies
        # and zeroes the other triangle
        from scipy.linalg import lapack

        potrf = lapack.zpotrf if A.dtype.kind == "c" else lapack.dpotrf
        return all(potrf(a.T, lower=0, clean=0, overwrite_a=1)[1] == 0 for a in A)
    try:
        L = xp.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        return False
    # CuPy may report a failed factorisation by non-finite values instead of raising
    return bool(xp.isfinite(L).all())


def _lanczos_extremes(Y: Any, steps: int, xp: ModuleType) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest Ritz values (host float64, per matrix) of ``steps`` Lanczos
    steps on each Hermitian matrix of the stack ``Y``, from a fixed random start.

    Ritz values lie inside the spectrum: ``θ_min ≥ λ_min`` and ``θ_max ≤ λ_max``. The
    basis is reorthogonalised in full (``steps`` is small); the run stops early where a
    residual vanishes (an invariant subspace: its Ritz values are eigenvalues).
    """
    count, k, _ = Y.shape
    steps = min(steps, k)
    q = xp.asarray(np.random.default_rng(0).standard_normal((count, k, 1))).astype(Y.dtype)
    q = q / xp.sqrt(xp.sum(xp.abs(q) ** 2, axis=1, keepdims=True))
    V = xp.empty((count, steps, k), dtype=Y.dtype)  # basis vectors as rows: contiguous slices
    alphas, betas = [], []
    # a residual at rounding level means an invariant subspace (its Ritz values are exact)
    breakdown, scale = 100 * float(np.finfo(Y.dtype).eps), 0.0
    for j in range(steps):
        V[:, j] = q[:, :, 0]
        w = Y @ q
        alphas.append(xp.sum(q.conj() * w, axis=(1, 2)).real)
        basis = V[:, :j + 1]
        # Gram–Schmidt against the whole basis, twice (covers the three-term recurrence
        # and keeps the basis orthogonal to working precision)
        for _ in range(2):
            w = w - basis.swapaxes(-1, -2) @ (basis.conj() @ w)
        beta = xp.sqrt(xp.sum(xp.abs(w) ** 2, axis=(1, 2)))
        betas.append(beta)
        scale = max(float(xp.max(xp.abs(alphas[-1]))), float(beta.max()), scale)
        if j + 1 == steps or float(beta.min()) <= breakdown * scale:
            break
        q = w / beta[:, None, None].astype(Y.dtype)
    a = np.stack([np.asarray(_host(v), dtype=np.float64) for v in alphas], axis=1)
    b = np.stack([np.asarray(_host(v), dtype=np.float64) for v in betas[:-1]], axis=1) \
        if len(betas) > 1 else np.zeros((count, 0))
    T = np.zeros((count, a.shape[1], a.shape[1]))
    i = np.arange(a.shape[1])
    T[:, i, i] = a
    T[:, i[:-1], i[1:]] = b
    T[:, i[1:], i[:-1]] = b
    if not np.isfinite(T).all():
        return np.full(count, np.nan), np.full(count, np.nan)
    values = np.linalg.eigvalsh(T)
    return values[:, 0], values[:, -1]


def _host(x: Any) -> np.ndarray:
    from .._core.namespace import to_numpy

    return to_numpy(x)


def frobenius_start(M: Any, cdt: np.dtype) -> Any:
    """``M / ‖M‖_F`` per matrix in ``cdt`` (zeros stay zeros), after an exact power-of-two
    scaling that keeps the squares from overflowing or underflowing."""
    xp = _xp(M)
    X = _scaled(M, cdt, xp)
    return _safe_divide(X, _frobenius(X, xp), xp)


def _rcond(dtype: np.dtype) -> float:
    return 0.1 * float(np.sqrt(np.finfo(dtype).eps))


def _msign_mixed(X: Any, table: np.ndarray, xp: ModuleType, low: np.dtype, combine: Any,
                 run: dict, product16: Any) -> tuple[Any, Outcome]:
    """Rows in ``low`` until the hand-over, the rest in ``X.dtype`` with the stopping rule.

    The first row after the hand-over runs on ``low`` products (:func:`_finish_step`);
    the later ones, if ``tol`` needs them, in ``X.dtype``. Each phase starts its lower
    bound for the singular values at the previous phase's: the numerical-rank cutoff is
    that of ``low`` (``0.1·√eps`` of float16, 3·10⁻³·‖M‖_F), since smaller singular
    values are not resolved in float16.
    """
    high = X.dtype
    X, start, largest = _gram_start(X.astype(low), xp)
    rcond = run["rcond"] / largest
    X, head = _msign_standard(X, table, xp, combine, start,
                              **dict(run, tol=max(run["tol"], _MIXED_HANDOVER), rcond=rcond))
    # the hand-over tolerance is not the caller's: without a later phase, nothing is proved
    head.converged = head.converged and run["tol"] >= _MIXED_HANDOVER
    outcomes = [head]
    if not (head.diverged or head.converged) and head.iterations < len(table):
        rest = table[head.iterations:]
        rcond = _chained_rcond(outcomes, rcond)
        X, finish = _finish_step(X, rest[:1], xp, high, product16, **dict(run, rcond=rcond))
        outcomes.append(finish)
        if not (finish.converged or finish.diverged) and len(rest) > 1:
            rcond = _chained_rcond(outcomes, rcond)
            X, tail = _msign_standard(X, rest[1:], xp, combine, **dict(run, rcond=rcond))
            outcomes.append(tail)
    return X.astype(high, copy=False), _chain(outcomes)


def _chained_rcond(outcomes: list[Outcome], start: float) -> float:
    """The lower bound the next phase starts from (the last phase that applied a row)."""
    for outcome in reversed(outcomes):
        if outcome.smallest is not None:
            return outcome.smallest
    return start


def _chain(outcomes: list[Outcome]) -> Outcome:
    last = outcomes[-1]
    return Outcome(iterations=sum(o.iterations for o in outcomes), predicted=last.predicted,
                   converged=last.converged, diverged=any(o.diverged for o in outcomes),
                   history=[v for o in outcomes for v in o.history],
                   smallest=_chained_rcond(outcomes, None))


def product_float32(a: Any, b: Any) -> Any:
    """``a @ b`` of float16 stacks, accumulated and returned in float32 (exact products)."""
    return _mm(a.astype(np.float32), b.astype(np.float32))


def _finish_step(X16: Any, row: np.ndarray, xp: ModuleType, high: np.dtype, product16: Any,
                 **run: Any) -> tuple[Any, Outcome]:
    """One row on the float16 iterate with float16 products and ``high`` accuracy.

    ``X16`` is exact in float16, so ``Y = X Xᴴ`` from float16 products accumulated in
    float32 is as accurate as in float32. With ``E = Y − I`` (small):
    ``Y² − Y = E + E²`` and ``aI + bY + cY² = (a+b+c)I + K``, ``K = (b+2c)E + cE²``.
    ``E²`` comes from float16 ``E`` (error ≤ 2u₁₆‖E‖‖E‖_F) and ``KX`` from the two
    float16 halves of ``K`` (error ≤ u₁₆²‖K‖_F): four float16 products instead of
    three in ``high``. The stopping rule adds these bounds to its prediction.
    """
    low = X16.dtype
    eye = _eye_like(X16.shape[-2], high, xp)
    state = {"X": X16}
    u = float(np.finfo(low).eps) / 2

    def step(row, measure):
        X = state["X"]
        E = product16(X, X.swapaxes(-1, -2)) - eye
        E_low = E.astype(low)
        E2 = product16(E_low, E_low)
        defect = _frobenius(E + E2, xp) if measure else None
        a, b, c = (float(v) for v in row)

        def apply():
            K = (b + 2 * c) * E + c * E2
            K_high = K.astype(low)
            K_low = (K - K_high.astype(high)).astype(low)
            state["X"] = (a + b + c) * X.astype(high) + (product16(K_high, X) + product16(K_low, X))

        def extra(bound):
            e = (2 + bound) * bound  # |s² − 1| for |s − 1| ≤ bound
            frobenius = state["value"] / max(1 - e, 1e-3)  # ‖E‖_F from ‖E(I + E)‖_F
            square = abs(c) * u * frobenius * (2 * e + u * frobenius)
            split = u * u * frobenius * (abs(b + 2 * c) + abs(c) * e)
            return (1 + bound) * (square + split)

        if defect is None:
            apply()
            return None
        state["value"] = float(defect.max()) if defect.size else 0.0
        return defect, apply, extra

    outcome = _run(step, row, **run)
    return state["X"], outcome


def msign_defect(X: Any) -> Any:
    """Per-matrix ``‖YY − Y‖_F / 2`` with ``Y = XXᴴ`` on the smaller side: ≈ max |σᵢ − 1|
    over the singular values that are not (numerically) zero."""
    xp = _xp(X)
    if X.shape[-2] > X.shape[-1]:
        X = X.conj().swapaxes(-1, -2)
    Y = X @ X.conj().swapaxes(-1, -2)
    return _frobenius(Y @ Y - Y, xp) / 2


def msign_svd(M: Any, cdt: np.dtype) -> Any:
    """Exact polar factor ``U_r V_rᴴ`` from the SVD; σ ≤ max(n, m)·eps·σ₁ count as zero."""
    xp = _xp(M)
    X = _scaled(M, cdt, xp)
    U, s, Vh = xp.linalg.svd(X, full_matrices=False)
    if s.shape[-1] == 0:
        return U @ Vh
    rtol = max(M.shape[-2:]) * np.finfo(cdt).eps
    keep = (s > rtol * s[..., :1]).astype(U.dtype)
    return (U * keep[..., None, :]) @ Vh


def _h(x: Any) -> Any:
    return x.conj().swapaxes(-1, -2)


def polar_hermitian(M: Any, U: Any, side: str) -> Any:
    """``H = UᴴM`` (right) or ``MUᴴ`` (left), made exactly Hermitian."""
    H = _h(U) @ M if side == "right" else M @ _h(U)
    return (H + _h(H)) / 2


def root_residual(C: Any, R: Any, inverse: bool) -> Any:
    """Per-matrix ``‖R² − C‖_F / ‖C‖_F`` (square root) or ``‖RCR − I‖_F / √n`` (inverse)."""
    xp = _xp(C)
    if inverse:
        eye = _eye_like(C.shape[-1], C.dtype, xp)
        return _frobenius(R @ C @ R - eye, xp) / np.sqrt(C.shape[-1])
    norm = _frobenius(C, xp)
    return _frobenius(R @ R - C, xp) / xp.where(norm > 0, norm, xp.ones_like(norm))


def _clip_unit(X: Any, O: Any, variant: str, sign) -> Any:
    """``U clip(Σ, 0, 1) Vᴴ`` for ``X = UΣVᴴ`` with ``O = msign(X)`` (MATH D6)."""
    n, m = X.shape[-2:]
    if variant == "leloykun":
        xp = _xp(X)
        count = X.shape[0]
        block = xp.zeros((count, n + m, n + m), dtype=X.dtype)
        block[:, :n, :n] = xp.eye(n, dtype=X.dtype)
        block[:, n:, n:] = xp.eye(m, dtype=X.dtype)
        block[:, :n, n:] = X
        block[:, n:, :n] = _h(X)
        S = sign(block)
        return S[:, :n, n:] + S[:, :n, :n] @ X
    if variant == "v1":
        S = sign(X - O)
        # (I − XOᴴ) S = S (I − OᴴX): take the side with the smaller identity
        fix = S - (X @ (_h(O) @ S)) if n <= m else S - (S @ _h(O)) @ X
        return (X + O + fix) / 2
    left = n <= m
    xp = _xp(X)
    # msign(XXᴴ ∓ I) = msign(d²XXᴴ ∓ d²I): shrink X by a power of two d ≤ 1 so that the
    # Gram matrix cannot overflow for huge singular values
    d = xp.minimum(_power_of_two_scale(X, xp), 1.0).astype(X.dtype)[:, None, None]
    Xd = X * d
    gram = Xd @ _h(Xd) if left else _h(Xd) @ Xd
    shift = _eye_like(gram.shape[-1], X.dtype, xp) * (d * d)
    minus = sign(gram - shift)
    if variant == "v2":
        fix = minus @ (O - X) if left else (O - X) @ minus
        return (X + O + fix) / 2
    plus = sign(gram + shift)
    if left:
        return (plus @ (O + X) + minus @ (O - X)) / 2
    return ((O + X) @ plus + (O - X) @ minus) / 2


def mclip(M: Any, lo: float, hi: float, variant: str, sign) -> tuple[Any, list[Outcome]]:
    """``U clip(Σ, lo, hi) Vᴴ`` by msign compositions (MATH D6); zero singular values stay 0.

    ``clip_{[0,β]}(M) = β·clip_{[0,1]}(M/β)`` and, for ``lo > 0``,
    ``clip_{[α,β]}(M) = clip_{[0,β]}(M) + α·msign(M) − clip_{[0,α]}(M)``.
    """
    outcomes: list[Outcome] = []

    def counted(x):
        y, outcome = sign(x)
        outcomes.append(outcome)
        return y

    xp = _xp(M)
    O = counted(M) if (variant != "leloykun" or lo > 0) else None

    def clip_to(bound: float) -> Any:
        if bound == 0:
            return xp.zeros_like(M)
        if not np.isfinite(bound):
            return M
        return bound * _clip_unit(M / bound, O, variant, counted)

    out = clip_to(hi)
    if lo > 0:
        out = out + lo * O - clip_to(lo)
    return out, outcomes


def mclip_svd(M: Any, lo: float, hi: float, cdt: np.dtype) -> Any:
    """Exact ``U clip(Σ, lo, hi) Vᴴ`` from the SVD; σ ≤ max(n, m)·eps·σ₁ stay zero."""
    xp = _xp(M)
    X = M.astype(cdt, copy=False)
    U, s, Vh = xp.linalg.svd(X, full_matrices=False)
    if s.shape[-1] == 0:
        return U @ Vh
    rtol = max(M.shape[-2:]) * np.finfo(cdt).eps
    clipped = xp.where(s > rtol * s[..., :1], xp.clip(s, lo, hi), 0)
    return (U * clipped[..., None, :].astype(U.dtype)) @ Vh


# ---------------------------------------------------------------------------------
# mcsgn and the coupled square-root iteration


def _spectral_radius_bound(X: Any, xp: ModuleType) -> Any:
    """min(‖X‖₁, ‖X‖_∞, ‖X‖_F) per matrix: each bounds the spectral radius."""
    absx = xp.abs(X)
    one = xp.max(xp.sum(absx, axis=-2), axis=-1)
    inf = xp.max(xp.sum(absx, axis=-1), axis=-1)
    return xp.minimum(xp.minimum(one, inf), _frobenius(X, xp))


def mcsgn(M: Any, table: np.ndarray, *, cdt: np.dtype, tol: float,
          adaptive: bool) -> tuple[Any, Outcome]:
    """Matrix sign ``M (M²)^{-1/2}`` of each square matrix by ``X ← (aI + bX² + cX⁴) X``.

    ``X₀ = M / r`` with ``r`` an upper bound on the spectral radius, so a real
    spectrum starts in [−1, 1] and each eigenvalue follows the scalar map to ±1.
    The defect measured is ``‖X² − I‖_F``.
    """
    xp = _xp(M)
    X = _scaled(M, cdt, xp)
    X = _safe_divide(X, _spectral_radius_bound(X, xp), xp)
    eye = _eye_like(X.shape[-1], X.dtype, xp)
    state = {"X": X}

    def step(row, measure):
        X = state["X"]
        Y = X @ X
        defect = _frobenius(Y - eye, xp) if measure else None
        Y2 = Y @ Y if row[2] != 0 else None
        state["X"] = poly_matrix(row, Y, Y2, eye) @ X
        return defect

    outcome = _run(step, table, tol=tol, adaptive=adaptive,
                   slope=_SIGN_SLOPE)
    return state["X"], outcome


def coupled_sqrt(C: Any, table: np.ndarray, *, cdt: np.dtype, tol: float,
                 adaptive: bool) -> tuple[Any, Any, Outcome]:
    """``(C^{1/2}, C^{-1/2})`` from the sign iteration on ``[[0, C], [I, 0]]`` (MATH D4).

    Odd powers of the anti-diagonal block ``[[0, A], [B, 0]]`` stay anti-diagonal, so
    the iteration runs on the pair: ``Y = AB``, ``H = aI + bY + cY²``, ``A ← HA``,
    ``B ← BH``; ``A → C^{1/2}``, ``B → C^{-1/2}``. Both start from the block scaled by
    an upper bound on its spectral radius, ``√ρ(C)``.
    """
    xp = _xp(C)
    scale = _power_of_two_scale(C, xp)
    A = (C * scale[:, None, None].astype(C.dtype)).astype(cdt, copy=False)
    radius = xp.sqrt(_spectral_radius_bound(A, xp))
    radius = xp.where(radius > 0, radius, xp.ones_like(radius))
    eye = _eye_like(C.shape[-1], cdt, xp)
    A = A / radius[:, None, None].astype(cdt)
    B = xp.broadcast_to(eye, A.shape) / radius[:, None, None].astype(cdt)
    state = {"A": A, "B": B}

    def step(row, measure):
        Y = state["A"] @ state["B"]
        defect = _frobenius(Y - eye, xp) if measure else None
        H = poly_matrix(row, Y, Y @ Y if row[2] != 0 else None, eye)
        state["A"] = H @ state["A"]
        state["B"] = state["B"] @ H
        return defect

    outcome = _run(step, table, tol=tol, adaptive=adaptive,
                   slope=_SIGN_SLOPE)
    # undo the power-of-two scaling: sqrt(2^e C) = 2^{e/2} sqrt(C)
    root = xp.sqrt(scale.astype(np.float64)).astype(cdt.type(0).real.dtype)[:, None, None]
    return state["A"] / root.astype(cdt), state["B"] * root.astype(cdt), outcome


# ---------------------------------------------------------------------------------
# derivative


def msign_vjp_svd(M: Any, G: Any, cdt: np.dtype) -> Any:
    """``∂L/∂M`` for ``O = msign(M)`` and ``G = ∂L/∂O`` from one thin SVD (MATH D5).

    With ``M = U Σ Vᴴ``: the Sylvester equation ``AX + XB = G`` (``A = (MMᴴ)^{1/2}``,
    ``B = (MᴴM)^{1/2}``) is diagonal in the singular bases, ``X = U[(UᴴGV) ⊘ (σᵢ + σⱼ)]Vᴴ``
    on the range; for a rectangular matrix the part of ``G`` outside ``U``'s or ``V``'s
    span is divided by the one non-zero singular value it meets.
    """
    xp = _xp(M)
    scale = _power_of_two_scale(M, xp)
    Ms = (M * scale[:, None, None].astype(M.dtype)).astype(cdt, copy=False)
    G = G.astype(cdt, copy=False)
    U, s, Vh = xp.linalg.svd(Ms, full_matrices=False)
    if s.shape[-1] and bool((s[..., -1] <= max(M.shape[-2:]) * np.finfo(cdt).eps * s[..., 0]).any()):
        raise LinAlgError("msign_vjp: M is rank deficient; msign is not differentiable there")
    V = Vh.conj().swapaxes(-1, -2)
    Uh = U.conj().swapaxes(-1, -2)
    O = U @ Vh
    # X = X_range + X_left + X_right solves AX + XB = G with A = UΣUᴴ, B = VΣVᴴ
    core = (Uh @ G @ V) / (s[..., :, None] + s[..., None, :])
    X = U @ core @ Vh
    GV = G @ V
    X = X + (GV - U @ (Uh @ GV)) / s[..., None, :] @ Vh  # (I − UUᴴ) G V Σ⁻¹ Vᴴ
    UhG = Uh @ G
    X = X + U @ ((UhG - (UhG @ V) @ Vh) / s[..., :, None])  # U Σ⁻¹ Uᴴ G (I − VVᴴ)
    grad = X - O @ X.conj().swapaxes(-1, -2) @ O
    return grad * scale[:, None, None].astype(cdt)


def _xp(x: Any) -> ModuleType:
    from .._core.namespace import array_namespace

    return array_namespace(x=x)

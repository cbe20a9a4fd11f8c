"""HiPPO operators, their NPLR/DPLR form, discretisation and SSM convolution kernels.

Public routines of the ``hippo`` family (MATH B2, C, E3, G). Conventions shared by
every kernel: ``K_k = C @ Ā^k @ B̄`` for ``k < length`` (C enters without
conjugation); ``dt`` has the batch shape only (one step per channel); with
``conj_pairs=True`` the parameters hold one mode of each conjugate pair and the
result is the real kernel of the whole (real) system.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, NamedTuple

import numpy as np

from .._core.batch import broadcast_batch, parse_signature
from .._core.dispatch import implementation
from .._core.errors import LinAlgError
from .._core.namespace import array_namespace, is_cupy_namespace
from .._core.validate import as_array, checks_finite, compute_dtype, result_dtype
from .._core.validate import check_finite as _check_finite

__all__ = [
    "NPLR",
    "discretize",
    "discretize_diag",
    "fftconv",
    "hippo",
    "legs_matvec",
    "legs_solve",
    "nplr",
    "rft_kernel",
    "s4d_init",
    "ssm_kernel",
    "ssm_kernel_diag",
    "ssm_kernel_dplr",
]

MEASURES = ("legs", "legt", "lagt", "fout")
_SCALINGS = {"legs": ("hippo", "su"), "legt": ("hippo", "su"), "lagt": ("hippo", "exp"),
             "fout": ("hippo",)}
_GBT = {"bilinear": 0.5, "forward_euler": 0.0, "backward_euler": 1.0}
METHODS = ("zoh", "bilinear", "forward_euler", "backward_euler", "gbt")


class NPLR(NamedTuple):
    """Normal-plus-low-rank form of a HiPPO matrix: ``A = V (diag(Λ) − PᵀP̄) V*``."""

    Lambda: Any
    P: Any
    B: Any
    V: Any


# ----------------------------------------------------------------------------- validation helpers


def _size(value: Any, name: str) -> int:
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"argument {name!r} must be an integer; got {type(value).__name__}") from None
    if size < 0:
        raise ValueError(f"argument {name!r} must be >= 0; got {size}")
    return size


def _measure_keywords(measure: str, scaling: str, window: float | None, beta: float | None):
    if measure not in MEASURES:
        raise ValueError(f"argument 'measure' must be one of {MEASURES}; got {measure!r}")
    if scaling not in _SCALINGS[measure]:
        raise ValueError(f"argument 'scaling' must be one of {_SCALINGS[measure]} for measure "
                         f"{measure!r}; got {scaling!r}")
    if window is not None and measure != "legt":
        raise TypeError(f"argument 'window' applies to measure 'legt' only, not {measure!r}")
    if beta is not None and measure != "lagt":
        raise TypeError(f"argument 'beta' applies to measure 'lagt' only, not {measure!r}")
    window = 1.0 if window is None else float(window)
    if not (np.isfinite(window) and window > 0):
        raise ValueError(f"argument 'window' must be a positive number; got {window}")
    beta = 1.0 if beta is None else float(beta)
    if not np.isfinite(beta):
        raise ValueError(f"argument 'beta' must be finite; got {beta}")
    return window, beta


def _method_alpha(method: str, alpha: float | None) -> float | None:
    if method not in METHODS:
        raise ValueError(f"argument 'method' must be one of {METHODS}; got {method!r}")
    if method == "gbt":
        if alpha is None:
            raise ValueError("method='gbt' needs the argument 'alpha' (0 ≤ alpha ≤ 1)")
        return float(alpha)
    if alpha is not None:
        raise ValueError(f"argument 'alpha' is only used with method='gbt', not {method!r}")
    return _GBT.get(method)


def _prepare(signature: str, check_finite: bool | None, *, complex_compute: bool = False,
             real_dt: bool = True, **arrays: Any):
    """Namespace, validated compute-dtype arrays flattened to one batch axis, batch, dtype."""
    xp = array_namespace(**arrays)
    raw = {k: v if v is None or type(v) is xp.ndarray else as_array(v, k, xp)
           for k, v in arrays.items()}
    # The dtypes and the batch depend only on the operands' types, shapes and dtypes: memoised,
    # so that repeated calls (a training loop; on the GPU this is host time before the first
    # launch) skip the promotion and broadcasting logic. Invalid inputs raise and are not stored.
    key = (signature, complex_compute, real_dt,
           *((type(v), None if r is None else (r.shape, r.dtype))
             for v, r in zip(arrays.values(), raw.values(), strict=True)))
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _layout(signature, complex_compute, real_dt, arrays, raw)
        if len(_LAYOUTS) >= _LAYOUTS_KEPT:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout
    dtype, work, batch = layout
    if checks_finite(check_finite, xp):
        for name, value in raw.items():
            _check_finite(value, name, xp)
    flat = {}
    for (name, value), core in zip(raw.items(), _core_ndims(signature), strict=True):
        if value is None:
            flat[name] = None
            continue
        cast = _real(work) if name == "dt" else work
        if value.dtype != cast:
            value = value.astype(cast)
        # Operands that already have the whole batch shape need at most a reshape (none with
        # one batch axis): the common case, where every skipped array call saves host time.
        lead = value.shape[: value.ndim - core]
        if lead == batch.shape:
            flat[name] = value if len(lead) == 1 else value.reshape((batch.count, *value.shape[len(lead):]))
        else:
            flat[name] = batch.flatten(value, core, xp)
    return xp, flat, batch, dtype


def _layout(signature: str, complex_compute: bool, real_dt: bool, arrays: dict, raw: dict):
    """``(result dtype, compute dtype, Batch)`` of validated operands (see ``_prepare``)."""
    dtype = result_dtype(*arrays.values())
    if real_dt and "dt" in raw and raw["dt"].dtype.kind == "c":
        raise TypeError("argument 'dt' must be real (a positive step per channel); got complex")
    work = compute_dtype(dtype)
    if complex_compute:
        work = np.result_type(work, np.complex64)
    return dtype, work, broadcast_batch(signature, **raw)


_LAYOUTS: dict = {}
_LAYOUTS_KEPT = 256


def _finish(batch: Any, x: Any, dtype: np.dtype) -> Any:
    """``x`` (count, ...) with the batch axes restored, in ``dtype`` (no array call if it is)."""
    if len(batch.shape) != 1:
        x = batch.unflatten(x)
    return x if x.dtype == dtype else x.astype(dtype)


@functools.cache
def _core_ndims(signature: str) -> tuple[int, ...]:
    return tuple(len(c) for c in parse_signature(signature))


def _real(dtype: np.dtype) -> np.dtype:
    return _REAL.get(dtype) or np.dtype(np.finfo(dtype).dtype)


_REAL = {np.dtype(t): np.dtype(np.finfo(t).dtype)
         for t in (np.float32, np.float64, np.complex64, np.complex128)}


# ----------------------------------------------------------------------------- HiPPO


def hippo(measure: str, N: int, *, dtype: Any = np.float64, scaling: str = "hippo",
          window: float | None = None, beta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """HiPPO state matrix ``A`` and input vector ``B`` of ``x' = Ax + Bu`` (MATH C1–C4).

    Parameters
    ----------
    measure : {"legs", "legt", "lagt", "fout"}
        ``"legs"``: scaled Legendre, uniform weight on the whole history ``[0, t]``;
        the ODE is time-varying, ``x' = (Ax + Bu)/t``. ``"legt"``: translated Legendre
        on the sliding window ``[t − window, t]``. ``"lagt"``: Laguerre, exponentially
        decaying weight on ``(−∞, t]``. ``"fout"``: Fourier basis on the window ``[t−1, t]``.
    N : int
        State size.
    dtype : {float64, float32}
    scaling : str
        ``"hippo"`` (default): the HiPPO/S4 convention. ``"su"`` (legs, legt): ``B`` times
        √2, so that the state is exactly the coefficient vector in the orthonormal basis
        ``√((2n+1)/2)·P_n``. ``"exp"`` (lagt): the HiPPO paper's weight ``e^{−(t−x)}``.
    window : float, optional
        legt only: window length ``w`` (default 1). ``window=2`` is state-spaces/s4's ``legt``.
    beta : float, optional
        lagt only: ``B = beta·1`` (default 1).

    Returns
    -------
    A : (N, N) ndarray
    B : (N,) ndarray

    Notes
    -----
    With ``r_n = √(2n+1)``:

    - legs: ``A_nk = −r_n r_k (n > k), −(n+1) (n = k), 0 (n < k)``, ``B_n = r_n``;
      ``A = diag(0..N−1) − tril(r rᵀ)`` (see :func:`legs_matvec`, :func:`legs_solve`).
    - legt: ``A_nk = −(r_n r_k / w)·(1 if n ≥ k else (−1)^{n−k})``, ``B_n = r_n / w``.
    - lagt: ``A = ½I − tril(1)``, ``B = β·1`` (functions ``L_n(s)e^{−s/2}``, state-spaces/s4);
      with ``scaling="exp"``: ``A = −tril(1)``.
    - fout: states ``[1, c₁, s₁, c₂, s₂, …]``, ``B = (1, √2, 0, √2, 0, …)``, ``A = Ω − BBᵀ`` with
      the rotations ``Ω[c_k, s_k] = 2πk = −Ω[s_k, c_k]``; exact for 1-periodic trigonometric
      polynomials of degree ≤ (N−1)/2. For even N the last sine state is dropped.

    Cost O(N²) to fill the matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from structla import hippo
    >>> A, B = hippo("legs", 4)
    >>> r = np.sqrt(2 * np.arange(4) + 1)
    >>> np.allclose(A, np.diag(np.arange(4.0)) - np.tril(np.outer(r, r))), np.allclose(B, r)
    (True, True)
    >>> np.allclose(np.sort(np.linalg.eigvals(A).real), [-4, -3, -2, -1])
    True
    """
    N = _size(N, "N")
    window, beta = _measure_keywords(measure, scaling, window, beta)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"argument 'dtype' must be float32 or float64; got {dtype}")
    fn = implementation("hippo", "hippo", np)
    A, B = fn(measure, N, scaling=scaling, window=window, beta=beta)
    return A.astype(dtype), B.astype(dtype)


def nplr(measure: str, N: int, *, conj_pairs: bool = False, dtype: Any = np.complex128,
         scaling: str = "hippo", window: float | None = None,
         beta: float | None = None) -> NPLR:
    """Normal-plus-low-rank decomposition of a HiPPO matrix, computed stably (MATH C1–C4).

    Parameters
    ----------
    measure, N, scaling, window, beta
        As in :func:`hippo`.
    conj_pairs : bool
        Keep one mode of each conjugate pair (the ``N/2`` with positive frequency), as S4
        does. Needs ``N`` even and no zero frequency.
    dtype : {complex128, complex64}

    Returns
    -------
    NPLR
        Named tuple ``(Lambda, P, B, V)``: ``Lambda (M,)``, ``P (rank, M)``, ``B (M,)``,
        ``V (N, M)``, with ``M = N`` (``N/2`` with conj_pairs) and rank 1 (legs, lagt, fout)
        or 2 (legt). Without conj_pairs ``V`` is unitary and

        ``A = V @ (diag(Lambda) − P.T @ P.conj()) @ V.conj().T``, ``hippo B = V @ B``.

        With conj_pairs the whole system is ``V_f = [V, V̄]``, ``Lambda_f = [Λ, Λ̄]``,
        ``P_f = [P, P̄]``, ``B_f = [B, B̄]``, and the same identities hold for them
        (so ``hippo B = 2·Re(V @ B)``).

    Raises
    ------
    LinAlgError
        conj_pairs with an odd N or a zero frequency.

    Notes
    -----
    ``A + PᵀP`` (``P`` the real low-rank factor of MATH C1–C4: ``√(n+½)`` for legs, two
    parity-split rows ``r_n/√w`` for legt, ``√½·1`` for lagt, ``B`` for fout) equals
    ``c·I + S`` with S real skew-symmetric. ``−iS`` is Hermitian, so its eigendecomposition
    gives unitary eigenvectors V and real frequencies ω stably; ``Λ = c + iω``, ``P̃ = V*P``,
    ``B̃ = V*B``. It is computed like ``eigh(−1j*S)`` but in real arithmetic: an orthogonal
    Hessenberg reduction makes S skew tridiagonal, a diagonal phase ``diag(iᵏ)`` turns ``−iT``
    into a real symmetric tridiagonal matrix, and ``scipy.linalg.eigh_tridiagonal`` solves it.
    ``A`` itself is never diagonalised: its eigenvector matrix has condition ~3e19 at N = 32.
    Cost O(N³) once.

    Examples
    --------
    >>> import numpy as np
    >>> from structla import hippo, nplr
    >>> A, B = hippo("legs", 8)
    >>> Lambda, P, Bt, V = nplr("legs", 8)
    >>> np.allclose(V @ (np.diag(Lambda) - P.T @ P.conj()) @ V.conj().T, A)
    True
    >>> np.allclose(V @ Bt, B), np.allclose(V.conj().T @ V, np.eye(8))
    (True, True)
    >>> np.round(nplr("legs", 8, conj_pairs=True).Lambda.imag, 4)
    array([ 0.4275,  1.9578,  5.3542, 19.8574])
    """
    N = _size(N, "N")
    window, beta = _measure_keywords(measure, scaling, window, beta)
    dtype = np.dtype(dtype)
    if dtype.kind != "c":
        raise TypeError(f"argument 'dtype' must be complex64 or complex128; got {dtype}")
    fn = implementation("hippo", "nplr", np)
    parts = fn(measure, N, conj_pairs=bool(conj_pairs), scaling=scaling, window=window, beta=beta)
    return NPLR(*(p.astype(dtype) for p in parts))


def s4d_init(kind: str, N: int, *, dtype: Any = None) -> np.ndarray:
    """The S4D diagonal state matrices (MATH B3).

    Parameters
    ----------
    kind : {"lin", "inv", "real"}
    N : int
        State size; ``"lin"`` and ``"inv"`` return ``N // 2`` complex modes (one of each
        conjugate pair), ``"real"`` returns N real modes.
    dtype : dtype, optional
        complex128 (lin, inv) or float64 (real) by default.

    Returns
    -------
    a : (N // 2,) complex ndarray or (N,) real ndarray

    Notes
    -----
    S4D-Lin ``a_n = −½ + iπn``; S4D-Inv ``a_n = −½ + i(N/π)(N/(2n+1) − 1)``;
    S4D-Real (Mamba) ``a_n = −(n+1)``. O(N).

    Examples
    --------
    >>> import numpy as np
    >>> from structla import s4d_init
    >>> np.allclose(s4d_init("inv", 16).imag[:4], [76.394, 22.070, 11.205, 6.548], atol=1e-3)
    True
    >>> np.allclose(s4d_init("lin", 6), -0.5 + 1j * np.pi * np.arange(3))
    True
    """
    kinds = ("lin", "inv", "real")
    if kind not in kinds:
        raise ValueError(f"argument 'kind' must be one of {kinds}; got {kind!r}")
    N = _size(N, "N")
    a = implementation("hippo", "s4d_init", np)(kind, N)
    if dtype is not None:
        dtype = np.dtype(dtype)
        if kind != "real" and dtype.kind != "c":
            raise TypeError(f"s4d_init({kind!r}) is complex; argument 'dtype' must be complex")
        a = a.astype(dtype)
    return a


def legs_matvec(v: Any, *, check_finite: bool | None = None) -> Any:
    """``A @ v`` for the LegS matrix of :func:`hippo` in O(N) (MATH C1).

    Parameters
    ----------
    v : (..., N) array
    check_finite : bool, optional

    Returns
    -------
    (..., N) array

    Notes
    -----
    ``A = diag(0..N−1) − tril(r rᵀ)``, so ``(Av)_n = n v_n − r_n Σ_{k≤n} r_k v_k``: one
    cumulative sum.

    Examples
    --------
    >>> import numpy as np
    >>> from structla import hippo, legs_matvec
    >>> v = np.random.default_rng(0).standard_normal((3, 6))
    >>> np.allclose(legs_matvec(v), v @ hippo("legs", 6)[0].T)
    True
    """
    xp, flat, batch, dtype = _prepare("(n)", check_finite, v=v)
    fn = implementation("hippo", "legs_matvec", xp)
    return batch.unflatten(fn(flat["v"])).astype(dtype, copy=False)


def legs_solve(v: Any, lam: Any, *, check_finite: bool | None = None) -> Any:
    """Solve ``(I − λA) z = v`` for the LegS matrix of :func:`hippo` in O(N) (MATH C1).

    The step of an implicit (backward Euler / bilinear) LegS update.

    Parameters
    ----------
    v : (..., N) array
    lam : (...) array or scalar
        λ, broadcast with the batch of ``v``; may be complex.
    check_finite : bool, optional

    Returns
    -------
    z : (..., N) array

    Raises
    ------
    LinAlgError
        If ``1 + λ(n+1) = 0`` for some ``n < N`` (``1/λ`` is minus an eigenvalue of A);
        checked on the CPU only.

    Notes
    -----
    ``S_{−1} = 0``, ``S_n = [(1−λn)S_{n−1} + r_n v_n] / (1 + λ(n+1))``, ``z_n = (S_n − S_{n−1})/r_n``
    where ``S_n = Σ_{k≤n} r_k z_k``. O(N) per vector.

    Examples
    --------
    >>> import numpy as np
    >>> from structla import hippo, legs_solve
    >>> A = hippo("legs", 6)[0]
    >>> v = np.arange(6.0)
    >>> np.allclose(legs_solve(v, 0.3), np.linalg.solve(np.eye(6) - 0.3 * A, v))
    True
    """
    xp, flat, batch, dtype = _prepare("(n),()", check_finite, real_dt=False, v=v, lam=lam)
    N = batch.sizes["n"]
    lam_flat = flat["lam"]
    if not is_cupy_namespace(xp) and N and lam_flat.size:
        pivots = 1 + lam_flat[:, None] * np.arange(1, N + 1)
        if bool((pivots == 0).any()):
            raise LinAlgError("I − λA is singular: 1 + λ(n+1) = 0 for some n (λ = −1/(n+1))")
    fn = implementation("hippo", "legs_solve", xp)
    return batch.unflatten(fn(flat["v"], lam_flat)).astype(dtype, copy=False)


# ----------------------------------------------------------------------------- discretisation


def discretize(A: Any, B: Any, dt: Any, *, method: str = "zoh", alpha: float | None = None,
               check_finite: bool | None = None) -> tuple[Any, Any]:
    """Discretise ``x' = Ax + Bu`` with step ``dt`` (dense A; MATH C5).

    Parameters
    ----------
    A : (..., N, N) array
    B : (..., N) array
    dt : (...) array or scalar
        Real step, one per batch entry.
    method : {"zoh", "bilinear", "forward_euler", "backward_euler", "gbt"}
        ``"gbt"`` needs ``alpha``.
    alpha : float, optional
        Generalised bilinear parameter: 0 forward Euler, ½ bilinear, 1 backward Euler.
    check_finite : bool, optional
        Default True on the CPU, False on the GPU.

    Returns
    -------
    Ad : (..., N, N) array
    Bd : (..., N) array

    Raises
    ------
    LinAlgError
        GBT with ``I − α·dt·A`` singular.

    Notes
    -----
    ZOH: ``Ā = e^{ΔA}``, ``B̄ = A⁻¹(e^{ΔA} − I)B``, computed as one exponential of the Van Loan
    block ``Δ[[A, B], [0, 0]]``, which is exact also for singular A.
    GBT(α): ``Ā = (I − αΔA)⁻¹(I + (1−α)ΔA)``, ``B̄ = (I − αΔA)⁻¹ΔB``. O(N³) per matrix.

    Examples
    --------
    >>> import numpy as np, scipy.linalg
    >>> from structla import discretize, hippo
    >>> A, B = hippo("legt", 4)
    >>> Ad, Bd = discretize(A, B, 0.1)
    >>> E = scipy.linalg.expm(0.1 * np.block([[A, B[:, None]], [np.zeros((1, 5))]]))
    >>> np.allclose(Ad, E[:4, :4]), np.allclose(Bd, E[:4, 4])
    (True, True)
    """
    alpha = _method_alpha(method, alpha)
    xp, flat, batch, dtype = _prepare("(n,n),(n),()", check_finite, A=A, B=B, dt=dt)
    fn = implementation("hippo", "discretize", xp)
    Ad, Bd = fn(flat["A"], flat["B"], flat["dt"],
                method="zoh" if method == "zoh" else "gbt", alpha=alpha)
    return batch.unflatten(Ad).astype(dtype), batch.unflatten(Bd).astype(dtype)


def discretize_diag(a: Any, B: Any, dt: Any, *, method: str = "zoh", alpha: float | None = None,
                    check_finite: bool | None = None) -> tuple[Any, Any]:
    """Discretise the diagonal system ``x' = diag(a)x + Bu`` elementwise (MATH B3, C5).

    Parameters
    ----------
    a : (..., N) array
        Diagonal of A (real or complex).
    B : (..., N) array
    dt : (...) array or scalar
    method, alpha, check_finite
        As in :func:`discretize`.

    Returns
    -------
    Ad : (..., N) array
    Bd : (..., N) array

    Raises
    ------
    LinAlgError
        GBT with ``1 − α·dt·a_n = 0`` (checked on the CPU).

    Notes
    -----
    ZOH: ``Ā_n = e^{Δa_n}``, ``B̄_n = Δ·φ(Δa_n)·B_n`` with ``φ(z) = (eᶻ − 1)/z`` (φ(0) = 1, so
    a zero mode integrates the input), evaluated without cancellation. GBT(α):
    ``Ā_n = (1 + (1−α)Δa_n)/(1 − αΔa_n)``, ``B̄_n = ΔB_n/(1 − αΔa_n)``. O(N).

    Examples
    --------
    >>> import numpy as np
    >>> from structla import discretize, discretize_diag, s4d_init
    >>> a = s4d_init("lin", 8); B = np.ones(4)
    >>> Ad, Bd = discretize_diag(a, B, 0.01)
    >>> Ad_dense, Bd_dense = discretize(np.diag(a), B, 0.01)
    >>> np.allclose(np.diag(Ad_dense), Ad), np.allclose(Bd_dense, Bd)
    (True, True)
    """
    alpha = _method_alpha(method, alpha)
    xp, flat, batch, dtype = _prepare("(n),(n),()", check_finite, a=a, B=B, dt=dt)
    a_f, B_f = flat["a"], flat["B"]
    if method != "zoh" and not is_cupy_namespace(xp) and a_f.size:
        if bool((1 - alpha * flat["dt"][:, None] * a_f == 0).any()):
            raise LinAlgError(f"1 − α·dt·a vanishes for a mode (method {method!r}, alpha={alpha})")
    fn = implementation("hippo", "discretize_diag", xp)
    Ad, Bd = fn(a_f, B_f, flat["dt"], method="zoh" if method == "zoh" else "gbt", alpha=alpha)
    return batch.unflatten(Ad).astype(dtype), batch.unflatten(Bd).astype(dtype)


# ----------------------------------------------------------------------------- kernels


def ssm_kernel(A: Any, B: Any, C: Any, dt: Any, length: int, *, method: str = "bilinear",
               alpha: float | None = None, check_finite: bool | None = None) -> Any:
    """Convolution kernel of a dense SSM by matrix powers (the reference; MATH E3).

    Parameters
    ----------
    A : (..., N, N) array
    B, C : (..., N) array
    dt : (...) array or scalar
    length : int
        L, the number of kernel taps.
    method, alpha, check_finite
        Discretisation, as in :func:`discretize` (bilinear by default, as S4).

    Returns
    -------
    K : (..., L) array
        ``K_k = C @ Ā^k @ B̄``; real when all inputs are real.

    Notes
    -----
    L matrix–vector products: O(N² L) after the O(N³) discretisation. Use
    :func:`ssm_kernel_dplr` or :func:`ssm_kernel_diag` for structured A.

    Examples
    --------
    >>> import numpy as np
    >>> from structla import discretize, hippo, ssm_kernel
    >>> A, B = hippo("legs", 4); C = np.ones(4)
    >>> Ad, Bd = discretize(A, B, 0.1, method="bilinear")
    >>> powers = [C @ np.linalg.matrix_power(Ad, k) @ Bd for k in range(5)]
    >>> np.allclose(ssm_kernel(A, B, C, 0.1, 5), powers)
    True
    """
    length = _size(length, "length")
    alpha = _method_alpha(method, alpha)
    xp, flat, batch, dtype = _prepare("(n,n),(n),(n),()", check_finite, A=A, B=B, C=C, dt=dt)
    fn = implementation("hippo", "ssm_kernel", xp)
    K = fn(flat["A"], flat["B"],
           flat["C"], flat["dt"], length,
           method="zoh" if method == "zoh" else "gbt", alpha=alpha)
    return batch.unflatten(K).astype(dtype, copy=False)


def ssm_kernel_diag(a: Any, B: Any, C: Any, dt: Any, length: int, *, method: str = "zoh",
                    alpha: float | None = None, conj_pairs: bool = True,
                    check_finite: bool | None = None) -> Any:
    """S4D kernel of a diagonal SSM through a Vandermonde sum (MATH B3).

    Parameters
    ----------
    a : (..., N) array
        Diagonal state matrix (e.g. :func:`s4d_init`).
    B, C : (..., N) array
    dt : (...) array or scalar
        Real step, one per channel.
    length : int
    method, alpha
        Discretisation, as in :func:`discretize_diag` (ZOH by default, as S4D).
    conj_pairs : bool
        The modes are one of each conjugate pair; the kernel is ``2·Re(Σ …)`` (real).
    check_finite : bool, optional

    Returns
    -------
    K : (..., L) array
        Real with conj_pairs (or real inputs), else complex.

    Notes
    -----
    ``K_l = Σ_n C_n B̄_n Ā_nˡ`` evaluated by :func:`structla.vandermonde`; for ZOH
    ``Ā_nˡ = exp(l·Δa_n)`` exactly (``log=True``), never by repeated products. O(N L).

    Examples
    --------
    >>> import numpy as np
    >>> from structla import s4d_init, ssm_kernel, ssm_kernel_diag
    >>> a = s4d_init("lin", 8); B = np.ones(4); C = np.arange(1.0, 5.0) + 1j
    >>> K = ssm_kernel_diag(a, B, C, 0.05, 16)
    >>> full = lambda x: np.concatenate([x, x.conj()])
    >>> np.allclose(K, ssm_kernel(np.diag(full(a)), full(B), full(C), 0.05, 16, method="zoh"))
    True
    """
    length = _size(length, "length")
    alpha = _method_alpha(method, alpha)
    xp, flat, batch, dtype = _prepare("(n),(n),(n),()", check_finite, complex_compute=True,
                                            a=a, B=B, C=C, dt=dt)
    fn = implementation("hippo", "ssm_kernel_diag", xp)
    K = fn(flat["a"], flat["B"],
           flat["C"], flat["dt"], length,
           method="zoh" if method == "zoh" else "gbt", alpha=alpha, conj_pairs=bool(conj_pairs))
    out = _real(dtype) if conj_pairs or dtype.kind == "f" else dtype
    K = K.real if out.kind == "f" and K.dtype.kind == "c" else K
    return batch.unflatten(K).astype(out, copy=False)


def ssm_kernel_dplr(Lambda: Any, P: Any, B: Any, C: Any, dt: Any, length: int, *,
                    conj_pairs: bool = True, c_tilde: bool = False,
                    check_finite: bool | None = None) -> Any:
    """S4 kernel of a diagonal-plus-low-rank SSM: Cauchy sums, Woodbury, inverse FFT (MATH B2).

    Parameters
    ----------
    Lambda : (..., N) array
        Diagonal part Λ (e.g. :func:`nplr`'s ``Lambda``).
    P : (..., r, N) array
        Low-rank factor: ``A = diag(Λ) − Pᵀ P̄`` (rank r ≥ 0).
    B, C : (..., N) array
        Input and output vectors in the same (diagonal) basis; C enters without conjugation.
    dt : (...) array or scalar
        Real step, one per channel; bilinear discretisation (as S4).
    length : int
    conj_pairs : bool
        The modes are one of each conjugate pair; the kernel (real) is that of the whole system.
    c_tilde : bool
        False (default): the exact kernel ``C Ā^k B̄`` of (A, B, C), equal to :func:`ssm_kernel`
        on the dense matrix. True: ``C`` is S4's trained ``C̃ = C(I − Āᴸ)`` and enters as is.
    check_finite : bool, optional

    Returns
    -------
    K : (..., L) array
        Real with conj_pairs (or real inputs), else complex.

    Notes
    -----
    At ``ω_l = e^{−2πil/L}``, ``K̂(ω) = 2/(1+ω)·[k₀₀ − k₀₁(I + k₁₁)⁻¹k₁₀]`` with the
    Cauchy sums ``k_{uv} = Σ_i u_i v_i/(g(ω) − λ_i)`` (u ∈ {C̃, P̄}, v ∈ {B, P}) at
    ``g(ω) = (2/Δ)(1−ω)/(1+ω) = (2i/Δ)·tan(πl/L)``; ``2/(1+ω) = 1 + i·tan(πl/L)``.
    The Nyquist node ω = −1 (g = ∞, even L) takes its finite limit ``(Δ/2)·C̃ᵀB``.
    ``K̄ = IFFT_L(K̂)`` (``irfft`` over L/2 + 1 nodes when the kernel is real). For rank
    r ≤ 2 one fused kernel (Numba on the CPU, CUDA on the GPU) evaluates all ``(r+1)²``
    sums, the Woodbury correction and the factor per node in one pass over the poles; with
    conj_pairs a pair ``(λ, λ̄)`` costs one reciprocal, ``1/((g − λ)(g − λ̄))``. Higher ranks
    go through :func:`structla.cauchy` and batched solves. Cost O((r+1)² N L) for the sums
    plus O(L log L); the correction ``C̃ = C − C Āᴸ`` of ``c_tilde=False`` costs O(r N L)
    more (an L-step structured recurrence on the CPU, dense squaring on the GPU).

    Examples
    --------
    >>> import numpy as np
    >>> from structla import hippo, nplr, ssm_kernel, ssm_kernel_dplr
    >>> A, B = hippo("legs", 8)
    >>> Lambda, P, Bt, V = nplr("legs", 8, conj_pairs=True)
    >>> C = np.random.default_rng(0).standard_normal(8)
    >>> K = ssm_kernel_dplr(Lambda, P, Bt, C @ V, 0.1, 64)
    >>> np.allclose(K, ssm_kernel(A, B, C, 0.1, 64))
    True
    """
    length = _size(length, "length")
    xp, flat, batch, dtype = _prepare("(n),(r,n),(n),(n),()", check_finite,
                                            complex_compute=True,
                                            Lambda=Lambda, P=P, B=B, C=C, dt=dt)
    args = [flat[k] for k in ("Lambda", "P", "B", "C")]
    real = bool(conj_pairs) or dtype.kind == "f"
    fn = implementation("hippo", "ssm_kernel_dplr", xp)
    K = fn(*args, flat["dt"], length, conj_pairs=bool(conj_pairs), c_tilde=bool(c_tilde), real=real)
    return _finish(batch, K, _real(dtype) if real else dtype)


def rft_kernel(a: Any, b: Any, length: int, *, check_finite: bool | None = None) -> Any:
    """Kernel of the rational transfer function ``b(z)/a(z)`` by one FFT division (MATH G).

    Parameters
    ----------
    a : (..., d) array
        Denominator ``1 + a₁z + … + a_d z^d``.
    b : (..., d) array
        Numerator ``b₁ + b₂z + … + b_d z^{d−1}``.
    length : int
        L > d.
    check_finite : bool, optional

    Returns
    -------
    K : (..., L) array
        The kernel ``C̄ᵀĀᵏB̄`` (k < L) of the companion realisation
        ``Ā = [[−a₁ … −a_d], [I, 0]]``, ``B̄ = e₁``, ``C̄ᵀ = bᵀ(I − Āᴸ)⁻¹``.

    Raises
    ------
    ValueError
        ``length <= d``.
    LinAlgError
        The denominator vanishes at an L-th root of unity (checked on the CPU).

    Notes
    -----
    ``ā = (1, a₁..a_d, 0…)``, ``b̄ = (b₁..b_d, 0…)`` of length L, ``K̄ = IFFT(FFT(b̄)/FFT(ā))``:
    the truncated generating function at the roots of unity is the rational function
    itself. O(L log L), independent of d. With ``a = 0`` the kernel is ``b`` (an FIR filter).

    Examples
    --------
    >>> import numpy as np
    >>> from structla import rft_kernel
    >>> K = rft_kernel(np.array([-0.5]), np.array([2.0]), 8)
    >>> np.allclose(K, 2 * 0.5 ** np.arange(8) / (1 - 0.5 ** 8))
    True
    >>> np.allclose(rft_kernel(np.zeros(3), np.array([1.0, 2, 3]), 6), [1, 2, 3, 0, 0, 0])
    True
    """
    length = _size(length, "length")
    xp, flat, batch, dtype = _prepare("(d),(d)", check_finite, a=a, b=b)
    d = batch.sizes["d"]
    if length <= d:
        raise ValueError(f"argument 'length' must exceed the order d = {d} of 'a'; got {length}")
    fn = implementation("hippo", "rft_kernel", xp)
    K = fn(flat["a"], flat["b"], length,
           check=not is_cupy_namespace(xp))
    return batch.unflatten(K).astype(dtype, copy=False)


def fftconv(K: Any, x: Any, *, D: Any = None, check_finite: bool | None = None) -> Any:
    """Causal convolution ``y_t = Σ_{j≤t} K_j x_{t−j} + D x_t`` by zero-padded FFT (MATH E3).

    Parameters
    ----------
    K : (..., Lk) array
        Kernel (taps beyond the length of x are ignored).
    x : (..., L) array
        Input sequence (time last), batch broadcast with K's.
    D : (...) array or scalar, optional
        Skip connection, one per batch entry.
    check_finite : bool, optional

    Returns
    -------
    y : (..., L) array

    Notes
    -----
    ``y = IFFT(FFT(K, n)·FFT(x, n))[:L]`` with ``n ≥ L + min(L, Lk) − 1`` (5-smooth), so that
    nothing wraps around: equal to ``np.convolve(K, x)[:L]``. O(L log L).

    Examples
    --------
    >>> import numpy as np
    >>> from structla import fftconv
    >>> rng = np.random.default_rng(0)
    >>> K, x = rng.standard_normal(50), rng.standard_normal(50)
    >>> np.allclose(fftconv(K, x, D=0.5), np.convolve(K, x)[:50] + 0.5 * x)
    True
    """
    xp, flat, batch, dtype = _prepare("(k),(l),()", check_finite, K=K, x=x, D=D)
    fn = implementation("hippo", "fftconv", xp)
    y = fn(flat["K"], flat["x"], flat["D"])
    return batch.unflatten(y).astype(dtype, copy=False)

"""HiPPO operators, discretisation and SSM kernels written against ``xp`` (NumPy or CuPy).

The oracle for the fast paths and the fallback everywhere else. Array routines get
their inputs from ``_api`` already validated, cast to the compute dtype and
flattened to one batch axis: vectors ``(count, N)``, matrices ``(count, N, N)``, the
low-rank factor ``(count, r, N)`` and the step ``dt`` ``(count,)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core.errors import LinAlgError
from .._core.namespace import array_namespace, is_cupy_namespace

__all__ = [
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

# ----------------------------------------------------------------------------- HiPPO (C1–C4)


def hippo(measure: str, N: int, *, scaling: str, window: float, beta: float):
    """``(A, B)`` in float64 NumPy for the validated measure and keywords (MATH C1–C4)."""
    n = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * n + 1)
    if measure == "legs":
        A = np.diag(n) - np.tril(np.outer(r, r))
        B = r * (math.sqrt(2.0) if scaling == "su" else 1.0)
    elif measure == "legt":
        parity = np.where(n[:, None] >= n[None, :], 1.0, (-1.0) ** (n[:, None] - n[None, :]))
        A = -np.outer(r, r) * parity / window
        B = r * (math.sqrt(2.0) if scaling == "su" else 1.0) / window
    elif measure == "lagt":
        A = -np.tril(np.ones((N, N)))
        if scaling == "hippo":
            A += 0.5 * np.eye(N)
        B = np.full(N, float(beta))
    else:  # fout
        A, B = _fout(N)
    return A, B


def _fout(N: int):
    """States [1, c₁, s₁, c₂, s₂, …]: ``A = Ω − BBᵀ`` with the rotations ``Ω`` of MATH C4."""
    B = np.zeros(N)
    B[1::2] = math.sqrt(2.0)
    B[:1] = 1.0
    omega = np.zeros((N, N))
    cos_rows = np.arange(1, N - 1, 2)
    frequency = np.pi * (cos_rows + 1)  # 2πk for the k-th cosine at row 2k − 1
    omega[cos_rows, cos_rows + 1] = frequency
    omega[cos_rows + 1, cos_rows] = -frequency
    return omega - np.outer(B, B), B


def _low_rank(measure: str, N: int, *, window: float) -> np.ndarray:
    """``P`` (rank, N) with ``A + PᵀP = c·I + skew-symmetric`` (MATH C1–C4)."""
    n = np.arange(N, dtype=np.float64)
    r = np.sqrt(2 * n + 1)
    if measure == "legs":
        return (r / math.sqrt(2.0))[None, :]
    if measure == "legt":
        scaled = r / math.sqrt(window)
        odd = (n % 2 == 1).astype(np.float64)
        return np.stack([scaled * odd, scaled * (1 - odd)])
    if measure == "lagt":
        return np.full((1, N), math.sqrt(0.5))
    return _fout(N)[1][None, :]


def _skew_eigh(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ω`` ascending and unitary ``V`` with ``−iS V = V diag(ω)`` for real skew-symmetric S.

    Equivalent to ``eigh(−1j * S)`` (the Hermitian route, stable), but about twice as fast:
    an orthogonal Hessenberg reduction ``S = QTQᵀ`` makes T skew tridiagonal with subdiagonal
    e; with ``D = diag(iᵏ)``, ``D*(−iT)D`` is the real symmetric tridiagonal matrix with zero
    diagonal and off-diagonal −e, solved by ``eigh_tridiagonal``; then ``V = Q D W``.
    """
    import scipy.linalg

    N = S.shape[0]
    if N == 0:
        return np.zeros(0), np.zeros((0, 0), dtype=np.complex128)
    T, Q = scipy.linalg.hessenberg(S, calc_q=True)
    # T is skew up to rounding: average the two off-diagonals.
    e = (np.diag(T, -1) - np.diag(T, 1)) / 2
    omega, W = scipy.linalg.eigh_tridiagonal(np.zeros(N), -e)
    phases = np.array([1, 1j, -1, -1j])[np.arange(N) % 4]
    return omega, Q @ (phases[:, None] * W)


def nplr(measure: str, N: int, *, conj_pairs: bool, scaling: str, window: float, beta: float):
    """``(Lambda, P, B, V)`` in complex128 NumPy from ``eigh`` of the skew part (MATH C1)."""
    A, B = hippo(measure, N, scaling=scaling, window=window, beta=beta)
    P = _low_rank(measure, N, window=window)
    normal = A + P.T @ P
    shift = float(np.mean(np.diag(normal))) if N else 0.0
    skew = normal - shift * np.eye(N)
    # The decomposition is only as good as the skew symmetry of the shifted matrix.
    if np.abs(skew + skew.T).max(initial=0.0) > 64 * np.finfo(np.float64).eps * max(
        1.0, np.abs(skew).max(initial=0.0)
    ):
        raise LinAlgError(f"A + PPᵀ of measure {measure!r} is not a shifted skew matrix")
    omega, V = _skew_eigh(skew)
    if conj_pairs:
        half = N // 2
        if N % 2 or (N and omega[half] <= 0):
            raise LinAlgError(
                f"conj_pairs=True needs the frequencies to pair up as ±ω ≠ 0; measure {measure!r} "
                f"with N={N} has a zero frequency"
            )
        omega, V = omega[half:], V[:, half:]
    Lambda = shift + 1j * omega
    P_tilde = P @ V.conj()
    B_tilde = V.conj().T @ B
    return Lambda, P_tilde, B_tilde, V


def s4d_init(kind: str, N: int) -> np.ndarray:
    """The S4D diagonal initialisations of MATH B3 in float64/complex128 NumPy."""
    if kind == "real":
        return -(np.arange(N, dtype=np.float64) + 1)
    n = np.arange(N // 2, dtype=np.float64)
    if kind == "lin":
        return -0.5 + 1j * np.pi * n
    return -0.5 + 1j * (N / np.pi) * (N / (2 * n + 1) - 1)


def legs_matvec(v: Any) -> Any:
    """``(A v)_n = n v_n − r_n Σ_{k≤n} r_k v_k`` for the LegS ``A`` (MATH C1), O(N)."""
    xp = array_namespace(v=v)
    N = v.shape[-1]
    n = xp.arange(N, dtype=v.real.dtype)
    r = xp.sqrt(2 * n + 1)
    return n * v - r * xp.cumsum(r * v, axis=-1)


def legs_solve(v: Any, lam: Any) -> Any:
    """``z`` with ``(I − λA) z = v`` for the LegS ``A`` by the O(N) recurrence of MATH C1.

    ``v`` (count, N), ``lam`` (count,); the caller has checked ``1 + λ(n+1) ≠ 0``.
    """
    xp = array_namespace(v=v, lam=lam)
    N = v.shape[-1]
    z = xp.empty_like(v)
    previous = xp.zeros_like(v[:, 0]) if N else None
    for n in range(N):
        rn = math.sqrt(2 * n + 1)
        current = ((1 - lam * n) * previous + rn * v[:, n]) / (1 + lam * (n + 1))
        z[:, n] = (current - previous) / rn
        previous = current
    return z


# ----------------------------------------------------------------------------- discretisation (C5)


def _expm(M: Any, xp: Any) -> Any:
    """Matrix exponential of a stack ``(count, n, n)``."""
    if is_cupy_namespace(xp):
        from cupyx.scipy.linalg import expm

        # cupyx's expm takes one matrix at a time.
        return xp.stack([expm(m) for m in M]) if M.shape[0] else xp.empty_like(M)
    import scipy.linalg

    return scipy.linalg.expm(M) if M.shape[0] and M.shape[-1] else np.eye(M.shape[-1]) + M


def discretize(A: Any, B: Any, dt: Any, *, method: str, alpha: float) -> tuple[Any, Any]:
    """``(Ad, Bd)`` of ``x' = Ax + Bu`` with step ``dt``: ZOH or GBT(α) (MATH C5)."""
    xp = array_namespace(A=A, B=B, dt=dt)
    count, N = A.shape[0], A.shape[-1]
    step = dt[:, None, None]
    if method == "zoh":
        # Van Loan: expm(Δ[[A, B], [0, 0]]) = [[Ā, B̄], [0, 1]], valid for singular A too.
        block = xp.zeros((count, N + 1, N + 1), dtype=A.dtype)
        block[:, :N, :N] = step * A
        block[:, :N, N] = dt[:, None] * B
        E = _expm(block, xp)
        return E[:, :N, :N], E[:, :N, N]
    eye = xp.eye(N, dtype=A.dtype)
    implicit = eye - alpha * step * A
    explicit = eye + (1 - alpha) * step * A
    rhs = xp.concatenate([explicit, (dt[:, None] * B)[:, :, None]], axis=-1)
    try:
        solved = xp.linalg.solve(implicit, rhs) if count and N else rhs
    except np.linalg.LinAlgError:
        raise LinAlgError(f"I − α·dt·A is singular (method {method!r}, alpha={alpha})") from None
    return solved[:, :, :N], solved[:, :, N]


def _phi1(z: Any, xp: Any) -> Any:
    """``(eᶻ − 1)/z`` (1 at z = 0) without the cancellation of ``exp(z) − 1``."""
    if z.dtype.kind == "c":
        x, y = z.real, z.imag
        # e^{x+iy} − 1 = (expm1(x)·cos y − 2 sin²(y/2)) + i·e^x sin y
        half = xp.sin(y / 2)
        em1 = (xp.expm1(x) * xp.cos(y) - 2 * half * half) + 1j * (xp.exp(x) * xp.sin(y))
        em1 = em1.astype(z.dtype)
    else:
        em1 = xp.expm1(z)
    zero = z == 0
    return xp.where(zero, 1, em1 / xp.where(zero, 1, z))


def discretize_diag(a: Any, B: Any, dt: Any, *, method: str, alpha: float) -> tuple[Any, Any]:
    """Elementwise ZOH / GBT(α) of a diagonal system (MATH B3, C5); ``dt`` (count,)."""
    xp = array_namespace(a=a, B=B, dt=dt)
    z = dt[:, None] * a
    if method == "zoh":
        return xp.exp(z), dt[:, None] * _phi1(z, xp) * B
    implicit = 1 - alpha * z
    return (1 + (1 - alpha) * z) / implicit, dt[:, None] * B / implicit


# ----------------------------------------------------------------------------- SSM kernels (B, E3, G)


def ssm_kernel(A: Any, B: Any, C: Any, dt: Any, length: int, *, method: str, alpha: float) -> Any:
    """``K_k = C Ā^k B̄`` (k < length) by repeated matrix–vector products: O(N² L)."""
    xp = array_namespace(A=A, B=B, C=C, dt=dt)
    Ad, x = discretize(A, B, dt, method=method, alpha=alpha)
    K = xp.empty((A.shape[0], length), dtype=xp.result_type(Ad, C))
    for k in range(length):
        K[:, k] = xp.sum(C * x, axis=-1)
        x = xp.matmul(Ad, x[:, :, None])[:, :, 0]
    return K


def ssm_kernel_diag(a: Any, B: Any, C: Any, dt: Any, length: int, *, method: str, alpha: float,
                    conj_pairs: bool) -> Any:
    """``K_l = Σ_n C_n B̄_n Ā_nˡ`` (2·Re of it with conj_pairs) through ``vandermonde`` (MATH B3)."""
    from ..cauchy._api import vandermonde

    Ad, Bd = discretize_diag(a, B, dt, method=method, alpha=alpha)
    if method == "zoh":
        # Āˡ = exp(l·Δa) exactly: no repeated products, no log of Ā.
        return vandermonde(C * Bd, dt[:, None] * a, length, log=True, conj_pairs=conj_pairs,
                           check_finite=False)
    return vandermonde(C * Bd, Ad, length, conj_pairs=conj_pairs, check_finite=False)


def full_system(Lambda: Any, P: Any, B: Any, C: Any, *, conj_pairs: bool) -> tuple[Any, ...]:
    """The DPLR parameters of the whole system: with conj_pairs append the conjugate modes."""
    xp = array_namespace(Lambda=Lambda, P=P, B=B, C=C)
    if not conj_pairs:
        return Lambda, P, B, C
    return tuple(xp.concatenate([x, x.conj()], axis=-1) for x in (Lambda, P, B, C))


def bilinear_dplr_dense(Lambda: Any, P: Any, dt: Any) -> Any:
    """Dense ``Ā = (I − Δ/2·D)⁻¹(I + Δ/2·D)`` of ``D = diag(Λ) − PᵀP̄`` (count, N, N)."""
    xp = array_namespace(Lambda=Lambda, P=P, dt=dt)
    N = Lambda.shape[-1]
    D = -xp.matmul(xp.swapaxes(P, -1, -2), P.conj())
    D[:, xp.arange(N), xp.arange(N)] += Lambda
    half = (dt / 2)[:, None, None]
    eye = xp.eye(N, dtype=D.dtype)
    if not (Lambda.shape[0] and N):
        return xp.broadcast_to(eye, D.shape).copy()
    return xp.linalg.solve(eye - half * D, eye + half * D)


def _matrix_power(M: Any, power: int, xp: Any) -> Any:
    result = xp.broadcast_to(xp.eye(M.shape[-1], dtype=M.dtype), M.shape).copy()
    while power:
        if power & 1:
            result = xp.matmul(result, M)
        power >>= 1
        if power:
            M = xp.matmul(M, M)
    return result


def c_tilde_correction(Lambda: Any, P: Any, C: Any, dt: Any, length: int, *,
                       conj_pairs: bool) -> Any:
    """``C Āᴸ`` of the whole DPLR system, by dense squaring; the stored modes only (count, N)."""
    xp = array_namespace(Lambda=Lambda, P=P, C=C, dt=dt)
    Lf, Pf, _, Cf = full_system(Lambda, P, C, C, conj_pairs=conj_pairs)
    power = _matrix_power(bilinear_dplr_dense(Lf, Pf, dt), length, xp)
    return xp.matmul(Cf[:, None, :], power)[:, 0, : Lambda.shape[-1]]


def node_tangents(length: int, nodes: int) -> np.ndarray:
    """``τ_l = tan(πl/L)`` for ``l < nodes`` in float64, to a few ulps for every l.

    ``tan(πl/L)`` itself loses ``~L·eps`` near ``l = L/2`` (the rounding of ``πl/L`` is
    amplified by the pole of tan); there ``cot(π(L − 2l)/(2L))`` is used, whose argument is
    small and exact up to one rounding. The Nyquist entry (``2l = L``) is 0 (unused).
    """
    l = np.arange(nodes, dtype=np.float64)
    middle = (4 * l > length) & (4 * l < 3 * length)
    low = np.pi * np.where(4 * l >= 3 * length, l - length, l) / length
    high = np.pi * (length - 2 * l) / (2 * length)
    with np.errstate(divide="ignore"):
        tau = np.where(middle, 1 / np.tan(np.where(high == 0, 1.0, high)), np.tan(low))
    return np.where(2 * l == length, 0.0, tau)


def ssm_kernel_dplr(Lambda: Any, P: Any, B: Any, C: Any, dt: Any, length: int, *,
                    conj_pairs: bool, c_tilde: bool, real: bool) -> Any:
    """S4 kernel of ``A = diag(Λ) − PᵀP̄`` (bilinear): Cauchy sums + Woodbury + inverse FFT (B2)."""
    if not c_tilde:
        C = C - c_tilde_correction(Lambda, P, C, dt, length, conj_pairs=conj_pairs)
    return generating_kernel(Lambda, P, B, C, dt, length, conj_pairs=conj_pairs, real=real)


def generating_kernel(Lambda: Any, P: Any, B: Any, Ct: Any, dt: Any, length: int, *,
                      conj_pairs: bool, real: bool) -> Any:
    """``K̄ = IFFT(K̂)`` with ``K̂(ω) = 2/(1+ω)·C̃ᵀ(g(ω)I − D)⁻¹B`` at ``ω_l = e^{−2πil/L}`` (B2).

    ``Ct`` is C̃ = C̄(I − Āᴸ). ``real``: the kernel is real, so only the nodes of an
    rfft are evaluated. The Nyquist node ω = −1 (g = ∞) takes its limit ``(Δ/2)·C̃ᵀB``.
    """
    from ..cauchy._api import cauchy

    xp = array_namespace(Lambda=Lambda, P=P, B=B, Ct=Ct, dt=dt)
    count, rank, L = Lambda.shape[0], P.shape[-2], length
    real_dtype = Lambda.real.dtype
    nodes = L // 2 + 1 if real else L
    if L == 0:
        return xp.zeros((count, 0), dtype=real_dtype if real else Lambda.dtype)
    nyquist = L % 2 == 0
    regular = np.arange(nodes)
    if nyquist:
        regular = regular[regular != L // 2]
    # ω = e^{−iθ}, θ = 2πl/L: g(ω) = (2/Δ)(1−ω)/(1+ω) = (2/Δ)·i·tan(θ/2) and 2/(1+ω) = e^{iθ/2}/cos(θ/2).
    half_angle = xp.asarray(np.pi * regular / L, dtype=real_dtype)
    tangent = xp.tan(half_angle)
    g = (1j * (2 / dt)[:, None] * tangent[None, :]).astype(Lambda.dtype)
    prefactor = (xp.exp(1j * half_angle) / xp.cos(half_angle)).astype(Lambda.dtype)

    # Numerators of the (r+1)² Cauchy sums: rows (C̃, P̄_0..), columns (B, P_0..) (Woodbury).
    left = xp.concatenate([Ct[:, None, :], P.conj()], axis=1)
    right = xp.concatenate([B[:, None, :], P], axis=1)
    sums = (rank + 1) ** 2
    numerators = (left[:, :, None, :] * right[:, None, :, :]).reshape(count, sums, -1)
    # Contiguous copies of the shared poles and nodes: cheaper than letting the Cauchy sum
    # walk stride-0 broadcast views (measured 40 ms against 60 ms at H=64, N=32, L=4096).
    poles = xp.ascontiguousarray(xp.broadcast_to(Lambda[:, None, :], numerators.shape))
    nodes_g = xp.ascontiguousarray(xp.broadcast_to(g[:, None, :], (count, sums, g.shape[-1])))
    k = cauchy(numerators, poles, nodes_g, conj_pairs=conj_pairs, check_finite=False)
    k = k.reshape(count, rank + 1, rank + 1, -1)
    k00, k01, k10, k11 = k[:, 0, 0], k[:, 0, 1:], k[:, 1:, 0], k[:, 1:, 1:]
    if rank == 1:
        resolvent = k00 - k01[:, 0] * k10[:, 0] / (1 + k11[:, 0, 0])
    elif rank == 0:
        resolvent = k00
    else:
        system = xp.moveaxis(k11, -1, 1) + xp.eye(rank, dtype=k.dtype)
        solved = xp.linalg.solve(system, xp.moveaxis(k10, -1, 1)[..., None])[..., 0]
        resolvent = k00 - xp.sum(xp.moveaxis(k01, -1, 1) * solved, axis=-1)
    values = prefactor * resolvent
    if nyquist:
        limit = xp.sum(Ct * B, axis=-1)
        limit = 2 * limit.real if conj_pairs else limit
        middle = L // 2
        spectrum = xp.empty((count, nodes), dtype=Lambda.dtype)
        spectrum[:, :middle] = values[:, :middle]
        spectrum[:, middle] = dt / 2 * limit
        spectrum[:, middle + 1 :] = values[:, middle:]
    else:
        spectrum = values
    if real:
        return xp.fft.irfft(spectrum, n=L, axis=-1).astype(real_dtype, copy=False)
    return xp.fft.ifft(spectrum, n=L, axis=-1).astype(Lambda.dtype, copy=False)


def rft_kernel(a: Any, b: Any, length: int, *, check: bool) -> Any:
    """``K̄ = IFFT(FFT(b̄)/FFT(ā))``, ``ā = (1, a, 0…)``, ``b̄ = (b, 0…)`` of length L (MATH G)."""
    xp = array_namespace(a=a, b=b)
    count, d = a.shape
    dtype = xp.result_type(a, b)
    den = xp.zeros((count, length), dtype=dtype)
    den[:, 0] = 1
    den[:, 1 : d + 1] = a
    num = xp.zeros((count, length), dtype=dtype)
    num[:, :d] = b
    if dtype.kind == "c":
        forward, backward = xp.fft.fft, xp.fft.ifft
    else:
        forward, backward = xp.fft.rfft, xp.fft.irfft
    den_hat = forward(den, axis=-1)
    if check and bool((den_hat == 0).any()):
        raise LinAlgError("the denominator 1 + a₁z + … + a_d z^d vanishes at a root of unity "
                          "(a pole on the unit circle): the kernel is undefined")
    return backward(forward(num, axis=-1) / den_hat, n=length, axis=-1).astype(dtype)


def fft_length(n: int) -> int:
    """The smallest 2ᵃ3ᵇ5ᶜ ≥ n (fast for every FFT library)."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def fftconv(K: Any, x: Any, D: Any) -> Any:
    """``y_t = Σ_{j≤t} K_j x_{t−j} (+ D x_t)``, zero-padded FFT (MATH E3); ``D`` may be None."""
    xp = array_namespace(K=K, x=x, D=D)
    L, Lk = x.shape[-1], K.shape[-1]
    dtype = xp.result_type(K, x) if D is None else xp.result_type(K, x, D)
    if L == 0 or Lk == 0:
        y = xp.zeros((*x.shape[:-1], L), dtype=dtype)
    else:
        # Taps beyond L never reach the output; dropping them keeps n ≥ the linear length.
        K = K[..., :L]
        n = fft_length(L + K.shape[-1] - 1)
        if dtype.kind == "c":
            y = xp.fft.ifft(xp.fft.fft(K, n, axis=-1) * xp.fft.fft(x, n, axis=-1), axis=-1)
        else:
            y = xp.fft.irfft(xp.fft.rfft(K, n, axis=-1) * xp.fft.rfft(x, n, axis=-1), n, axis=-1)
        y = y[..., :L].astype(dtype)
    if D is not None:
        y = y + D[..., None] * x
    return y.astype(dtype)

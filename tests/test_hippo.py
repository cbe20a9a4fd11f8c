"""hippo family: HiPPO operators, NPLR, discretisation and SSM kernels against dense oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from oracles import (
    as_host,
    gbt_dense,
    kernel_by_powers,
    loop_batch,
    max_relative_error,
    ssm_recurrence,
    van_loan_zoh,
)
from strategies import batch_shapes, eps, random_array, seeds

from structla import (
    LinAlgError,
    discretize,
    discretize_diag,
    fftconv,
    hippo,
    legs_matvec,
    legs_solve,
    nplr,
    rft_kernel,
    s4d_init,
    ssm_kernel,
    ssm_kernel_diag,
    ssm_kernel_dplr,
)
from structla.hippo import _numba, _reference

MEASURES = ("legs", "legt", "lagt", "fout")
GBT = {"bilinear": 0.5, "forward_euler": 0.0, "backward_euler": 1.0}


def dplr_dense(Lambda, P, B, C, *, conj_pairs):
    """The whole DPLR system as a dense ``(A, B, C)`` in the diagonal basis (one system)."""
    if conj_pairs:
        Lambda, P, B, C = (np.concatenate([x, x.conj()], axis=-1) for x in (Lambda, P, B, C))
    return np.diag(Lambda) - P.T @ P.conj(), B, C


def random_dplr(rng, N, rank, *, dtype="complex128"):
    """A stable DPLR system: Re Λ ∈ [−1, −0.1], moderate low-rank part."""
    Lambda = -rng.uniform(0.1, 1.0, N) + 1j * rng.uniform(-20, 20, N)
    P = 0.5 * random_array(rng, (rank, N), "complex128")
    B = random_array(rng, N, "complex128")
    C = random_array(rng, N, "complex128")
    return tuple(x.astype(dtype) for x in (Lambda, P, B, C))


# ----------------------------------------------------------------------------- hippo matrices


def test_legs_4_matches_the_math_table():
    A, B = hippo("legs", 4)
    table = np.array([[-1, 0, 0, 0], [-1.7320508, -2, 0, 0], [-2.2360680, -3.8729833, -3, 0],
                      [-2.6457513, -4.5825757, -5.9160798, -4]])
    assert np.abs(A - table).max() <= 1e-7
    assert np.abs(B - [1, 1.7320508, 2.2360680, 2.6457513]).max() <= 1e-7
    assert A.dtype == np.float64
    A32, B32 = hippo("legs", 4, dtype=np.float32)
    assert A32.dtype == np.float32 and B32.dtype == np.float32


def test_legt_window_two_is_state_spaces_legt_and_lagt_variants():
    A1, B1 = hippo("legt", 5)
    A2, B2 = hippo("legt", 5, window=2.0)
    np.testing.assert_allclose(A2, A1 / 2)
    np.testing.assert_allclose(B2, B1 / 2)
    A, B = hippo("lagt", 4, beta=3.0)
    np.testing.assert_allclose(A, 0.5 * np.eye(4) - np.tril(np.ones((4, 4))))
    np.testing.assert_allclose(B, 3.0)
    np.testing.assert_allclose(hippo("lagt", 4, scaling="exp")[0], -np.tril(np.ones((4, 4))))


def _ode(A, B, u, t0, t1, c0, *, time_varying=False):
    def rhs(t, c):
        dc = A @ c + B * u(t)
        return dc / t if time_varying else dc

    sol = scipy.integrate.solve_ivp(rhs, (t0, t1), c0, method="DOP853", rtol=1e-12, atol=1e-13)
    assert sol.success
    return sol.y[:, -1]


def _legendre_projection(u, a, b, N, nodes=64):
    """``c_n = ∫_{−1}^{1} u(a + (s+1)(b−a)/2) √((2n+1)/2) P_n(s) ds`` (orthonormal Legendre)."""
    s, w = np.polynomial.legendre.leggauss(nodes)
    values = u(a + (s + 1) * (b - a) / 2)
    return np.array([np.sum(w * values * math.sqrt((2 * n + 1) / 2)
                            * scipy.special.eval_legendre(n, s)) for n in range(N)])


@pytest.mark.parametrize("scaling", ["su", "hippo"])
def test_legs_ode_equals_quadrature_projection(scaling):
    N = 8
    A, B = hippo("legs", N, scaling=scaling)

    def u(x):
        return np.sin(3 * x) + x**2

    factor = 1.0 if scaling == "su" else 1 / math.sqrt(2)
    c0 = factor * _legendre_projection(u, 0.0, 0.5, N)
    c1 = _ode(A, B, u, 0.5, 2.0, c0, time_varying=True)
    expected = factor * _legendre_projection(u, 0.0, 2.0, N)
    assert max_relative_error(c1, expected) <= 1e-9


def test_legt_ode_is_exact_for_polynomials():
    N, w = 6, 1.5
    A, B = hippo("legt", N, scaling="su", window=w)
    coefficients = np.array([0.3, -1.0, 0.5, 0.2, -0.1, 0.05])  # degree N − 1

    def u(x):
        return np.polynomial.polynomial.polyval(x, coefficients)

    c0 = _legendre_projection(u, 0.2 - w, 0.2, N)
    c1 = _ode(A, B, u, 0.2, 1.1, c0)
    assert max_relative_error(c1, _legendre_projection(u, 1.1 - w, 1.1, N)) <= 1e-9


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("scaling, decay", [("hippo", 0.5), ("exp", 1.0)])
def test_lagt_ode_equals_quadrature_projection(scaling, decay):
    N = 6
    A, B = hippo("lagt", N, scaling=scaling)

    def u(x):
        return np.cos(x) + 0.5 * np.sin(0.3 * x)

    def projection(t):
        return np.array([scipy.integrate.quad(
            lambda s, n=n: u(t - s) * scipy.special.eval_laguerre(n, s) * math.exp(-decay * s),
            0, np.inf, epsabs=1e-14, epsrel=1e-13, limit=400)[0] for n in range(N)])

    c1 = _ode(A, B, u, 0.0, 1.3, projection(0.0))
    assert max_relative_error(c1, projection(1.3)) <= 1e-8


def test_fout_ode_is_exact_for_trigonometric_polynomials():
    K = 3
    N = 2 * K + 1
    A, B = hippo("fout", N)

    def u(x):
        return 0.3 + np.cos(2 * np.pi * x) - 0.5 * np.sin(4 * np.pi * x) + 0.2 * np.cos(6 * np.pi * x)

    def projection(t):
        s, w = np.polynomial.legendre.leggauss(64)
        s, w = (s + 1) / 2, w / 2
        basis = [np.ones_like(s)]
        for k in range(1, K + 1):
            basis += [math.sqrt(2) * np.cos(2 * np.pi * k * s), math.sqrt(2) * np.sin(2 * np.pi * k * s)]
        return np.array([np.sum(w * u(t - 1 + s) * phi) for phi in basis])

    c1 = _ode(A, B, u, 0.0, 0.37, projection(0.0))
    assert max_relative_error(c1, projection(0.37)) <= 1e-9


def test_hippo_bad_arguments():
    with pytest.raises(ValueError, match="'measure'"):
        hippo("legendre", 4)
    with pytest.raises(ValueError, match="'scaling'"):
        hippo("fout", 4, scaling="su")
    with pytest.raises(TypeError, match="'window'"):
        hippo("legs", 4, window=2.0)
    with pytest.raises(ValueError, match="'window'"):
        hippo("legt", 4, window=0.0)
    with pytest.raises(ValueError, match="'N'"):
        hippo("legs", -1)
    with pytest.raises(TypeError, match="'dtype'"):
        hippo("legs", 4, dtype=np.complex128)
    assert hippo("legs", 0)[0].shape == (0, 0)


# ----------------------------------------------------------------------------- NPLR


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("N", [1, 2, 7, 64, 1024])
def test_nplr_reconstructs_a_with_unitary_v(measure, N):
    A, B = hippo(measure, N)
    Lambda, P, Bt, V = nplr(measure, N)
    assert Lambda.shape == (N,) and Bt.shape == (N,) and V.shape == (N, N)
    assert P.shape == ((2 if measure == "legt" else 1), N)
    rebuilt = V @ (np.diag(Lambda) - P.T @ P.conj()) @ V.conj().T
    assert np.linalg.norm(rebuilt - A) <= 1e-12 * np.linalg.norm(A)
    assert np.abs(V.conj().T @ V - np.eye(N)).max() <= 1e-12
    assert np.linalg.norm(V @ Bt - B) <= 1e-12 * max(np.linalg.norm(B), 1.0) * math.sqrt(N)


def test_nplr_legs_frequencies_of_the_math_table():
    omega8 = np.sort(nplr("legs", 8).Lambda.imag)
    expected = [0.4274887, 1.9577942, 5.3542085, 19.8574104]
    np.testing.assert_allclose(omega8, np.concatenate([-np.array(expected[::-1]), expected]),
                               atol=1e-7)
    np.testing.assert_allclose(nplr("legs", 4, conj_pairs=True).Lambda.imag, [0.5565011, 4.603293],
                               atol=1e-6)
    np.testing.assert_allclose(nplr("legs", 8).Lambda.real, -0.5, rtol=1e-14)


@pytest.mark.parametrize("measure", ["legs", "legt", "lagt"])
def test_nplr_conj_pairs_describes_the_whole_system(measure):
    N = 16
    A, B = hippo(measure, N)
    Lambda, P, Bt, V = nplr(measure, N, conj_pairs=True)
    assert Lambda.shape == (N // 2,) and V.shape == (N, N // 2)
    assert np.all(Lambda.imag > 0)
    Vf, Lf, Pf, _Bf = (np.concatenate([x, x.conj()], axis=-1) for x in (V, Lambda, P, Bt))
    rebuilt = Vf @ (np.diag(Lf) - Pf.T @ Pf.conj()) @ Vf.conj().T
    assert np.linalg.norm(rebuilt - A) <= 1e-12 * np.linalg.norm(A)
    np.testing.assert_allclose(2 * (V @ Bt).real, B, atol=1e-12)


def test_nplr_conj_pairs_refuses_zero_frequencies_and_eig_is_visibly_wrong():
    with pytest.raises(LinAlgError, match="zero frequency"):
        nplr("legs", 7, conj_pairs=True)
    with pytest.raises(LinAlgError, match="zero frequency"):
        nplr("fout", 8, conj_pairs=True)
    assert nplr("legs", 8, dtype=np.complex64).V.dtype == np.complex64
    # The naive route: diagonalising A itself loses everything at N = 64.
    A = hippo("legs", 64)[0]
    w, X = np.linalg.eig(A)
    assert np.linalg.norm(X @ np.diag(w) @ np.linalg.inv(X) - A) > 1e-6 * np.linalg.norm(A)


def test_s4d_init_values():
    np.testing.assert_allclose(s4d_init("inv", 16).imag[:4], [76.394, 22.070, 11.205, 6.548],
                               atol=1e-3)
    np.testing.assert_allclose(s4d_init("lin", 8), -0.5 + 1j * np.pi * np.arange(4))
    np.testing.assert_allclose(s4d_init("real", 5), -np.arange(1, 6))
    assert s4d_init("lin", 8, dtype=np.complex64).dtype == np.complex64
    with pytest.raises(ValueError, match="'kind'"):
        s4d_init("log", 8)
    with pytest.raises(TypeError, match="'dtype'"):
        s4d_init("lin", 8, dtype=np.float64)


# ----------------------------------------------------------------------------- LegS O(N) helpers


@given(shapes=batch_shapes(), N=st.sampled_from([0, 1, 2, 7, 65]), seed=seeds(),
       dtype=st.sampled_from(["float64", "complex128", "float32"]))
def test_legs_matvec_and_solve_match_dense(shapes, N, seed, dtype):
    rng = np.random.default_rng(seed)
    v = random_array(rng, (*shapes[0], N), dtype)
    lam = rng.uniform(0.01, 2.0, shapes[1]).astype(np.float32 if dtype == "float32" else np.float64)
    A = hippo("legs", N)[0]
    tol = 200 * eps(dtype) * max(N, 1)
    got = legs_matvec(v)
    assert got.dtype == v.dtype and got.shape == v.shape
    assert max_relative_error(got, v @ A.T) <= tol
    z = legs_solve(v, lam)
    expected = loop_batch(lambda vv, ll: np.linalg.solve(np.eye(N) - ll * A, vv) if N else vv,
                          as_host(v), lam, core_ndims=(1, 0))
    assert z.dtype == np.result_type(v.dtype, lam.dtype)
    if expected is not None:
        assert max_relative_error(z, expected) <= tol


def test_legs_solve_numba_matches_reference_and_singular_lambda():
    rng = np.random.default_rng(1)
    v = random_array(rng, (4, 33), "complex128")
    lam = np.array([0.1, 1.0 + 2j, -0.3, 5.0])
    np.testing.assert_allclose(_numba.legs_solve(v, lam), _reference.legs_solve(v, lam),
                               rtol=1e-13, atol=1e-13)
    with pytest.raises(LinAlgError, match="singular"):
        legs_solve(np.ones(8), -1 / 3)


# ----------------------------------------------------------------------------- discretisation


@given(shapes=batch_shapes(), N=st.sampled_from([0, 1, 2, 7]), seed=seeds(),
       method=st.sampled_from(["zoh", "bilinear", "forward_euler", "backward_euler", "gbt"]),
       dtype=st.sampled_from(["float64", "complex128"]))
def test_discretize_matches_van_loan_and_gbt(shapes, N, seed, method, dtype):
    rng = np.random.default_rng(seed)
    A = random_array(rng, (*shapes[0], N, N), dtype, scale=0.7)
    B = random_array(rng, (*shapes[0], N), dtype)
    dt = rng.uniform(0.01, 0.5, shapes[1])
    alpha = 0.3 if method == "gbt" else None
    Ad, Bd = discretize(A, B, dt, method=method, alpha=alpha)
    assert Ad.dtype == np.dtype(dtype) and Bd.dtype == np.dtype(dtype)

    def oracle(a, b, d):
        if method == "zoh":
            return np.concatenate([*van_loan_zoh(a, b, d)[:1], van_loan_zoh(a, b, d)[1][:, None]], 1)
        Ad_, Bd_ = gbt_dense(a, b, d, GBT.get(method, alpha))
        return np.concatenate([Ad_, Bd_[:, None]], 1)

    expected = loop_batch(oracle, A, B, dt, core_ndims=(2, 1, 0))
    if expected is not None:
        assert max_relative_error(Ad, expected[..., :N]) <= 1e-12
        assert max_relative_error(Bd, expected[..., N]) <= 1e-12


def test_zoh_of_singular_a_is_exact():
    A = np.array([[0.0, 1.0], [0.0, 0.0]])  # double integrator: A is nilpotent
    B = np.array([0.0, 1.0])
    Ad, Bd = discretize(A, B, 0.5)
    np.testing.assert_allclose(Ad, [[1, 0.5], [0, 1]], atol=1e-15)
    np.testing.assert_allclose(Bd, [0.125, 0.5], atol=1e-15)
    Ad, Bd = discretize_diag(np.array([0.0, -1.0]), np.ones(2), 0.5)
    np.testing.assert_allclose(Bd, [0.5, 1 - math.exp(-0.5)], rtol=1e-15)


@given(N=st.sampled_from([1, 4, 9]), seed=seeds(),
       method=st.sampled_from(["zoh", "bilinear", "forward_euler", "backward_euler"]),
       tiny=st.booleans())
def test_discretize_diag_matches_dense(N, seed, method, tiny):
    rng = np.random.default_rng(seed)
    a = -rng.uniform(0.1, 1, N) + 1j * rng.uniform(-5, 5, N)
    if tiny:
        a = a * 1e-9  # (e^z − 1)/z near z = 0 must not cancel
    B = random_array(rng, N, "complex128")
    dt = np.array([0.1, 0.7])
    Ad, Bd = discretize_diag(a, B, dt, method=method)
    for i, d in enumerate(dt):
        Ad_dense, Bd_dense = discretize(np.diag(a), B, d, method=method)
        assert max_relative_error(Ad[i], np.diag(Ad_dense)) <= 1e-13
        assert max_relative_error(Bd[i], Bd_dense) <= 1e-13


def test_discretize_errors():
    with pytest.raises(ValueError, match="'method'"):
        discretize(np.eye(2), np.ones(2), 0.1, method="rk4")
    with pytest.raises(ValueError, match="'alpha'"):
        discretize(np.eye(2), np.ones(2), 0.1, method="gbt")
    with pytest.raises(ValueError, match="'alpha'"):
        discretize(np.eye(2), np.ones(2), 0.1, method="zoh", alpha=0.5)
    with pytest.raises(LinAlgError):
        discretize(np.eye(2), np.ones(2), 1.0, method="backward_euler")
    with pytest.raises(LinAlgError):
        discretize_diag(np.ones(2), np.ones(2), 1.0, method="backward_euler")
    with pytest.raises(ValueError, match="'B'"):
        discretize(np.eye(3), np.ones(2), 0.1)
    with pytest.raises(ValueError, match="'A'"):
        discretize(np.full((2, 2), np.nan), np.ones(2), 0.1)
    with pytest.raises(TypeError, match="'dt'"):
        discretize(np.eye(2), np.ones(2), np.array(0.1 + 0j))


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("measure", ["legs", "legt", "lagt"])
@pytest.mark.parametrize("length", [1024, 1023])
@pytest.mark.parametrize("conj_pairs", [True, False])
def test_dplr_kernel_equals_powers_for_hippo(measure, length, conj_pairs):
    N = 64
    rng = np.random.default_rng(0)
    A, B = hippo(measure, N)
    C = rng.standard_normal(N)
    Lambda, P, Bt, V = nplr(measure, N, conj_pairs=conj_pairs)
    dt = 0.01
    K = ssm_kernel_dplr(Lambda, P, Bt, C @ V, dt, length, conj_pairs=conj_pairs)
    expected = kernel_by_powers(*gbt_dense(A, B, dt, 0.5), C, length)
    assert K.dtype == (np.float64 if conj_pairs else np.complex128)
    assert max_relative_error(K, expected) <= 1e-10
    np.testing.assert_allclose(ssm_kernel(A, B, C, dt, length), expected, rtol=0, atol=1e-12)


def test_dplr_kernel_in_complex64_has_float32_accuracy():
    N, L = 64, 1024
    rng = np.random.default_rng(2)
    A, B = hippo("legs", N)
    C = rng.standard_normal(N)
    Lambda, P, Bt, V = nplr("legs", N, conj_pairs=True, dtype=np.complex64)
    K = ssm_kernel_dplr(Lambda, P, Bt, (C @ V).astype(np.complex64), np.float32(0.01), L)
    assert K.dtype == np.float32
    expected = kernel_by_powers(*gbt_dense(A, B, 0.01, 0.5), C, L)
    assert max_relative_error(K, expected) <= 2000 * eps("float32")


@pytest.mark.parametrize("rank", [0, 1, 2, 3])
@pytest.mark.parametrize("length", [16, 15])
def test_dplr_kernel_random_rank_and_generating_function(rank, length):
    rng = np.random.default_rng(rank)
    Lambda, P, B, C = random_dplr(rng, 6, rank)
    dt = 0.2
    A_dense, _, _ = dplr_dense(Lambda, P, B, C, conj_pairs=False)
    Ad, Bd = gbt_dense(A_dense, B, dt, 0.5)
    K = ssm_kernel_dplr(Lambda, P, B, C, dt, length, conj_pairs=False)
    assert max_relative_error(K, kernel_by_powers(Ad, Bd, C, length)) <= 1e-12
    # K̂(ω_l) = C̃ᵀ (I − ω_l Ā)⁻¹ B̄ with C̃ᵀ = Cᵀ(I − Āᴸ): the spectrum of the kernel
    Ct = C @ (np.eye(6) - np.linalg.matrix_power(Ad, length))
    omega = np.exp(-2j * np.pi * np.arange(length) / length)
    spectrum = [Ct @ np.linalg.solve(np.eye(6) - w * Ad, Bd) for w in omega]
    np.testing.assert_allclose(np.fft.fft(K), spectrum, rtol=1e-10, atol=1e-12)
    # c_tilde=True takes C̃ as given
    K_tilde = ssm_kernel_dplr(Lambda, P, B, Ct, dt, length, conj_pairs=False, c_tilde=True)
    assert max_relative_error(K_tilde, K) <= 1e-12


def test_dplr_nyquist_node_takes_its_limit():
    rng = np.random.default_rng(5)
    Lambda, P, B, C = random_dplr(rng, 5, 1)
    L, dt = 8, 0.3
    K = ssm_kernel_dplr(Lambda, P, B, C, dt, L, conj_pairs=True, c_tilde=True)
    full_C, full_B = np.concatenate([C, C.conj()]), np.concatenate([B, B.conj()])
    np.testing.assert_allclose(np.fft.rfft(K)[L // 2], dt / 2 * full_C @ full_B, rtol=1e-13)


@given(shapes=batch_shapes(max_side=2), seed=seeds(), conj_pairs=st.booleans(),
       c_tilde=st.booleans(), N=st.sampled_from([0, 1, 3]), length=st.sampled_from([0, 1, 6, 9]))
def test_dplr_kernel_batched_fast_reference_and_loop_agree(shapes, seed, conj_pairs, c_tilde,
                                                           N, length):
    rng = np.random.default_rng(seed)
    Lambda, P, B, C = random_dplr(rng, N, 2)
    Lambda = Lambda * np.ones((*shapes[0], 1))
    C = C * (1 + rng.random((*shapes[1], 1)))
    dt = rng.uniform(0.05, 0.5, shapes[1])
    K = ssm_kernel_dplr(Lambda, P, B, C, dt, length, conj_pairs=conj_pairs, c_tilde=c_tilde)

    def one(lam, p, b, c, d):
        A, Bf, Cf = dplr_dense(lam, p, b, c, conj_pairs=conj_pairs)
        Ad, Bd = gbt_dense(A, Bf, d, 0.5)
        if c_tilde and length:
            Cf = Cf @ np.linalg.inv(np.eye(len(Cf)) - np.linalg.matrix_power(Ad, length))
        k = kernel_by_powers(Ad, Bd, Cf, length)
        return k.real if conj_pairs else k

    expected = loop_batch(one, Lambda, P, B, C, dt, core_ndims=(1, 2, 1, 1, 0))
    assert K.shape == (*np.broadcast_shapes(shapes[0], shapes[1]), length)
    if expected is not None and expected.size:
        assert max_relative_error(K, expected) <= 1e-11
    from structla._core.batch import broadcast_batch

    batch = broadcast_batch("(n),(r,n),(n),(n),()", Lambda=Lambda, P=P, B=B, C=C, dt=dt)
    flat = [batch.flatten(x, c) for x, c in zip((Lambda, P, B, C, dt), (1, 2, 1, 1, 0))]
    kw = dict(conj_pairs=conj_pairs, c_tilde=c_tilde, real=conj_pairs)
    fast = _numba.ssm_kernel_dplr(*flat, length, **kw)
    ref = _reference.ssm_kernel_dplr(*flat, length, **kw)
    if ref.size:
        assert max_relative_error(fast, ref) <= 1e-12


def random_dplr_channels(rng, H, N, rank, *, dtype="complex128"):
    """H independent random DPLR systems stacked on a channel axis, with steps ``dt`` (H,)
    log-uniform in [1e-3, 0.5] (so that ``|g| = (2/Δ)|tan(πl/L)|`` is below and above 1)."""
    parts = [random_dplr(rng, N, rank, dtype=dtype) for _ in range(H)]
    stacked = tuple(np.stack(x) for x in zip(*parts, strict=True))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(0.5), H)).astype(np.finfo(dtype).dtype)
    return (*stacked, dt)


@pytest.mark.parametrize("rank", [0, 1, 2])
@pytest.mark.parametrize("length", [1, 2, 15, 300])
@pytest.mark.parametrize(("conj_pairs", "real"), [(True, True), (False, False), (False, True)])
def test_fused_spectrum_equals_cauchy_reference(rank, length, conj_pairs, real):
    """The fused numba kernel (one pass over the poles per node, paired reciprocals, Woodbury
    in registers) against the reference built from four ``cauchy`` calls, both float64."""
    rng = np.random.default_rng(10 * rank + length)
    Lambda, P, B, C, dt = random_dplr_channels(rng, 5, 70, rank)
    if real and not conj_pairs:  # a real system: real parameters and poles
        Lambda, P, B, C = (x.real.astype(np.complex128) for x in (Lambda, P, B, C))
    kw = dict(conj_pairs=conj_pairs, real=real)
    fused = _numba.generating_kernel(Lambda, P, B, C, dt, length, **kw)
    reference = _reference.generating_kernel(Lambda, P, B, C, dt, length, **kw)
    assert fused.dtype == reference.dtype == (np.float64 if real else np.complex128)
    assert max_relative_error(fused, reference) <= 1e-12


@pytest.mark.parametrize("conj_pairs", [True, False])
def test_fused_spectrum_in_single_precision(conj_pairs):
    rng = np.random.default_rng(11)
    args64 = random_dplr_channels(rng, 4, 32, 1)
    args32 = tuple(x.astype(np.complex64 if x.dtype.kind == "c" else np.float32) for x in args64)
    kw = dict(conj_pairs=conj_pairs, real=conj_pairs)
    K32 = _numba.generating_kernel(*args32, 1024, **kw)
    assert K32.dtype == (np.float32 if conj_pairs else np.complex64)
    # the single-precision inputs, exactly, in float64: only the arithmetic differs
    expected = _reference.generating_kernel(*(x.astype(np.result_type(x, np.float64))
                                              for x in args32), 1024, **kw)
    assert max_relative_error(K32, expected) <= 64 * eps("float32")


def test_node_tangents_are_accurate_up_to_nyquist():
    # long double has 11 more bits on x86; elsewhere it is float64 and the test only checks
    # that the formula switch is consistent.
    for L in (7, 4096, 16384):
        nodes = L // 2 + 1 if L % 2 == 0 else L
        tau = _reference.node_tangents(L, nodes)
        l = np.arange(nodes, dtype=np.longdouble)
        exact = np.tan(np.longdouble("3.14159265358979323846264338327950288") * l / L)
        regular = 2 * np.arange(nodes) != L
        error = np.abs(tau[regular] - exact[regular]) / np.maximum(np.abs(exact[regular]), 1e-300)
        assert error.max() <= 4 * eps("float64") * (1 if np.finfo(np.longdouble).eps < 1e-17 else L)
        assert np.all(tau[~regular] == 0)


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
@pytest.mark.parametrize("conj_pairs", [True, False])
def test_diag_kernel_equals_powers(method, conj_pairs):
    N, L = 64, 1024
    rng = np.random.default_rng(3)
    a = s4d_init("lin", 2 * N) if conj_pairs else s4d_init("inv", 2 * N)
    B = np.ones(N)
    C = random_array(rng, N, "complex128")
    dt = np.array([0.01, 0.05])
    K = ssm_kernel_diag(a, B, C, dt, L, method=method, conj_pairs=conj_pairs)
    assert K.shape == (2, L) and K.dtype == (np.float64 if conj_pairs else np.complex128)
    full = (lambda x: np.concatenate([x, x.conj()])) if conj_pairs else (lambda x: x)
    for i, d in enumerate(dt):
        if method == "zoh":
            Ad, Bd = van_loan_zoh(np.diag(full(a)), full(B), d)
        else:
            Ad, Bd = gbt_dense(np.diag(full(a)), full(B), d, 0.5)
        expected = kernel_by_powers(Ad, Bd, full(C), L)
        assert max_relative_error(K[i], expected) <= 1e-10


def test_diag_kernel_real_modes_and_complex64():
    a = s4d_init("real", 16)
    B, C = np.ones(16), np.linspace(-1, 1, 16)
    K = ssm_kernel_diag(a, B, C, 0.1, 50, conj_pairs=False)
    assert K.dtype == np.float64
    expected = kernel_by_powers(*van_loan_zoh(np.diag(a), B, 0.1), C, 50)
    assert max_relative_error(K, expected) <= 1e-12
    a64 = s4d_init("lin", 32, dtype=np.complex64)
    K32 = ssm_kernel_diag(a64, np.ones(16, np.float32), np.ones(16, np.complex64), np.float32(0.05), 64)
    assert K32.dtype == np.float32
    K64 = ssm_kernel_diag(a64.astype(np.complex128), np.ones(16), np.ones(16), 0.05, 64)
    assert max_relative_error(K32, K64) <= 200 * eps("float32")


def test_recurrent_equals_convolutional():
    N, L = 16, 200
    rng = np.random.default_rng(4)
    u = rng.standard_normal(L)
    # S4: DPLR kernel vs the dense discretised HiPPO system stepped in time
    A, B = hippo("legs", N)
    C = rng.standard_normal(N)
    Lambda, P, Bt, V = nplr("legs", N, conj_pairs=True)
    K = ssm_kernel_dplr(Lambda, P, Bt, C @ V, 0.05, L)
    steps = ssm_recurrence(*gbt_dense(A, B, 0.05, 0.5), C, u)
    assert max_relative_error(fftconv(K, u, D=0.3), steps + 0.3 * u) <= 1e-11
    # S4D: diagonal kernel vs the diagonal recurrence
    a, Bd_in, Cd = s4d_init("inv", N), np.ones(N // 2), random_array(rng, N // 2, "complex128")
    Ad, Bd = discretize_diag(a, Bd_in, 0.02)
    steps = 2 * ssm_recurrence(np.diag(Ad), Bd, Cd, u).real
    Kd = ssm_kernel_diag(a, Bd_in, Cd, 0.02, L)
    assert max_relative_error(fftconv(Kd, u), steps) <= 1e-11


def test_kernel_argument_errors_and_inputs_unchanged():
    rng = np.random.default_rng(6)
    Lambda, P, B, C = random_dplr(rng, 4, 1)
    with pytest.raises(ValueError, match="'P'"):
        ssm_kernel_dplr(Lambda, P[0, :3], B, C, 0.1, 8)
    with pytest.raises(ValueError, match="'C'"):
        ssm_kernel_dplr(Lambda, P, B, C[:3], 0.1, 8)
    with pytest.raises(ValueError, match="'length'"):
        ssm_kernel_dplr(Lambda, P, B, C, 0.1, -1)
    with pytest.raises(TypeError, match="'length'"):
        ssm_kernel_dplr(Lambda, P, B, C, 0.1, 8.0)
    with pytest.raises(TypeError, match="'dt'"):
        ssm_kernel_dplr(Lambda, P, B, C, 0.1j, 8)
    bad = C.copy()
    bad[1] = np.nan
    with pytest.raises(ValueError, match="'C'"):
        ssm_kernel_dplr(Lambda, P, B, bad, 0.1, 8)
    assert np.isnan(ssm_kernel_dplr(Lambda, P, B, bad, 0.1, 8, check_finite=False)).any()
    # read-only, non-contiguous inputs give the same answer and stay unchanged
    wide = np.stack([Lambda, Lambda], axis=-1)[..., 0]
    views = [wide, P, B, C]
    for x in views:
        x.flags.writeable = False
    copies = [x.copy() for x in views]
    K = ssm_kernel_dplr(*views, 0.1, 8)
    for x, c in zip(views, copies):
        np.testing.assert_array_equal(x, c)
    np.testing.assert_allclose(K, ssm_kernel_dplr(Lambda.copy(), P, B, C, 0.1, 8))
    with pytest.raises(ValueError, match="'C'"):
        ssm_kernel_diag(Lambda, B, C[:2], 0.1, 8)


def test_repeated_calls_share_the_memoised_layout_but_not_its_checks():
    """_prepare memoises dtypes and batch by the operands' types, shapes and dtypes: the same
    shapes with other dtypes or scalar types, and invalid shapes after valid calls, still get
    their own answer or error."""
    rng = np.random.default_rng(16)
    Lambda, P, B, C = random_dplr(rng, 4, 1)
    dt = np.array([0.1, 0.2])
    args = [np.stack([x, x]) for x in (Lambda, P, B, C)]
    K64 = ssm_kernel_dplr(*args, dt, 8)
    assert K64.dtype == np.float64 and K64.shape == (2, 8)
    K32 = ssm_kernel_dplr(*(x.astype(np.complex64) for x in args), dt.astype(np.float32), 8)
    assert K32.dtype == np.float32
    assert max_relative_error(K32, K64) <= 1e-4
    Kc = ssm_kernel_dplr(*args, dt, 8, conj_pairs=False)
    assert Kc.dtype == np.complex128 and Kc.shape == (2, 8)
    for _ in range(2):
        with pytest.raises(ValueError, match="'C'"):
            ssm_kernel_dplr(*args[:3], args[3][:, :3], dt, 8)
        with pytest.raises(TypeError, match="'dt'"):
            ssm_kernel_dplr(*args, dt.astype(np.complex128), 8)
    np.testing.assert_allclose(ssm_kernel_dplr(*args, dt, 8), K64)
    np.testing.assert_allclose(ssm_kernel_dplr(*(x[:1] for x in args), dt[1:], 8), K64[1:])


# ----------------------------------------------------------------------------- RFT and FFT conv


def test_rft_kernel_matches_powers_and_companion_realisation():
    rng = np.random.default_rng(7)
    d, L = 6, 32
    Ad = 0.3 * rng.standard_normal((d, d))
    Bd, Cd = rng.standard_normal(d), rng.standard_normal(d)
    expected = kernel_by_powers(Ad, Bd, Cd, L)
    Ct = Cd @ (np.eye(d) - np.linalg.matrix_power(Ad, L))
    a = np.poly(Ad)[1:]
    b = (np.poly(Ad - np.outer(Bd, Ct)) - np.poly(Ad))[1:]
    K = rft_kernel(a, b, L)
    assert max_relative_error(K, expected) <= 1e-12
    companion = np.zeros((d, d))
    companion[0] = -a
    companion[1:, :-1] = np.eye(d - 1)
    e1 = np.eye(d)[0]
    C_bar = b @ np.linalg.inv(np.eye(d) - np.linalg.matrix_power(companion, L))
    assert max_relative_error(kernel_by_powers(companion, e1, C_bar, L), K) <= 1e-12
    np.testing.assert_allclose(rft_kernel(np.zeros(3), [1.0, 2.0, 3.0], 7), [1, 2, 3, 0, 0, 0, 0],
                               atol=1e-15)


def test_rft_kernel_batched_complex_and_errors():
    rng = np.random.default_rng(8)
    a = 0.2 * random_array(rng, (3, 1, 4), "complex128")
    b = random_array(rng, (2, 4), "complex128")
    K = rft_kernel(a, b, 20)
    assert K.shape == (3, 2, 20) and K.dtype == np.complex128
    expected = loop_batch(lambda aa, bb: np.fft.ifft(np.fft.fft(bb, 20) / np.fft.fft(
        np.concatenate([[1], aa]), 20)), a, b, core_ndims=(1, 1))
    assert max_relative_error(K, expected) <= 1e-13
    with pytest.raises(LinAlgError, match="unit circle"):
        rft_kernel(np.array([-1.0]), np.array([1.0]), 8)
    with pytest.raises(ValueError, match="'length'"):
        rft_kernel(np.zeros(4), np.ones(4), 4)
    with pytest.raises(ValueError, match="'b'"):
        rft_kernel(np.zeros(4), np.ones(3), 8)


@given(shapes=batch_shapes(), seed=seeds(), L=st.sampled_from([0, 1, 2, 7, 64, 65]),
       Lk=st.sampled_from([1, 7, 65]), dtype=st.sampled_from(["float64", "float32", "complex128"]),
       with_D=st.booleans())
def test_fftconv_equals_np_convolve(shapes, seed, L, Lk, dtype, with_D):
    rng = np.random.default_rng(seed)
    K = random_array(rng, (*shapes[0], Lk), dtype)
    x = random_array(rng, (*shapes[1], L), dtype)
    D = random_array(rng, shapes[1], dtype) if with_D else None
    y = fftconv(K, x, D=D)
    assert y.dtype == np.dtype(dtype)

    def one(k, xx, *d):
        out = np.convolve(k, xx)[: len(xx)] if len(xx) else np.zeros(0)
        return out + d[0] * xx if d else out

    args, cores = ((K, x, D), (1, 1, 0)) if with_D else ((K, x), (1, 1))
    expected = loop_batch(one, *[as_host(a) for a in args], core_ndims=cores)
    assert y.shape == (*np.broadcast_shapes(shapes[0], shapes[1]), L)
    if expected is not None and expected.size:
        assert max_relative_error(y, expected) <= 100 * eps(dtype) * math.log2(L + Lk + 2)


def test_fft_length_is_five_smooth_and_minimal():
    for n in range(1, 300):
        m = _reference.fft_length(n)
        assert m >= n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1
        assert all(not _is_smooth(k) for k in range(n, m))


def _is_smooth(k):
    for p in (2, 3, 5):
        while k % p == 0:
            k //= p
    return k == 1


# ----------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("conj_pairs", [True, False])
@pytest.mark.parametrize("c_tilde", [True, False])
def test_gpu_dplr_kernel_matches_numpy(cp, conj_pairs, c_tilde):
    N, H, L = 32, 3, 512
    A, B = hippo("legs", 2 * N)
    rng = np.random.default_rng(9)
    C = rng.standard_normal((H, 2 * N))
    Lambda, P, Bt, V = nplr("legs", 2 * N, conj_pairs=conj_pairs)
    dt = np.array([0.005, 0.02, 0.1])
    args = (Lambda, P, Bt, C @ V, dt)
    K = ssm_kernel_dplr(*(cp.asarray(x) for x in args), L, conj_pairs=conj_pairs, c_tilde=c_tilde)
    assert isinstance(K, cp.ndarray)
    expected = ssm_kernel_dplr(*args, L, conj_pairs=conj_pairs, c_tilde=c_tilde)
    assert max_relative_error(K, expected) <= 1e-11
    if not c_tilde:
        for i in range(H):
            powers = kernel_by_powers(*gbt_dense(A, B, dt[i], 0.5), C[i], L)
            assert max_relative_error(K[i], powers) <= 1e-10
    K32 = ssm_kernel_dplr(*(cp.asarray(x, dtype=cp.complex64) for x in args[:4]),
                          cp.asarray(dt, dtype=cp.float32), L, conj_pairs=conj_pairs,
                          c_tilde=c_tilde)
    assert K32.dtype == (cp.float32 if conj_pairs else cp.complex64)
    assert max_relative_error(K32, expected) <= 1e-4


@pytest.mark.gpu
def test_gpu_diag_kernel_fftconv_rft_discretize(cp):
    rng = np.random.default_rng(10)
    a = s4d_init("lin", 64)
    B, C = np.ones(32), random_array(rng, (4, 32), "complex128")
    dt = np.array([0.01, 0.02, 0.05, 0.1])
    for method in ("zoh", "bilinear"):
        K = ssm_kernel_diag(cp.asarray(a), cp.asarray(B), cp.asarray(C), cp.asarray(dt), 300,
                            method=method)
        expected = ssm_kernel_diag(a, B, C, dt, 300, method=method)
        assert isinstance(K, cp.ndarray) and max_relative_error(K, expected) <= 1e-11
    x = rng.standard_normal((4, 300))
    y = fftconv(cp.asarray(expected), cp.asarray(x), D=cp.asarray(dt))
    ref = np.stack([np.convolve(k, xx)[:300] for k, xx in zip(expected, x)]) + dt[:, None] * x
    assert isinstance(y, cp.ndarray) and max_relative_error(y, ref) <= 1e-12
    ar, br = 0.2 * rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    assert max_relative_error(rft_kernel(cp.asarray(ar), cp.asarray(br), 40),
                              rft_kernel(ar, br, 40)) <= 1e-12
    A = random_array(rng, (4, 6, 6), "float64", scale=0.5)
    Bm = random_array(rng, (4, 6), "float64")
    for method in ("zoh", "bilinear"):
        got = discretize(cp.asarray(A), cp.asarray(Bm), cp.asarray(dt), method=method)
        ref = discretize(A, Bm, dt, method=method)
        assert all(max_relative_error(g, r) <= 1e-12 for g, r in zip(got, ref))
    Kd = ssm_kernel(cp.asarray(A), cp.asarray(Bm), cp.asarray(Bm), cp.asarray(dt), 50)
    assert max_relative_error(Kd, ssm_kernel(A, Bm, Bm, dt, 50)) <= 1e-12
    v, lam = rng.standard_normal((4, 40)), np.array([0.1, 0.2, 1.0, 3.0])
    assert max_relative_error(legs_solve(cp.asarray(v), cp.asarray(lam)), legs_solve(v, lam)) <= 1e-12
    assert max_relative_error(legs_matvec(cp.asarray(v)), legs_matvec(v)) <= 1e-12


@pytest.mark.gpu
@pytest.mark.parametrize("rank", [0, 1, 2])
@pytest.mark.parametrize("conj_pairs", [True, False])
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_gpu_fused_spectrum_writes_every_node(cp, rank, conj_pairs, dtype):
    """hippo.cu into a NaN-poisoned spectrum: 70 poles (two shared-memory chunks), L = 1100
    (several tiles, the last one partial) and 1024 (the regular nodes fill whole tiles), Nyquist
    node, the 1/L of the inverse DFT applied; against the FFT of the float64 reference kernel."""
    from structla.hippo import _cupy

    rng = np.random.default_rng(20 + rank)
    args = random_dplr_channels(rng, 3, 70, rank)
    real = np.finfo(dtype).dtype
    device = [cp.asarray(x, dtype=dtype if x.dtype.kind == "c" else real) for x in args]
    for L in (1100, 1024):
        nodes = L // 2 + 1 if conj_pairs else L
        out = cp.full((3, nodes), complex(np.nan, np.nan), dtype=dtype)
        _cupy._spectrum_into(*device, L, conj_pairs, out, scale=1 / L)
        K = _reference.generating_kernel(*args, L, conj_pairs=conj_pairs, real=conj_pairs)
        expected = (np.fft.rfft(K) if conj_pairs else np.fft.fft(K)) / L
        assert not bool(cp.isnan(out).any())
        assert max_relative_error(out, expected) <= (1e-12 if dtype == "complex128" else 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("rank", [0, 1, 2, 3])
def test_gpu_dplr_kernel_every_rank_batched(cp, rank):
    rng = np.random.default_rng(30 + rank)
    args = random_dplr_channels(rng, 4, 9, rank)
    for conj_pairs in (True, False):
        for L in (1, 16, 15):
            K = ssm_kernel_dplr(*(cp.asarray(x) for x in args), L, conj_pairs=conj_pairs)
            expected = ssm_kernel_dplr(*args, L, conj_pairs=conj_pairs)
            assert isinstance(K, cp.ndarray) and K.dtype == expected.dtype
            assert max_relative_error(K, expected) <= 1e-11

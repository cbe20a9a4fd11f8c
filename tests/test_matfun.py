"""matfun: coefficient tables, msign, mcsgn, mclip, polar, square roots, msign VJP (MATH D)."""

from __future__ import annotations

import sys
import warnings
from typing import ClassVar

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

import structla
from structla import (
    inv_sqrtm,
    mclip,
    mcsgn,
    msign,
    msign_vjp,
    ns_coefficients,
    polar,
    polar_express_coefficients,
    sqrtm,
)
from structla.matfun._coefficients import scalar_map
from tests.oracles import as_host, loop_batch, max_relative_error
from tests.strategies import ALL_DTYPES, eps, matrix_with_condition, random_array, seeds

# MATH D2: the published Polar Express table (degree 5, ℓ = 1e-3, raw, t = 1..8)
PE_RAW = np.array([
    [8.28721201814563, -23.595886519098837, 17.300387312530933],
    [4.107059111542203, -2.9478499167379106, 0.5448431082926601],
    [3.9486908534822946, -2.908902115962949, 0.5518191394370137],
    [3.3184196573706015, -2.488488024314874, 0.51004894012372],
    [2.300652019954817, -1.6689039845747493, 0.4188073119525673],
    [1.891301407787398, -1.2679958271945868, 0.37680408948524835],
    [1.8750014808534479, -1.2500016453999487, 0.3750001645474248],
    [1.875, -1.25, 0.375],
])
GRID = np.logspace(-3, 0, 4001)


def svd_polar(M):
    """U_r V_rᴴ in float64/complex128 (rank threshold as numpy.linalg.matrix_rank)."""
    M = as_host(M)
    U, s, Vh = np.linalg.svd(M, full_matrices=False)
    if s.size == 0:
        return U @ Vh
    keep = s > max(M.shape[-2:]) * np.finfo(np.float64).eps * s[..., :1]
    return (U * keep[..., None, :]) @ Vh


def svd_clip(M, lo, hi):
    U, s, Vh = np.linalg.svd(as_host(M), full_matrices=False)
    return (U * np.clip(s, lo, hi)[..., None, :]) @ Vh


def spectral_error(X, reference):
    return float(np.linalg.norm(as_host(X) - as_host(reference), 2))


# ---------------------------------------------------------------------------------
# coefficient tables


def test_polar_express_reproduces_published_table():
    raw = polar_express_coefficients(8, safety=1.0)
    assert raw.shape == (8, 3)
    assert np.abs(raw - PE_RAW).max() < 1e-8


def test_polar_express_safety_divides_minimax_rows():
    raw = polar_express_coefficients(8, safety=1.0)
    safe = polar_express_coefficients(8)
    np.testing.assert_allclose(safe[:7], raw[:7] / [1.01, 1.01**3, 1.01**5], rtol=1e-14)
    np.testing.assert_array_equal(safe[7], raw[7])
    # a longer table repeats the maximally flat last row, unscaled
    long = polar_express_coefficients(12)
    np.testing.assert_allclose(long[:7], safe[:7], rtol=1e-14)
    np.testing.assert_allclose(long[7:], np.tile([1.875, -1.25, 0.375], (5, 1)), rtol=1e-8)


def test_polar_express_uncushioned_first_step_and_optimal_cubic():
    quintic = polar_express_coefficients(1, safety=1.0, cushion=0.0)[0]
    np.testing.assert_allclose(quintic, [8.470329, -25.108075, 18.629276], rtol=1e-6)
    cubic = polar_express_coefficients(1, degree=3, safety=1.0, cushion=0.0)[0]
    # closed form (MATH D2) before recentring: a = 5.180102, b = −5.174922, recentred
    # so that p(ℓ) = p(u) = 1 − E and the peak 1 + E are symmetric about 1
    x1 = np.sqrt((1e-6 + 1e-3 + 1) / 3)
    k = -6 / (1e-6 + 1e-3 + 2 * x1**3)
    a, b = -k * x1**2, k / 3
    np.testing.assert_allclose([a, b], [5.180102, -5.174922], rtol=1e-6)
    p = np.polynomial.Polynomial([0, a, 0, b])
    lo, peak = p(1e-3), p(x1)
    np.testing.assert_allclose(cubic[:2], np.array([a, b]) * 2 / (lo + peak), rtol=1e-9)
    assert cubic[2] == 0


@pytest.mark.parametrize("steps, band", [(5, (0.840, 1.124)), (6, (0.99348, 1.00119)),
                                         (7, (0.999989, 0.999998))])
def test_polar_express_scalar_guarantee(steps, band):
    # Algorithm 1 of the paper: X₀ = G / (1.01‖G‖_F), first `steps` rows of the 8-row table
    table = polar_express_coefficients(8)[:steps]
    image = scalar_map(table, GRID / 1.01)
    np.testing.assert_allclose([image.min(), image.max()], band, atol=2e-6 if steps == 7 else 1e-3)


def test_degree3_table_converges():
    image = scalar_map(polar_express_coefficients(12, degree=3), GRID)
    assert np.abs(image - 1).max() < 1e-6


@pytest.mark.parametrize("name, steps, band", [
    ("muon", 5, (0.47, 1.20)), ("su", 5, (0.61, 1.05)), ("jiacheng", 6, (0.866, 0.999)),
])
def test_named_family_scalar_bands(name, steps, band):
    image = scalar_map(ns_coefficients(name, steps), GRID)
    np.testing.assert_allclose([image.min(), image.max()], band, atol=0.01)


def test_named_family_tables():
    np.testing.assert_array_equal(ns_coefficients("muon", 3), np.tile([3.4445, -4.7750, 2.0315], (3, 1)))
    np.testing.assert_array_equal(ns_coefficients("cubic", 2), [[1.5, -0.5, 0.0]] * 2)
    assert ns_coefficients("su", 5)[3].tolist() == [3.2067, -6.8243, 4.2802]
    np.testing.assert_allclose(ns_coefficients("jiacheng", 6)[0], np.array([3955, -8306, 5008]) / 1024)
    # per-step tables continue with the maximally flat quintic
    np.testing.assert_array_equal(ns_coefficients("su", 7)[5:], [[1.875, -1.25, 0.375]] * 2)
    np.testing.assert_array_equal(ns_coefficients("polar_express", 8), polar_express_coefficients(8))
    for name in ("polar_express", "muon", "cubic", "su", "jiacheng"):
        assert ns_coefficients(name, 0).shape == (0, 3)
    # cubic: slow start, 5 steps map 1e-3 to 0.0076
    np.testing.assert_allclose(scalar_map(ns_coefficients("cubic", 5), 1e-3), 0.0076, rtol=0.01)
    # Muon's fixed point is not 1: iterates settle in [0.68, 1.13]
    settled = scalar_map(ns_coefficients("muon", 40), GRID)
    assert settled.min() > 0.67 and settled.max() < 1.14


@pytest.mark.parametrize("call", [
    lambda: ns_coefficients("nope", 3), lambda: ns_coefficients("muon", -1),
    lambda: polar_express_coefficients(3, lower=0.0), lambda: polar_express_coefficients(3, degree=7),
    lambda: polar_express_coefficients(3, safety=0.5), lambda: polar_express_coefficients(2.5),
])
def test_coefficient_argument_errors(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------------
# msign


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (80, 48)])
@pytest.mark.parametrize("cond", [1.0, 1e3, 1e6])
def test_msign_float64_reaches_1e10_up_to_cond_1e6(shape, cond):
    M = matrix_with_condition(np.random.default_rng(0), shape[0], cond, m=shape[1])
    X, info = msign(M, return_info=True)
    assert spectral_error(X, svd_polar(M)) <= 1e-10
    if shape[0] == shape[1]:
        assert spectral_error(X, scipy.linalg.polar(M)[0]) <= 1e-10
    assert info.converged and info.error_estimate < 1e-13


@pytest.mark.parametrize("cond", [1e7, 1e8])
def test_msign_does_not_stop_while_small_singular_values_grow(cond):
    # a singular value s ≪ 1 hides in the defect (it adds only s²): the stopping
    # rule must keep iterating until every σ ≥ 0.1·√eps·‖M‖_F has reached 1
    M = matrix_with_condition(np.random.default_rng(0), 64, cond)
    X = msign(M)
    s = np.linalg.svd(X, compute_uv=False)
    assert np.abs(s - 1).max() < 1e-12
    assert spectral_error(X, svd_polar(M)) <= 100 * cond * eps("float64")


@given(seed=seeds(), n=st.sampled_from([1, 2, 7, 16]), m=st.sampled_from([1, 3, 7, 20]),
       dtype=st.sampled_from(ALL_DTYPES), batch=st.sampled_from([(), (2,), (2, 1)]))
def test_msign_matches_svd_property(seed, n, m, dtype, batch):
    rng = np.random.default_rng(seed)
    M = np.stack([matrix_with_condition(rng, n, 10.0, dtype, m=m)
                  for _ in range(int(np.prod(batch)))]).reshape(*batch, n, m)
    X = msign(M)
    assert X.dtype == M.dtype and X.shape == M.shape
    tol = 200 * eps(dtype) * 10 * max(n, m) ** 0.5
    assert max_relative_error(X, svd_polar(M)) <= tol


def test_msign_batched_equals_loop_and_wide_tall_square():
    rng = np.random.default_rng(1)
    for shape in [(3, 2, 5, 9), (4, 9, 5), (2, 6, 6)]:
        M = random_array(rng, shape)
        X = msign(M)
        np.testing.assert_allclose(X, loop_batch(msign, M, core_ndims=[2]), atol=1e-13)
        np.testing.assert_allclose(X, svd_polar(M), atol=1e-11)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("scale", [1e-30, 1e-10, 1.0, 1e10, 1e30])
def test_msign_scale_invariance(dtype, scale):
    rng = np.random.default_rng(2)
    base = matrix_with_condition(rng, 12, 100.0, "complex128" if dtype[0] == "c" else "float64", m=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X = msign((base * scale).astype(dtype))
    assert np.isfinite(X).all()
    assert max_relative_error(X, svd_polar(base)) <= 500 * eps(dtype) * 100


def test_msign_extreme_float64_scales_and_zero():
    M = matrix_with_condition(np.random.default_rng(3), 8, 10.0, m=5)
    for scale in (1e-300, 1e300, 5e-324 * 2**60):
        np.testing.assert_allclose(msign(M * scale), svd_polar(M), atol=1e-12)
    Z = np.zeros((2, 4, 6), np.float32)
    X, info = msign(Z, return_info=True)
    assert X.dtype == np.float32 and not X.any() and info.converged
    mixed = np.stack([np.zeros((4, 6)), M[:4, :5].repeat(2, axis=1)[:, :6]])
    np.testing.assert_allclose(msign(mixed)[1], svd_polar(mixed[1]), atol=1e-12)
    assert not msign(mixed)[0].any()


def test_msign_rank_deficient_keeps_zero_singular_values():
    rng = np.random.default_rng(4)
    M = rng.standard_normal((10, 3)) @ rng.standard_normal((3, 14))
    X = msign(M)
    s = np.linalg.svd(X, compute_uv=False)
    np.testing.assert_allclose(s[:3], 1.0, atol=1e-12)
    assert s[3:].max() < 1e-9
    np.testing.assert_allclose(X, svd_polar(M), atol=1e-9)
    np.testing.assert_allclose(msign(M, coeffs="svd"), svd_polar(M), atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_msign_gram_method_and_aspect(dtype):
    rng = np.random.default_rng(5)
    M = matrix_with_condition(rng, 16, 100.0, dtype, m=160)
    X, info = msign(M, return_info=True)
    assert info.method == "gram"
    Xs, info_s = msign(M, method="standard", return_info=True)
    assert info_s.method == "standard"
    tol = 2000 * eps(dtype)
    assert max_relative_error(X, svd_polar(M)) <= tol
    assert max_relative_error(Xs, svd_polar(M)) <= tol
    Xt = msign(M.T.copy(), method="gram")
    assert max_relative_error(Xt, svd_polar(M).T) <= tol


def test_msign_fixed_steps_follow_the_scalar_map():
    # every step maps each singular value by p exactly (singular vectors untouched)
    rng = np.random.default_rng(6)
    sigma = np.array([1.0, 0.7, 0.3, 0.05, 0.01])
    U, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    V, _ = np.linalg.qr(rng.standard_normal((9, 5)))
    M = (U * sigma) @ V.T
    start = sigma / np.linalg.norm(sigma)
    for name, steps in [("muon", 5), ("su", 5), ("jiacheng", 6), ("cubic", 4), ("polar_express", 3)]:
        table = ns_coefficients(name, steps)
        X = msign(M, steps=steps, coeffs=name)
        expected = (U * scalar_map(table, start)) @ V.T
        np.testing.assert_allclose(X, expected, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(msign(M, coeffs=table), X, atol=1e-14)


@pytest.mark.parametrize("name", ["muon", "su", "jiacheng", "cubic", "polar_express"])
def test_msign_steps_none_converges_for_every_family(name):
    M = matrix_with_condition(np.random.default_rng(7), 20, 1e3, m=30)
    X, info = msign(M, coeffs=name, return_info=True)
    assert info.converged and info.extra["coeffs"] == name
    assert spectral_error(X, svd_polar(M)) < 1e-11


def test_msign_tol_and_info():
    M = np.random.default_rng(8).standard_normal((32, 128)).astype(np.float32)
    X, info = msign(M, tol=1e-3, return_info=True)
    s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    assert np.abs(s - 1).max() <= 1e-3
    # the a-posteriori estimate tracks the true error
    assert np.abs(s - 1).max() <= 2 * info.error_estimate + 1e-6
    X8, info8 = msign(M, return_info=True)
    assert info8.iterations >= info.iterations
    assert np.abs(np.linalg.svd(X8.astype(np.float64), compute_uv=False) - 1).max() < 1e-5
    assert info8.extra["defect_history"]


def test_msign_fixed_steps_info_reports_nonconvergence():
    M = np.random.default_rng(9).standard_normal((8, 12))
    X, info = msign(M, steps=5, coeffs="muon", return_info=True)
    s = np.linalg.svd(X, compute_uv=False)
    assert not info.converged and info.iterations == 5
    assert abs(info.error_estimate - np.abs(s - 1).max()) < 0.5 * np.abs(s - 1).max() + 0.05


def _log_spectrum(rng, n, m, low=1e-3):
    k = min(n, m)
    U, _ = np.linalg.qr(rng.standard_normal((n, k)))
    V, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return (U * np.logspace(0, np.log10(low), k)) @ V.T


def test_msign_gram_start_saves_steps():
    # σ log-spaced in [1e-3, 1]: from ‖M‖_F the smallest starts at 1e-3/‖M‖_F; the
    # ‖(XXᵀ)²‖_F^{1/4} start is ≈ 4× higher here (n = 96) and saves a step at least
    M = _log_spectrum(np.random.default_rng(40), 96, 96).astype(np.float32)
    X, info = msign(M, tol=1e-3, return_info=True)
    s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    start = np.logspace(0, -3, 96) / np.linalg.norm(np.logspace(0, -3, 96))
    table = np.concatenate([polar_express_coefficients(8), np.tile([1.875, -1.25, 0.375], (9, 1))])
    frobenius_steps = next(t for t in range(1, 17)
                           if np.abs(scalar_map(table[:t], start) - 1).max() <= 1e-3)
    assert info.converged and np.abs(s - 1).max() <= 1e-3
    assert info.iterations < frobenius_steps


def test_spectral_interval_certifies_the_extreme_eigenvalues():
    from structla.matfun._reference import spectral_interval

    rng = np.random.default_rng(43)
    for dtype in ("float32", "float64", "complex128"):
        B = random_array(rng, (3, 40, 90), dtype)
        Y = B @ B.conj().swapaxes(-1, -2)
        Y = Y / np.abs(Y).sum(axis=(-2, -1), keepdims=True)
        ev = np.linalg.eigvalsh(Y.astype(np.complex128))
        lower, upper = spectral_interval(Y, np)
        assert (lower <= ev[:, 0]).all() and (ev[:, -1] <= upper).all(), dtype
        # Lanczos edges within 1 % and the first Cholesky tries pass: the bounds are tight
        assert (lower >= 0.98 * ev[:, 0]).all() and (upper <= 1.02 * ev[:, -1]).all(), dtype
    B = rng.standard_normal((2, 30, 4)) @ rng.standard_normal((2, 4, 60))
    assert spectral_interval(B @ B.swapaxes(-1, -2), np) is None  # rank 4: no positive bound


@pytest.mark.parametrize("lower", [0.3, 0.05, 0.038018939632056124, 1e-3, 1e-6])
@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-8])
def test_tailored_table_band_is_the_scalar_map_bound(lower, tol):
    # (ℓ = 0.038…: the fifth row's interval is 1 ± 3.5·10⁻⁶, where the Remez exchange loses an
    # extremum to rounding and the maximally flat row takes its place)
    from structla.matfun._coefficients import tailored_table

    table, band = tailored_table(lower, tol)
    grid = np.concatenate([np.geomspace(lower, 1, 20001), np.linspace(lower, 1, 20001)])
    deviation = np.abs(scalar_map(table, grid) - 1).max()
    assert deviation <= band + 1e-13 and band <= tol  # (float64 evaluation of the map)
    assert band <= deviation * 1.001 + 1e-15  # the exact interval image: attained
    if len(table) > 1:  # the fewest rows: one row less (Polar Express, same ℓ) misses tol
        shorter = polar_express_coefficients(len(table) - 1, lower=lower)
        assert np.abs(scalar_map(shorter, grid) - 1).max() > tol


def test_msign_certified_band_path():
    # Gaussian 256×1024: σ_min/σ_max ≈ 1/3, certified to within 1 %: two Polar Express rows
    # built for [ℓ/u, 1] prove 1e-3 (band 6.6e-4) without measuring a defect
    rng = np.random.default_rng(44)
    M = rng.standard_normal((256, 1024)).astype(np.float32)
    X, info = msign(M, tol=1e-3, return_info=True)
    s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    assert info.iterations == 2 and info.method == "gram" and info.converged
    assert np.abs(s - 1).max() <= info.extra["predicted_error"] <= 1e-3
    assert not info.extra["defect_history"]
    Xs, info_s = msign(M, tol=1e-3, method="standard", return_info=True)
    assert info_s.iterations == 2 and info_s.method == "standard"
    np.testing.assert_allclose(Xs, X, atol=1e-4)
    for A in (M.T.copy(), (M + 1j * rng.standard_normal(M.shape)).astype(np.complex64),
              rng.standard_normal((2, 128, 512)).astype(np.float32)):
        X, info = msign(A, tol=1e-3, return_info=True)
        s = np.linalg.svd(X.astype(np.complex128), compute_uv=False)
        assert info.iterations <= 3 and np.abs(s - 1).max() <= 1e-3
        assert not info.extra["defect_history"]
    # small matrices (< 2¹⁶ entries) skip the certificate
    _, info = msign(M[:64, :256], tol=1e-3, return_info=True)
    assert info.converged and info.extra["defect_history"]
    # no certificate (rank 5): the defect rule, zero singular values stay small
    A = (rng.standard_normal((64, 5)) @ rng.standard_normal((5, 100))).astype(np.float32)
    X, info = msign(A, tol=1e-3, return_info=True)
    s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    assert info.converged and info.extra["defect_history"]
    assert np.abs(s[:5] - 1).max() <= 1e-3 and s[5:].max() < 1e-2
    # tol below 1000·eps: the defect rule decides
    _, info = msign(M, tol=1e-5, return_info=True)
    assert info.converged and info.extra["defect_history"]
    # non-finite input without the check: no certificate, the iteration reports it
    bad = M[:16, :40].copy()
    bad[2, 3] = np.nan
    with pytest.raises(structla.LinAlgError), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        msign(bad, tol=1e-3, check_finite=False)


@pytest.mark.parametrize("shape", [(40, 40), (24, 56), (56, 24), (3, 24, 32)])
def test_msign_mixed_precision_reaches_tol(shape):
    rng = np.random.default_rng(41)
    M = np.stack([_log_spectrum(rng, *shape[-2:], 1e-2) for _ in range(int(np.prod(shape[:-2])))])
    M = M.reshape(shape).astype(np.float32)
    M_before = M.copy()
    for tol in (1e-3, 1e-5):
        X, info = msign(M, tol=tol, compute_dtype="mixed", return_info=True)
        assert X.dtype == np.float32 and X.shape == M.shape
        s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
        assert info.converged and np.abs(s - 1).max() <= tol
        assert info.error_estimate <= 10 * tol
        # the polar factor of a matrix within float16 rounding of M (cond 100 here)
        assert max_relative_error(X, svd_polar(M.astype(np.float64))) <= 0.05
    np.testing.assert_array_equal(M, M_before)


def test_msign_mixed_precision_rank_deficient_and_zero():
    rng = np.random.default_rng(42)
    M = rng.standard_normal((30, 5)) @ rng.standard_normal((5, 40))
    X, info = msign(M, tol=1e-6, compute_dtype="mixed", return_info=True)
    # the rank-5 part converges; float16 rounding gives the null space singular values
    # ≈ 1e-4·‖M‖ that the iteration raises too (documented): they are not checked
    U, _, Vh = np.linalg.svd(M)
    core = np.linalg.svd(U[:, :5].T @ X @ Vh[:5].T, compute_uv=False)
    assert info.converged and np.abs(core - 1).max() <= 1e-3
    np.testing.assert_array_equal(msign(np.zeros((4, 6)), compute_dtype="mixed"), 0.0)


def test_msign_mixed_precision_rejected_where_undefined():
    M = np.ones((4, 4))
    for kwargs in ({"steps": 5}, {"coeffs": "svd"}):
        with pytest.raises(ValueError, match="compute_dtype"):
            msign(M, compute_dtype="mixed", **kwargs)
    with pytest.raises(ValueError, match="compute_dtype"):
        msign(M.astype(np.complex128), compute_dtype="mixed")
    with pytest.raises(ValueError, match="compute_dtype"):
        mcsgn(M, compute_dtype="mixed")


@pytest.mark.parametrize("compute", ["float32", "float64"])
def test_msign_compute_dtype(compute):
    M = matrix_with_condition(np.random.default_rng(10), 10, 10.0, m=15)
    X = msign(M, compute_dtype=compute)
    assert X.dtype == np.float64
    assert max_relative_error(X, svd_polar(M)) <= 1e3 * eps(compute)
    X32 = msign(M.astype(np.float32), compute_dtype="float64")
    assert X32.dtype == np.float32
    assert max_relative_error(X32, svd_polar(M)) <= 10 * eps("float32")
    Xh = msign(M.astype(np.float16))
    assert Xh.dtype == np.float16
    assert max_relative_error(Xh, svd_polar(M)) <= 5e-3


def test_msign_integer_and_edge_sizes():
    X = msign(np.array([[3, 0], [0, -2]]))
    assert X.dtype == np.float64
    np.testing.assert_allclose(X, [[1, 0], [0, -1]], atol=1e-14)
    for shape in [(0, 3), (3, 0), (0, 0), (0, 4, 4), (2, 1, 1), (1, 5)]:
        M = np.ones(shape)
        X = msign(M)
        assert X.shape == shape
        np.testing.assert_allclose(X, svd_polar(M) if M.size else M, atol=1e-14)


def test_msign_inputs_unchanged_readonly_noncontiguous():
    rng = np.random.default_rng(11)
    base = rng.standard_normal((20, 12))
    M = base[::2, ::2]
    M.flags.writeable = False
    copy = M.copy()
    X = msign(M)
    np.testing.assert_array_equal(M, copy)
    np.testing.assert_allclose(X, svd_polar(copy), atol=1e-12)
    Mf = np.asfortranarray(base)
    np.testing.assert_allclose(msign(Mf), svd_polar(base), atol=1e-12)


@pytest.mark.parametrize("routine", [
    lambda A: mcsgn(A + A.T), lambda A: sqrtm(A @ A.T + np.eye(6)),
    lambda A: inv_sqrtm(A @ A.T + np.eye(6)), lambda A: mclip(A, 0.2, 1.0, variant="v1"),
    lambda A: mclip(A, variant="leloykun"), lambda A: polar(A, side="left"),
    lambda A: msign_vjp(A, A[::-1]), lambda A: msign(A, method="gram"),
])
def test_every_routine_leaves_readonly_inputs_unchanged(routine):
    A = matrix_with_condition(np.random.default_rng(24), 6, 5.0)
    A.flags.writeable = False
    copy = A.copy()
    routine(A)
    np.testing.assert_array_equal(A, copy)


@pytest.mark.parametrize("kwargs, error", [
    ({"coeffs": "nope"}, ValueError), ({"coeffs": np.ones((3, 2))}, ValueError),
    ({"coeffs": np.ones((3, 3)), "steps": 2}, ValueError), ({"steps": -1}, ValueError),
    ({"method": "qr"}, ValueError), ({"tol": 0.0}, ValueError),
    ({"compute_dtype": "int32"}, ValueError),
])
def test_msign_argument_errors(kwargs, error):
    with pytest.raises(error):
        msign(np.ones((3, 4)), **kwargs)


def test_msign_input_errors():
    with pytest.raises(ValueError, match="'M'"):
        msign(np.ones(3))
    bad = np.ones((3, 3))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="infs or NaNs"):
        msign(bad)
    with pytest.raises(TypeError):
        msign(np.array([["a", "b"]]))


def test_msign_identity_M_equals_O_Mt_O():
    M = np.random.default_rng(12).standard_normal((7, 7))
    O = msign(M)
    np.testing.assert_allclose(M, O @ M.T @ O, atol=1e-12)


# ---------------------------------------------------------------------------------
# mcsgn, polar, square roots


def _real_spectrum(rng, n, dtype="float64", low=0.1):
    P = matrix_with_condition(rng, n, 10.0)
    ev = rng.uniform(low, 2.0, n) * rng.choice([-1.0, 1.0], n)
    return (P @ np.diag(ev) @ np.linalg.inv(P)).astype(dtype)


@given(seed=seeds(), n=st.sampled_from([1, 2, 7, 20]), dtype=st.sampled_from(["float32", "float64"]),
       batch=st.sampled_from([(), (3,)]))
def test_mcsgn_matches_signm(seed, n, dtype, batch):
    rng = np.random.default_rng(seed)
    M = np.stack([_real_spectrum(rng, n, dtype) for _ in range(int(np.prod(batch)))])
    M = M.reshape(*batch, n, n)
    S = mcsgn(M)
    assert S.dtype == M.dtype and S.shape == M.shape
    reference = loop_batch(lambda A: scipy.linalg.signm(A.astype(np.float64)), M, core_ndims=[2])
    assert max_relative_error(S, reference) <= 5e4 * eps(dtype) * n


def test_mcsgn_symmetric_equals_msign_and_info():
    rng = np.random.default_rng(13)
    A = rng.standard_normal((15, 15))
    S = A + A.T
    np.testing.assert_allclose(mcsgn(S), msign(S), atol=1e-12)
    _, info = mcsgn(S, return_info=True)
    assert info.converged and info.error_estimate < 1e-12


def test_mcsgn_complex_eigenvalues_raise_instead_of_nan():
    # eigenvalues 1 ± 5i: the polynomial iteration diverges; no silent NaN
    with pytest.raises(structla.LinAlgError, match="non-finite"):
        mcsgn(np.array([[1.0, -5.0], [5.0, 1.0]]))
    with pytest.raises(structla.LinAlgError):
        mcsgn(np.array([[1.0, -5.0], [5.0, 1.0]]), steps=30)
    bad = np.eye(3)
    bad[0, 0] = np.nan
    with pytest.raises(structla.LinAlgError):
        msign(bad, check_finite=False)


def test_mcsgn_singular_warns():
    M = np.diag([1.0, -2.0, 0.0])
    with pytest.warns(structla.NotConvergedWarning):
        mcsgn(M)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("shape", [(6, 6), (8, 5), (5, 8), (3, 6, 4)])
def test_polar_matches_scipy(side, shape):
    M = random_array(np.random.default_rng(14), shape)
    U, H = polar(M, side=side)
    reference = loop_batch(lambda A: np.concatenate([x.ravel() for x in scipy.linalg.polar(A, side=side)]),
                           M, core_ndims=[2])
    ours = np.concatenate([U.reshape(*U.shape[:-2], -1), H.reshape(*H.shape[:-2], -1)], axis=-1)
    np.testing.assert_allclose(ours, reference, atol=1e-11)
    product = U @ H if side == "right" else H @ U
    np.testing.assert_allclose(product, M, atol=1e-12)
    np.testing.assert_allclose(H, np.swapaxes(H, -1, -2), atol=0)


def test_polar_complex_and_errors():
    M = random_array(np.random.default_rng(15), (5, 5), "complex128")
    U, H = polar(M)
    U0, H0 = scipy.linalg.polar(M)
    np.testing.assert_allclose(U, U0, atol=1e-12)
    np.testing.assert_allclose(H, H0, atol=1e-12)
    with pytest.raises(ValueError, match="side"):
        polar(M, side="up")


def _spd(rng, n, cond, dtype="float64"):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return ((Q * np.logspace(0, -np.log10(cond), n)) @ Q.T).astype(dtype)


@given(seed=seeds(), n=st.sampled_from([1, 2, 7, 30]), cond=st.sampled_from([1.0, 1e2, 1e6]),
       dtype=st.sampled_from(["float32", "float64"]))
def test_sqrtm_and_inv_sqrtm_match_scipy(seed, n, cond, dtype):
    if dtype == "float32":
        cond = min(cond, 1e2)
    C = _spd(np.random.default_rng(seed), n, cond, dtype)
    root = scipy.linalg.sqrtm(C.astype(np.float64))
    R = sqrtm(C)
    Ri = inv_sqrtm(C)
    assert R.dtype == C.dtype and Ri.dtype == C.dtype
    tol = 200 * eps(dtype) * (n + 2) * np.sqrt(cond)
    assert max_relative_error(R, root) <= tol
    assert max_relative_error(Ri, np.linalg.inv(root)) <= tol


def test_sqrtm_nonsymmetric_batched_info_and_scales():
    rng = np.random.default_rng(16)
    P = matrix_with_condition(rng, 6, 5.0)
    C = np.stack([P @ np.diag(rng.uniform(0.5, 4.0, 6)) @ np.linalg.inv(P) for _ in range(3)])
    R, info = sqrtm(C, return_info=True)
    np.testing.assert_allclose(R, loop_batch(scipy.linalg.sqrtm, C, core_ndims=[2]), atol=1e-11)
    assert info.converged and info.error_estimate < 1e-13
    for scale in (1e-30, 1e30):
        np.testing.assert_allclose(sqrtm(C * scale) / np.sqrt(scale), R, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(inv_sqrtm(C * scale) * np.sqrt(scale), inv_sqrtm(C), rtol=1e-11,
                                   atol=1e-11)


# ---------------------------------------------------------------------------------
# mclip


@pytest.mark.parametrize("variant", ["v1", "v2", "v3", "leloykun", "svd"])
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.5, 2.0), (0.0, 0.3), (1.2, 1.2), (0.0, np.inf)])
@pytest.mark.parametrize("shape", [(7, 10), (10, 7)])
def test_mclip_variants_match_svd(variant, bounds, shape):
    rng = np.random.default_rng(17)
    U, _ = np.linalg.qr(rng.standard_normal((shape[0], shape[0])))
    V, _ = np.linalg.qr(rng.standard_normal((shape[1], shape[1])))
    k = min(shape)
    M = (U[:, :k] * np.linspace(0.1, 5.0, k)) @ V[:, :k].T
    C = mclip(M, *bounds, variant=variant)
    np.testing.assert_allclose(C, svd_clip(M, *bounds), atol=1e-11)


@given(seed=seeds(), variant=st.sampled_from(["v1", "v2", "v3", "leloykun"]),
       lo=st.sampled_from([0.0, 0.2]), hi=st.sampled_from([0.5, 1.0, 3.0]),
       dtype=st.sampled_from(["float32", "float64", "complex128"]))
def test_mclip_property(seed, variant, lo, hi, dtype):
    rng = np.random.default_rng(seed)
    M = np.stack([matrix_with_condition(rng, 5, 20.0, dtype, m=8) * 2 for _ in range(2)])
    C = mclip(M, lo, hi, variant=variant)
    assert C.dtype == M.dtype and C.shape == M.shape
    # singular values within 1e-3 of a bound converge slowly; they enter the
    # result multiplied by that gap, so the error stays small
    assert max_relative_error(C, svd_clip(M, lo, hi)) <= 3e4 * eps(dtype)


def test_mclip_rank_deficient_zero_stays_zero_and_info():
    rng = np.random.default_rng(18)
    M = 3 * rng.standard_normal((6, 2)) @ rng.standard_normal((2, 9))
    U, s, Vh = np.linalg.svd(M, full_matrices=False)
    expected = (U * np.where(s > 1e-10, np.clip(s, 0.5, 1.0), 0)) @ Vh
    for variant in ("v1", "v2", "v3", "leloykun", "svd"):
        C, info = mclip(M, 0.5, 1.0, variant=variant, return_info=True)
        np.testing.assert_allclose(C, expected, atol=1e-8, err_msg=variant)
        assert info.method == variant and info.converged


@pytest.mark.parametrize("variant", ["v1", "v2", "v3", "leloykun"])
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_mclip_extreme_scales_float32(variant, scale):
    rng = np.random.default_rng(23)
    M = matrix_with_condition(rng, 6, 10.0, m=9)
    bounds = (0.3 * scale, 0.7 * scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C = mclip((M * scale).astype(np.float32), *bounds, variant=variant)
    assert np.isfinite(C).all()
    np.testing.assert_allclose(C / scale, svd_clip(M, 0.3, 0.7), atol=1e-4)


def test_mclip_errors():
    with pytest.raises(ValueError, match="variant"):
        mclip(np.ones((2, 2)), variant="v9")
    with pytest.raises(ValueError, match="lo"):
        mclip(np.ones((2, 2)), 2.0, 1.0)
    with pytest.raises(ValueError, match="lo"):
        mclip(np.ones((2, 2)), -1.0, 1.0)


# ---------------------------------------------------------------------------------
# msign VJP


def _finite_difference(M, G, h=1e-6):
    grad = np.zeros_like(M)
    for index in np.ndindex(*M.shape):
        E = np.zeros_like(M)
        E[index] = h
        grad[index] = np.sum(G * (svd_polar(M + E) - svd_polar(M - E))) / (2 * h)
    return grad


@pytest.mark.parametrize("shape", [(5, 5), (4, 7), (7, 4)])
def test_msign_vjp_matches_central_differences(shape):
    rng = np.random.default_rng(19)
    M = matrix_with_condition(rng, shape[0], 5.0, m=shape[1])
    G = rng.standard_normal(shape)
    np.testing.assert_allclose(msign_vjp(M, G), _finite_difference(M, G), atol=1e-8)


def test_msign_vjp_batched_broadcast_and_scale():
    rng = np.random.default_rng(20)
    M = rng.standard_normal((3, 5, 5))
    G = rng.standard_normal((5, 5))
    grad = msign_vjp(M, G)
    assert grad.shape == (3, 5, 5)
    np.testing.assert_allclose(grad, loop_batch(msign_vjp, M, G[None], core_ndims=[2, 2]), atol=1e-12)
    # msign is scale invariant, so its derivative scales as 1/s
    np.testing.assert_allclose(msign_vjp(M * 1e20, G) * 1e20, grad, rtol=1e-10, atol=1e-12)


def test_msign_vjp_sylvester_method_agrees():
    pytest.importorskip("structla.sylvester._api")
    rng = np.random.default_rng(21)
    M = matrix_with_condition(rng, 6, 10.0)
    G = rng.standard_normal((6, 6))
    np.testing.assert_allclose(msign_vjp(M, G, method="sylvester"), msign_vjp(M, G, method="svd"),
                               atol=1e-9)


def test_msign_vjp_errors():
    rng = np.random.default_rng(22)
    singular = rng.standard_normal((5, 2)) @ rng.standard_normal((2, 5))
    with pytest.raises(structla.LinAlgError):
        msign_vjp(singular, np.ones((5, 5)))
    with pytest.raises(TypeError):
        msign_vjp(np.eye(3, dtype=complex), np.eye(3))
    with pytest.raises(ValueError):
        msign_vjp(np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="method"):
        msign_vjp(np.eye(3), np.eye(3), method="nope")
    with pytest.raises(ValueError, match="square"):
        msign_vjp(np.ones((2, 3)), np.ones((2, 3)), method="sylvester")


# ---------------------------------------------------------------------------------
# GPU (CuPy): the same code on cuBLAS, compared with float64 CPU references


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64"])
def test_gpu_msign_matches_cpu(cp, dtype):
    rng = np.random.default_rng(30)
    M = np.stack([matrix_with_condition(rng, 64, 100.0, dtype, m=200) for _ in range(3)])
    X, info = msign(cp.asarray(M), return_info=True)
    assert isinstance(X, cp.ndarray) and X.dtype == M.dtype
    assert info.converged
    assert max_relative_error(X, svd_polar(M)) <= 2000 * eps(dtype)
    X_gram = msign(cp.asarray(M), method="gram")
    assert max_relative_error(X_gram, svd_polar(M)) <= 2000 * eps(dtype)
    X_svd = msign(cp.asarray(M), coeffs="svd")
    assert max_relative_error(X_svd, svd_polar(M)) <= 100 * eps(dtype)


@pytest.mark.gpu
def test_gpu_msign_batched_small_and_fixed_steps(cp):
    rng = np.random.default_rng(31)
    M = np.stack([matrix_with_condition(rng, 32, 10.0, "float32") for _ in range(256)])
    X = msign(cp.asarray(M), steps=5, coeffs="muon")
    np.testing.assert_allclose(cp.asnumpy(X), msign(M, steps=5, coeffs="muon"), atol=1e-4)
    X16 = msign(cp.asarray(M[:4]), compute_dtype="float16", tol=1e-2)
    s = np.linalg.svd(cp.asnumpy(X16).astype(np.float64), compute_uv=False)
    assert X16.dtype == np.float32 and np.abs(s - 1).max() < 5e-2


@pytest.mark.gpu
def test_gpu_mcsgn_sqrtm_polar_mclip_vjp(cp):
    rng = np.random.default_rng(32)
    M = _real_spectrum(rng, 20)
    np.testing.assert_allclose(cp.asnumpy(mcsgn(cp.asarray(M))), scipy.linalg.signm(M), atol=1e-9)
    C = _spd(rng, 20, 1e3)
    np.testing.assert_allclose(cp.asnumpy(sqrtm(cp.asarray(C))), scipy.linalg.sqrtm(C), atol=1e-11)
    np.testing.assert_allclose(cp.asnumpy(inv_sqrtm(cp.asarray(C))),
                               np.linalg.inv(scipy.linalg.sqrtm(C)), atol=1e-9)
    A = rng.standard_normal((7, 11))
    U, H = polar(cp.asarray(A), side="left")
    U0, H0 = scipy.linalg.polar(A, side="left")
    np.testing.assert_allclose(cp.asnumpy(U), U0, atol=1e-11)
    np.testing.assert_allclose(cp.asnumpy(H), H0, atol=1e-11)
    for variant in ("v1", "v2", "v3", "leloykun"):
        np.testing.assert_allclose(cp.asnumpy(mclip(cp.asarray(3 * A), 0.5, 2.0, variant=variant)),
                                   svd_clip(3 * A, 0.5, 2.0), atol=1e-10)
    G = rng.standard_normal((2, 6, 6))
    Ms = np.stack([matrix_with_condition(rng, 6, 10.0) for _ in range(2)])
    expected = msign_vjp(Ms, G)
    np.testing.assert_allclose(cp.asnumpy(msign_vjp(cp.asarray(Ms), cp.asarray(G), method="svd")),
                               expected, atol=1e-10)
    # default on the GPU: Newton–Schulz msign + structla.solve_sylvester
    np.testing.assert_allclose(cp.asnumpy(msign_vjp(cp.asarray(Ms), cp.asarray(G))), expected,
                               atol=1e-8)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_gpu_fused_poly_matrix_matches_reference(cp, dtype):
    from structla.matfun import _cupy, _reference

    rng = np.random.default_rng(33)
    Y = cp.asarray(rng.standard_normal((3, 7, 7)), dtype=dtype)
    Y2 = cp.asarray(rng.standard_normal((3, 7, 7)), dtype=dtype)
    eye = cp.eye(7, dtype=dtype)
    for row, second in [(np.array([1.875, -1.25, 0.375]), Y2), (np.array([1.5, -0.5, 0.0]), None)]:
        out = cp.full_like(Y, cp.nan)
        out[...] = _cupy.poly_matrix(row, Y, second, eye)
        expected = _reference.poly_matrix(row, Y.astype(np.float64),
                                          None if second is None else second.astype(np.float64),
                                          cp.eye(7))
        assert out.dtype == Y.dtype
        np.testing.assert_allclose(cp.asnumpy(out).astype(np.float64), cp.asnumpy(expected),
                                   atol=8 * eps(dtype) * 4, rtol=0)


@pytest.mark.gpu
def test_gpu_float16_product_with_float32_output(cp):
    from structla.matfun import _cupy

    rng = np.random.default_rng(35)
    A = cp.asarray(rng.standard_normal((1, 48, 80)), dtype=cp.float16)
    B = cp.asarray(rng.standard_normal((1, 80, 33)), dtype=cp.float16)
    C = cp.asarray(rng.standard_normal((1, 33, 80)), dtype=cp.float16)
    exact = [A.astype(np.float64) @ B.astype(np.float64),          # B C-contiguous
             A.astype(np.float64) @ C.swapaxes(1, 2).astype(np.float64),  # transposed view
             A.astype(np.float64) @ A.swapaxes(1, 2).astype(np.float64)]
    got = [_cupy.product16(A, B), _cupy.product16(A, C.swapaxes(1, 2)),
           _cupy.product16(A, A.swapaxes(1, 2))]
    for out, ref in zip(got, exact, strict=True):
        assert out.dtype == np.float32 and out.shape == ref.shape
        np.testing.assert_allclose(cp.asnumpy(out), cp.asnumpy(ref), atol=1e-4, rtol=1e-5)
    stack = cp.asarray(rng.standard_normal((3, 8, 8)), dtype=cp.float16)
    np.testing.assert_allclose(cp.asnumpy(_cupy.product16(stack, stack)),
                               cp.asnumpy(stack.astype(np.float64) @ stack.astype(np.float64)),
                               atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_gpu_batched_product_with_transpose_flags(cp, dtype):
    from structla.matfun import _cupy

    rng = np.random.default_rng(36)
    A = cp.asarray(rng.standard_normal((5, 24, 40)), dtype=dtype)
    B = cp.asarray(rng.standard_normal((5, 40, 17)), dtype=dtype)
    tol = {"float16": 2e-2, "float32": 1e-4, "float64": 1e-12}[dtype]
    for left, right in [(A, B), (A, A.swapaxes(1, 2)), (B.swapaxes(1, 2).copy(), A.swapaxes(1, 2))]:
        out = _cupy.matmul(left, right)
        expected = left.astype(np.float64) @ right.astype(np.float64)
        assert out.dtype == left.dtype and out.shape == expected.shape
        np.testing.assert_allclose(cp.asnumpy(out).astype(np.float64), cp.asnumpy(expected),
                                   atol=tol * 8, rtol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpu_fused_frobenius_start(cp, dtype):
    from structla.matfun import _cupy, _reference

    rng = np.random.default_rng(37)
    M = cp.asarray(rng.standard_normal((4, 20, 30)) * np.array([1e-30, 1.0, 1e30, 0.0])[:, None, None]
                   if dtype == "float64" else rng.standard_normal((4, 20, 30)) * 1e3, dtype=dtype)
    for stack in (M, M.swapaxes(1, 2)):
        for cdt in (np.dtype(dtype), np.dtype(np.float16)):
            got = _cupy.frobenius_start(stack, cdt)
            expected = _reference.frobenius_start(stack, cdt)
            assert got.dtype == cdt and got.shape == stack.shape
            np.testing.assert_allclose(cp.asnumpy(got).astype(np.float64),
                                       cp.asnumpy(expected).astype(np.float64),
                                       atol=4 * eps(cdt), rtol=0)
    bad = M.copy()
    bad[1, 2, 3] = cp.nan
    with pytest.raises(structla.LinAlgError):
        msign(bad, check_finite=False)
    with pytest.raises(ValueError, match="'M'"):
        msign(bad, steps=3, check_finite=True)
    # fixed steps without the check stay asynchronous: the NaN reaches its matrix's output
    # only, through the cuBLAS iteration and through the fused float16 kernel
    small = cp.asarray(rng.standard_normal((3, 16, 32)), dtype=cp.float32)
    small[1, 0, 5] = cp.nan
    for stack, options in ((bad, {}), (small, {"compute_dtype": "float16"})):
        X = msign(stack, steps=3, check_finite=False, **options)
        finite = cp.asnumpy(cp.isfinite(X).all(axis=(1, 2)))
        assert finite.tolist() == [True, False] + [True] * (len(finite) - 2)


@pytest.mark.gpu
def test_gpu_msign_mixed_and_float16_single_matrix(cp):
    M = _log_spectrum(np.random.default_rng(34), 512, 768).astype(np.float32)
    X, info = msign(cp.asarray(M), tol=1e-3, compute_dtype="mixed", return_info=True)
    s = np.linalg.svd(cp.asnumpy(X).astype(np.float64), compute_uv=False)
    assert X.dtype == np.float32 and info.converged and np.abs(s - 1).max() <= 1e-3
    X16, info16 = msign(cp.asarray(M), tol=1e-2, compute_dtype="float16", return_info=True)
    s16 = np.linalg.svd(cp.asnumpy(X16).astype(np.float64), compute_uv=False)
    assert info16.converged and np.abs(s16 - 1).max() <= 1e-2
    # the CPU takes the certified-band path (fewer steps, same tolerance), the GPU the
    # defect rule: both are within 1e-3 of the polar factor in the spectral norm
    X32 = msign(cp.asarray(M), tol=1e-3)
    s32 = np.linalg.svd(cp.asnumpy(X32).astype(np.float64), compute_uv=False)
    assert np.abs(s32 - 1).max() <= 1e-3
    np.testing.assert_allclose(cp.asnumpy(X32), msign(M, tol=1e-3), atol=2e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(6, 128, 128), (3, 64, 128), (3, 128, 48), (2, 16, 16)])
def test_gpu_fused_small_msign(cp, shape):
    # fixed float16 tables on small matrices: one kernel (tensor cores, shared memory),
    # against the cuBLAS float16 reference iteration and the float64 one
    from structla.matfun import _cupy, _reference

    rng = np.random.default_rng(35)
    M = np.stack([_log_spectrum(rng, *shape[1:], 1e-2) for _ in range(shape[0])]).astype(np.float32)
    table = ns_coefficients("polar_express", 4)
    out = cp.full(M.shape, cp.nan, dtype=cp.float32)
    X = _cupy.fused_small(cp.asarray(M), table, out=out)
    assert X is out and bool(cp.isfinite(X).all())
    reference, _ = _reference.msign(cp.asarray(M), table, cdt=np.dtype(np.float16), tol=1e-2,
                                    adaptive=False, method="standard")
    scale = np.abs(cp.asnumpy(reference)).max()
    assert np.abs(cp.asnumpy(X) - cp.asnumpy(reference).astype(np.float32)).max() <= 5e-2 * scale
    # a NumPy model of the kernel's rounding points lands within 6e-3 of this (all shapes)
    exact = msign(M.astype(np.float64), steps=4)
    assert np.abs(cp.asnumpy(X) - exact).max() <= 2e-2 * np.abs(exact).max()
    api = msign(cp.asarray(M), steps=4, compute_dtype="float16")
    np.testing.assert_array_equal(cp.asnumpy(api), cp.asnumpy(X))
    zero = cp.zeros((2, *shape[1:]), dtype=cp.float32)
    assert not bool(_cupy.fused_small(zero, table).any())


@pytest.mark.gpu
def test_gpu_mixed_libraries_rejected(cp):
    with pytest.raises(TypeError):
        msign_vjp(cp.ones((3, 3)), np.ones((3, 3)))


class _FakeDeviceArray(np.ndarray):
    """NumPy array posing as a CuPy one: counts device work and host reads (see below)."""

    counts: ClassVar[dict] = {}

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _FakeDeviceArray.counts["launches"] += 1
        plain = [x.view(np.ndarray) if isinstance(x, np.ndarray) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(x.view(np.ndarray) for x in kwargs["out"])
        result = getattr(ufunc, method)(*plain, **kwargs)
        # CuPy reductions return 0-d device arrays, not host scalars
        return np.asarray(result).view(_FakeDeviceArray)

    def astype(self, dtype, copy=True, **kwargs):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        _FakeDeviceArray.counts["launches"] += 1
        return super().astype(dtype, copy=copy, **kwargs)

    def _read(self, kind):
        _FakeDeviceArray.counts["syncs"] += 1
        return getattr(self.view(np.ndarray), kind)()

    def __bool__(self):
        return self._read("__bool__")

    def __float__(self):
        return self._read("__float__")

    def item(self):
        return self._read("item")


_FakeDeviceArray.__module__ = "cupy"


@pytest.fixture
def fake_cupy(monkeypatch):
    """A stand-in ``cupy`` (NumPy arrays, kernels that write zeros) that counts what a
    call sends to the device: CuPy operations (``launches``), raw kernel launches
    (``kernels``), host reads of device values (``syncs``) and host→device copies."""
    import importlib.util
    import types

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("real CuPy installed: the GPU tests measure the real thing")
    counts = {"launches": 0, "kernels": 0, "syncs": 0, "copies": 0}
    _FakeDeviceArray.counts = counts
    view = {"broadcast_to", "float16", "float32", "float64", "complex64", "complex128"}

    class FakeCupy(types.ModuleType):
        ndarray = _FakeDeviceArray

        def __getattr__(self, name):
            target = getattr(np, name)
            if name in view:
                return target

            def operation(*args, **kwargs):
                counts["launches"] += 1
                out = target(*(x.view(np.ndarray) if isinstance(x, _FakeDeviceArray) else x
                               for x in args), **kwargs)
                return out.view(_FakeDeviceArray) if isinstance(out, np.ndarray) else out
            return operation

        @staticmethod
        def asarray(x, dtype=None):
            if isinstance(x, _FakeDeviceArray) and (dtype is None or np.dtype(dtype) == x.dtype):
                return x
            counts["copies" if not isinstance(x, _FakeDeviceArray) else "launches"] += 1
            return np.array(x, dtype=dtype).view(_FakeDeviceArray)

        @staticmethod
        def ascontiguousarray(x, dtype=None):
            if x.flags.c_contiguous and (dtype is None or np.dtype(dtype) == x.dtype):
                return x
            counts["launches"] += 1
            return np.ascontiguousarray(x, dtype=dtype).view(_FakeDeviceArray)

        @staticmethod
        def empty(shape, dtype=np.float64):
            return np.empty(shape, dtype).view(_FakeDeviceArray)

    cupy = FakeCupy("cupy")
    device = types.SimpleNamespace(compute_capability="90")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDevice=lambda: 0),
                                      Device=lambda *_: device)
    backends = {name: types.ModuleType(name) for name in
                ("cupy_backends", "cupy_backends.cuda", "cupy_backends.cuda.api",
                 "cupy_backends.cuda.libs")}
    backends["cupy_backends.cuda.api"].runtime = types.ModuleType("runtime")
    backends["cupy_backends.cuda.libs"].cublas = types.ModuleType("cublas")
    for name, module in {"cupy": cupy, **backends}.items():
        monkeypatch.setitem(sys.modules, name, module)

    def launch(kernel, grid, block, args, shared_mem=0):
        counts["kernels"] += 1
        args[1][...] = 0

    import structla._core.cuda as cuda
    import structla.matfun
    from structla.matfun import _api

    # the stand-in arrays are NumPy subclasses, which array_namespace takes for NumPy
    monkeypatch.setattr(_api, "array_namespace", lambda **named: cupy)
    monkeypatch.setattr(cuda, "get_kernel", lambda *args: "msign_small_fused")
    monkeypatch.setattr(cuda, "launch", launch)
    sys.modules.pop("structla.matfun._cupy", None)
    try:
        yield counts
    finally:
        # the GPU module bound to the stand-in must not outlive the test
        sys.modules.pop("structla.matfun._cupy", None)
        if hasattr(structla.matfun, "_cupy"):
            delattr(structla.matfun, "_cupy")


def test_msign_fused_gpu_call_is_one_launch_without_host_reads(fake_cupy):
    # the batched Muon-style call (fixed float16 Polar Express steps on small matrices):
    # the fused kernel does the start, the steps and the float32 output; validation and
    # the table are host work, and nothing is read back, so the call stays asynchronous
    M = _FakeDeviceArray.__new__(_FakeDeviceArray, (4, 32, 16), np.float32)
    M[...] = np.random.default_rng(40).standard_normal(M.shape)
    for call in range(2):
        fake_cupy.update(launches=0, kernels=0, syncs=0, copies=0)
        X = msign(M, steps=4, compute_dtype="float16")
        assert X.shape == M.shape and X.dtype == np.float32
        # the coefficient rows go to the device once per table
        assert fake_cupy == {"launches": 0, "kernels": 1, "syncs": 0, "copies": 1 - call}
    # asking for the checks reads the input and the result back
    fake_cupy.update(launches=0, kernels=0, syncs=0, copies=0)
    msign(M, steps=4, compute_dtype="float16", check_finite=True)
    assert fake_cupy["kernels"] == 1 and fake_cupy["syncs"] == 2

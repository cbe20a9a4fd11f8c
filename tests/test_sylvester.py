"""solve_sylvester / solve_lyapunov against SciPy, on controlled spectra; honest failure."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import as_host, loop_batch, max_relative_error, sylvester_backward_error
from strategies import ALL_DTYPES, eps, matrix_with_spectrum, random_array

import structla
from structla import IllConditionedWarning, LinAlgError, solve_lyapunov, solve_sylvester
from structla._core.dispatch import implementation

# Real parts of the eigenvalues of (A, B) for each spectrum kind. "mixed" puts A on both
# sides of the imaginary axis and keeps -B far from it, so the equation stays well posed
# but the sign method does not apply.
SPECTRA = {
    "rhp": ((0.5, 3.0, False), (0.3, 2.0, False)),
    "lhp": ((-3.0, -0.5, False), (-2.0, -0.3, False)),
    "mixed": ((0.5, 3.0, True), (4.0, 6.0, False)),
}
SIZES = (1, 2, 5, 64)


def problem(rng, n, m, kind, dtype, batch=()):
    (alo, ahi, aboth), (blo, bhi, bboth) = SPECTRA[kind]
    if kind == "lhp":
        alo, ahi, blo, bhi = -ahi, -alo, -bhi, -blo
    a = np.stack([matrix_with_spectrum(rng, n, alo, ahi, dtype, both_sides=aboth)
                  for _ in range(int(np.prod(batch)))]).reshape(*batch, n, n)
    b = np.stack([matrix_with_spectrum(rng, m, blo, bhi, dtype, both_sides=bboth)
                  for _ in range(int(np.prod(batch)))]).reshape(*batch, m, m)
    c = random_array(rng, (*batch, n, m), dtype)
    return a, b, c


def bound(dtype, n, m, c=30.0):
    return c * max(n, m) * eps(dtype)


def check_against_scipy(a, b, c, x, dtype):
    """Backward error ≤ c·n·eps and forward error vs SciPy ≤ c·n·eps·cond."""
    n, m = c.shape[-2], c.shape[-1]
    assert x.shape == c.shape and x.dtype == np.dtype(dtype)
    assert sylvester_backward_error(a, b, c, x) <= bound(dtype, n, m)
    ref = loop_batch(scipy.linalg.solve_sylvester, as_host(a), as_host(b), as_host(c),
                     core_ndims=(2, 2, 2))
    # The controlled spectra keep |λ(A) + λ(B)| ≥ 0.6 and ‖A‖, ‖B‖ ≲ 4√n: cond ≲ 15√n.
    assert max_relative_error(x, ref) <= bound(dtype, n, m) * 15 * np.sqrt(max(n, m))


@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from(SIZES), m=st.sampled_from(SIZES),
       kind=st.sampled_from(sorted(SPECTRA)), dtype=st.sampled_from(ALL_DTYPES),
       method=st.sampled_from(["auto", "sign", "schur"]))
def test_solve_sylvester_matches_scipy(seed, n, m, kind, dtype, method):
    rng = np.random.default_rng(seed)
    a, b, c = problem(rng, n, m, kind, dtype)
    # With few eigenvalues, "mixed" may still land in one half-plane.
    applies = kind != "mixed" or bool((np.linalg.eigvals(as_host(a)).real > 0).all())
    if method == "sign" and not applies:
        with pytest.raises(LinAlgError, match="half-plane"):
            solve_sylvester(a, b, c, method=method)
        return
    x, info = solve_sylvester(a, b, c, method=method, return_info=True)
    check_against_scipy(a, b, c, x, dtype)
    if method == "auto":
        assert info.method == ("sign" if applies else "schur")


@pytest.mark.parametrize("dtype,kind", [("float32", "rhp"), ("float64", "lhp"),
                                        ("complex64", "mixed"), ("complex128", "rhp"),
                                        ("float64", "mixed")])
def test_size_200_rectangular(dtype, kind):
    rng = np.random.default_rng(200)
    a, b, c = problem(rng, 200, 64, kind, dtype)
    x = solve_sylvester(a, b, c)
    check_against_scipy(a, b, c, x, dtype)


def lyapunov_matrix(rng, n, kind, dtype):
    """Stable, anti-stable, or mixed with λᵢ + conj(λⱼ) kept ≥ 1 away from 0."""
    if kind == "mixed":
        q, _ = np.linalg.qr(random_array(rng, (n, n), dtype))
        lam = np.where(rng.random(n) < 0.5, rng.uniform(0.5, 1.0, n), rng.uniform(-3.0, -2.0, n))
        if np.dtype(dtype).kind == "c":
            lam = lam + 1j * rng.uniform(-1, 1, n)
        t = np.diag(lam) + np.triu(random_array(rng, (n, n), dtype), 1) * 0.2 / np.sqrt(n)
        return (q @ t @ q.conj().T).astype(dtype)
    lo, hi = (0.5, 3.0) if kind == "rhp" else (-3.0, -0.5)
    return matrix_with_spectrum(rng, n, lo, hi, dtype)


@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from(SIZES),
       kind=st.sampled_from(sorted(SPECTRA)), dtype=st.sampled_from(ALL_DTYPES),
       method=st.sampled_from(["auto", "sign", "schur"]))
def test_solve_lyapunov_matches_scipy(seed, n, kind, dtype, method):
    rng = np.random.default_rng(seed)
    a = lyapunov_matrix(rng, n, kind, dtype)
    q = random_array(rng, (n, n), dtype)
    applies = kind != "mixed" or len(set(np.sign(np.linalg.eigvals(as_host(a)).real))) == 1
    if method == "sign" and not applies:
        with pytest.raises(LinAlgError, match="half-plane"):
            solve_lyapunov(a, q, method=method)
        return
    x = solve_lyapunov(a, q, method=method)
    assert x.dtype == np.dtype(dtype)
    assert sylvester_backward_error(a, a.conj().T, q, x) <= bound(dtype, n, n)
    ref = scipy.linalg.solve_continuous_lyapunov(as_host(a), as_host(q))
    assert max_relative_error(x, ref) <= bound(dtype, n, n) * 15 * np.sqrt(n)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_lyapunov_sign_uses_hermitian_structure(dtype):
    rng = np.random.default_rng(3)
    a = matrix_with_spectrum(rng, 30, -3.0, -0.5, dtype)
    q = random_array(rng, (30, 30), dtype)
    q = q + q.conj().T
    x, info = solve_lyapunov(a, q, method="sign", return_info=True)
    assert info.method == "sign"
    assert sylvester_backward_error(a, a.conj().T, q, x) <= bound(dtype, 30, 30)
    assert max_relative_error(x, x.conj().T) <= bound(dtype, 30, 30) * 10


@given(seed=st.integers(0, 2**32 - 1), shapes=st.sampled_from([
    ((3, 1), (2,), ()), ((2,), (), (4, 2)), ((), (3,), (3,)), ((1, 2), (2, 1), (2,))]),
    method=st.sampled_from(["auto", "sign", "schur"]))
def test_batches_broadcast_like_a_loop(seed, shapes, method):
    rng = np.random.default_rng(seed)
    sa, sb, sc = shapes
    n, m = 4, 3
    a = np.stack([matrix_with_spectrum(rng, n, 0.5, 3.0) for _ in range(int(np.prod(sa)))])
    b = np.stack([matrix_with_spectrum(rng, m, 0.5, 3.0) for _ in range(int(np.prod(sb)))])
    a, b = a.reshape(*sa, n, n), b.reshape(*sb, m, m)
    c = random_array(rng, (*sc, n, m))
    x = solve_sylvester(a, b, c, method=method)
    ref = loop_batch(scipy.linalg.solve_sylvester, a, b, c, core_ndims=(2, 2, 2))
    assert x.shape == ref.shape
    assert max_relative_error(x, ref) <= 1e-12


@pytest.mark.parametrize("dtype", ["float64", "complex64"])
def test_numba_stack_kernel_matches_reference(dtype):
    rng = np.random.default_rng(11)
    a, b, c = problem(rng, 12, 7, "rhp", dtype, batch=(16,))
    a[3], b[3] = -a[3], -b[3]  # one problem in the left half-plane
    tol = 10 * eps(dtype)
    fast = implementation("sylvester", "sylvester_sign", np, backend="numba")
    ref = implementation("sylvester", "sylvester_sign", np, backend="reference")
    x1, s1 = fast(a, b, c, tol=tol, max_iter=100)
    x2, s2 = ref(a, b, c, tol=tol, max_iter=100)
    assert s1["converged"].all() and s1["halfplane"].all()
    assert s2["converged"].all() and s2["halfplane"].all()
    assert max_relative_error(x1, x2) <= 100 * eps(dtype)
    assert sylvester_backward_error(a, b, c, x1) <= bound(dtype, 12, 7)
    # Lyapunov form (B = Aᴴ) of the kernel.
    q = random_array(rng, (16, 12, 12), dtype)
    x1, s1 = fast(a, None, q, tol=tol, max_iter=100)
    assert s1["converged"].all()
    assert sylvester_backward_error(a, np.conj(np.swapaxes(a, -1, -2)), q, x1) <= bound(dtype, 12, 12)


def test_large_stack_of_small_problems_uses_the_kernel_and_is_right():
    rng = np.random.default_rng(5)
    a, b, c = problem(rng, 16, 16, "lhp", "float64", batch=(40,))
    x, info = solve_sylvester(a, b, c, return_info=True)
    assert info.method == "sign" and info.extra["iterations"].shape == (40,)
    check_against_scipy(a, b, c, x, "float64")


@settings(max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from((1, 3, 9)), m=st.sampled_from((2, 9)),
       kind=st.sampled_from(sorted(SPECTRA)), dtype=st.sampled_from(["float64", "complex64"]),
       lyapunov=st.booleans())
def test_stack_kernel_on_random_spectra(seed, n, m, kind, dtype, lyapunov):
    """Stacks of 8 (the kernel's smallest) through ``auto``: sign where it applies,
    Schur for the rest, every X accurate. (The two dtypes whose kernels the tests above
    compile anyway: each further one costs seconds of Numba compilation in CI.)"""
    rng = np.random.default_rng(seed)
    a, b, c = problem(rng, n, m, kind, dtype, batch=(8,))
    if lyapunov:
        q = random_array(rng, (8, n, n), dtype)
        a = np.stack([lyapunov_matrix(rng, n, kind, dtype) for _ in range(8)])
        x = solve_lyapunov(a, q)
        assert sylvester_backward_error(a, np.conj(np.swapaxes(a, -1, -2)), q, x) <= bound(dtype, n, n)
        return
    x = solve_sylvester(a, b, c)
    check_against_scipy(a, b, c, x, dtype)


@pytest.mark.parametrize("tail_switch,max_sweeps", [(0.0, 12), (1e-2, 1), (0.99, 12)])
def test_numba_tail_sweeps_and_their_fallback_to_newton(tail_switch, max_sweeps):
    """No sweeps at all; sweeps that can never finish (one allowed), so Newton takes over
    each time; sweeps started far from ±I. All must give the same accurate X."""
    from structla.sylvester import _numba, _reference

    rng = np.random.default_rng(22)
    count = 8
    a, b, c = problem(rng, 20, 13, "rhp", "float64", batch=(count,))
    a[2], b[2] = -a[2], -b[2]
    x = np.full_like(c, np.nan)
    iterations = np.zeros(count, dtype=np.int64)
    converged = np.zeros(count, dtype=bool)
    stats = np.zeros((count, 4))
    _numba._sign_stack(a, b, c, x, iterations, converged, stats, 0, count, 10 * eps("float64"),
                       100, False, _reference.SCALING_OFF, tail_switch, max_sweeps)
    assert converged.all()
    check_against_scipy(a, b, c, x, "float64")
    # Sweeps started early leave the blocks only near ±I; the half-plane test allows that.
    assert (np.abs(np.abs(stats[:, 0]) - 20) < 0.5).all()
    assert (np.abs(np.abs(stats[:, 1]) - 13) < 0.5).all()
    assert (np.sign(stats[:, 0]) == [1, 1, -1, 1, 1, 1, 1, 1]).all()
    assert (stats[:, 2] <= bound("float64", 20, 13)).all()


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
@pytest.mark.parametrize("lyap", [False, True])
def test_numba_residual_and_separation_match_the_reference(dtype, lyap):
    from structla.sylvester import _numba, _reference

    rng = np.random.default_rng(23)
    a, b, c = problem(rng, 7, 7, "rhp", dtype)
    x = random_array(rng, (7, 7), dtype)
    t, u = np.empty_like(c), np.empty_like(c)
    backward, separation = _numba._frobenius_stats(a, b, c, x, t, u, lyap)
    bm = None if lyap else b[None]
    assert backward == pytest.approx(float(_reference.backward_error(a[None], bm, c[None], x[None], np)[0]),
                                     rel=1e-12)
    assert separation == pytest.approx(
        float(_reference.separation_estimate(a[None], bm, c[None], x[None], np)[0]), rel=1e-12)
    assert _numba._frobenius_stats(a, b, 0 * c, x, t, u, lyap)[1] == 0.0
    assert _numba._frobenius_stats(a, b, c, 0 * x, t, u, lyap)[1] == np.inf


def test_stack_with_mixed_spectra_redoes_only_those_problems():
    rng = np.random.default_rng(24)
    a, b, c = problem(rng, 10, 10, "rhp", "float64", batch=(12,))
    # One eigenvalue of A[5] far in the left half-plane (|λ(A) + λ(B)| ≥ 3 still).
    a[5] = np.diag([1.0, 2.0, -5.0, 3.0, 1.0, 2.0, 1.2, 2.2, 0.8, 1.7]) \
        + np.triu(rng.standard_normal((10, 10)), 1) * 0.1
    x, info = solve_sylvester(a, b, c, return_info=True)
    assert info.method == "sign+schur"
    check_against_scipy(a, b, c, x, "float64")


def test_inaccurate_sign_result_is_redone_on_the_cpu(monkeypatch):
    """``auto`` checks the sign method's backward error: with an impossible bound every
    problem goes to Schur, for single problems and for the stack kernel."""
    from structla.sylvester import _api

    monkeypatch.setattr(_api, "ACCEPT", 0.0)
    rng = np.random.default_rng(25)
    for batch in ((), (10,)):
        a, b, c = problem(rng, 6, 5, "rhp", "float64", batch=batch)
        x, info = solve_sylvester(a, b, c, return_info=True)
        assert info.method == "schur"
        check_against_scipy(a, b, c, x, "float64")


# ---- honest failure ------------------------------------------------------------------


def common_eigenvalue_problem(gap: float, n: int = 4):
    """gh-23066 style: A and -B share eigenvalues up to ``gap`` (non-normal, rotated)."""
    rng = np.random.default_rng(23066)
    q1, _ = np.linalg.qr(rng.standard_normal((n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.arange(1.0, n + 1)
    a = q1 @ (np.diag(lam) + np.triu(rng.standard_normal((n, n)), 1) * 0.3) @ q1.T
    mu = -lam + gap
    b = q2 @ (np.diag(mu) + np.triu(rng.standard_normal((n, n)), 1) * 0.3) @ q2.T
    c = rng.standard_normal((n, n))
    return a, b, c


@pytest.mark.parametrize("method", ["auto", "schur"])
def test_common_eigenvalue_raises(method):
    a, b, c = common_eigenvalue_problem(0.0)
    # SciPy returns an X that does not solve the equation, without a word (gh-23066).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x_scipy = scipy.linalg.solve_sylvester(a, b, c)
    assert sylvester_backward_error(a, b, c, x_scipy) > 1e-6 or not np.isfinite(x_scipy).all() \
        or np.abs(x_scipy).max() > 1e10
    with pytest.raises(LinAlgError, match="common eigenvalue"):
        solve_sylvester(a, b, c, method=method)


def test_common_eigenvalue_sign_method_names_the_half_plane_condition():
    a, b, c = common_eigenvalue_problem(0.0)
    with pytest.raises(LinAlgError, match="half-plane"):
        solve_sylvester(a, b, c, method="sign")


@pytest.mark.parametrize("method", ["auto", "schur"])
def test_near_common_eigenvalue_warns_with_separation(method):
    a, b, c = common_eigenvalue_problem(1e-10)
    with pytest.warns(IllConditionedWarning, match=r"sep\(A, -B\).*= \d\.\d\de-"):
        x = solve_sylvester(a, b, c, method=method)
    assert np.isfinite(x).all()


def axis_problem(eig: float, n: int = 5):
    """A and B in the closed right half-plane with one eigenvalue ``eig`` each: sep ≈ 2·eig."""
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.linspace(1.0, 3.0, n)
    lam[0] = eig
    a = q @ (np.diag(lam) + np.triu(rng.standard_normal((n, n)), 1) * 0.2) @ q.T
    b = a.T.copy()
    return a, b, rng.standard_normal((n, n))


@pytest.mark.parametrize("method", ["sign", "auto", "schur"])
def test_eigenvalues_near_the_axis_warn(method):
    a, b, c = axis_problem(1e-10)
    with pytest.warns(IllConditionedWarning, match="nearly common"):
        x, info = solve_sylvester(a, b, c, method=method, return_info=True)
    assert info.extra["separation"] < 1e-8
    assert sylvester_backward_error(a, b, c, x) <= 1e-12


@pytest.mark.parametrize("method", ["sign", "auto", "schur"])
def test_zero_eigenvalue_in_both_is_singular(method):
    a, b, c = axis_problem(0.0)
    with pytest.raises(LinAlgError):
        solve_sylvester(a, b, c, method=method)


def test_lyapunov_with_imaginary_axis_eigenvalue_is_singular():
    a = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -2.0]])
    q = np.eye(3)
    for method in ("sign", "auto", "schur"):
        with pytest.raises(LinAlgError):
            solve_lyapunov(a, q, method=method)


def test_sign_not_converged_is_reported():
    rng = np.random.default_rng(0)
    a, b, c = problem(rng, 6, 6, "rhp", "float64")
    with pytest.raises(LinAlgError, match="did not converge"):
        solve_sylvester(a, b, c, method="sign", max_iter=2)


# ---- API details -----------------------------------------------------------------------


def test_info_fields():
    rng = np.random.default_rng(1)
    a, b, c = problem(rng, 8, 5, "rhp", "float64", batch=(2, 3))
    _, info = solve_sylvester(a, b, c, return_info=True)
    assert isinstance(info, structla.IterationInfo)
    assert info.converged and info.method == "sign" and 1 <= info.iterations <= 20
    assert info.extra["backward_error"].shape == (2, 3)
    assert info.error_estimate == pytest.approx(info.extra["backward_error"].max())
    assert info.error_estimate <= 1e-14


@pytest.mark.parametrize("n,m,batch", [(0, 3, ()), (3, 0, ()), (0, 0, (2,)), (3, 2, (0,))])
@pytest.mark.parametrize("method", ["auto", "sign", "schur"])
def test_empty(n, m, batch, method):
    a = np.eye(n) + np.zeros((*batch, n, n))
    b = np.eye(m) + np.zeros((*batch, m, m))
    c = np.zeros((*batch, n, m), dtype=np.float32)
    x = solve_sylvester(a, b, c, method=method)
    assert x.shape == (*batch, n, m) and x.dtype == np.float64


def test_dtype_promotion_and_integers():
    a = np.array([[2, 1], [0, 3]])
    b = np.array([[1, 0], [1, 2]])
    c = np.array([[1, 2], [3, 4]])
    x = solve_sylvester(a, b, c)
    assert x.dtype == np.float64
    assert np.allclose(x, scipy.linalg.solve_sylvester(a, b, c), rtol=1e-13)
    x32 = solve_sylvester(a.astype(np.float32), b.astype(np.float32), c.astype(np.complex64))
    assert x32.dtype == np.complex64
    x16 = solve_sylvester(a.astype(np.float16), b.astype(np.float16), c.astype(np.float16))
    assert x16.dtype == np.float16 and np.allclose(x16, x, rtol=1e-2)


def test_bad_input():
    a, b, c = np.eye(3), np.eye(2), np.ones((3, 2))
    with pytest.raises(ValueError, match="'A'"):
        solve_sylvester(np.ones((3, 2)), b, c)
    with pytest.raises(ValueError, match="'B'"):
        solve_sylvester(a, np.ones((2, 3)), c)
    with pytest.raises(ValueError, match="'C'"):
        solve_sylvester(a, b, np.ones((2, 2)))
    with pytest.raises(ValueError, match="'C'"):
        solve_sylvester(a, b, np.ones(3))
    with pytest.raises(ValueError, match="method"):
        solve_sylvester(a, b, c, method="bartels")
    with pytest.raises(ValueError, match="batch"):
        solve_sylvester(np.stack([a] * 3), np.stack([b] * 2), c)
    with pytest.raises(ValueError, match="'Q'"):
        solve_lyapunov(a, np.ones((3, 2)))
    with pytest.raises(ValueError, match="tol"):
        solve_sylvester(a, b, c, tol=0.0)
    bad = c.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"'C'.*infs or NaNs"):
        solve_sylvester(a, b, bad)
    with pytest.raises(ValueError, match="'Q'"):
        solve_lyapunov(a, np.full((3, 3), np.inf))
    with pytest.raises(TypeError, match="dtype"):
        solve_sylvester(a.astype(object), b, c)


def test_nan_without_check_finite_raises_instead_of_returning_nan():
    a, b, c = np.eye(3) * 2, np.eye(2), np.ones((3, 2))
    a[0, 0] = np.nan
    with pytest.raises(LinAlgError):
        solve_sylvester(a, b, c, check_finite=False, method="sign")


def test_read_only_non_contiguous_inputs_unchanged():
    rng = np.random.default_rng(4)
    a, b, c = problem(rng, 9, 6, "rhp", "float64")
    big_a = np.zeros((18, 18))
    big_a[::2, ::2] = a
    a_view = big_a[::2, ::2]
    c_f = np.asfortranarray(c)
    for x in (a_view, b, c_f):
        x.setflags(write=False)
    copies = [x.copy() for x in (a_view, b, c_f)]
    for method in ("auto", "sign", "schur"):
        x = solve_sylvester(a_view, b, c_f, method=method)
        assert max_relative_error(x, scipy.linalg.solve_sylvester(a, b, c)) <= 1e-13
    for x, y in zip((a_view, b, c_f), copies, strict=True):
        assert np.array_equal(x, y)


def test_huge_and_tiny_scales():
    rng = np.random.default_rng(8)
    a, b, c = problem(rng, 10, 10, "rhp", "float64")
    for s in (1e-150, 1e150):
        x = solve_sylvester(a * s, b * s, c)
        assert max_relative_error(x * s, scipy.linalg.solve_sylvester(a, b, c)) <= 1e-12


# ---- GPU -------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("kind", ["rhp", "lhp"])
def test_gpu_matches_cpu(cp, dtype, kind):
    rng = np.random.default_rng(9)
    a, b, c = problem(rng, 48, 33, kind, dtype, batch=(3,))
    x_gpu, info = solve_sylvester(cp.asarray(a), cp.asarray(b), cp.asarray(c), return_info=True)
    assert isinstance(x_gpu, cp.ndarray) and x_gpu.dtype == np.dtype(dtype)
    assert info.method == "sign"
    x_cpu = solve_sylvester(a, b, c, method="schur")
    assert sylvester_backward_error(a, b, c, x_gpu) <= bound(dtype, 48, 33)
    assert max_relative_error(x_gpu, x_cpu) <= bound(dtype, 48, 33) * 15 * np.sqrt(48)


@pytest.mark.gpu
def test_gpu_large_single_problem(cp):
    rng = np.random.default_rng(10)
    a, b, c = problem(rng, 300, 200, "rhp", "float64")
    x = solve_sylvester(cp.asarray(a), cp.asarray(b), cp.asarray(c), method="sign")
    assert max_relative_error(x, scipy.linalg.solve_sylvester(a, b, c)) <= 1e-11


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "complex128"])
def test_gpu_lyapunov(cp, dtype):
    rng = np.random.default_rng(12)
    a = matrix_with_spectrum(rng, 40, -3.0, -0.5, dtype)
    q = random_array(rng, (40, 40), dtype)
    x = solve_lyapunov(cp.asarray(a), cp.asarray(q))
    assert isinstance(x, cp.ndarray) and x.dtype == np.dtype(dtype)
    ref = scipy.linalg.solve_continuous_lyapunov(as_host(a), as_host(q))
    assert max_relative_error(x, ref) <= bound(dtype, 40, 40) * 100


@pytest.mark.gpu
def test_gpu_errors_name_the_condition(cp):
    rng = np.random.default_rng(13)
    a, b, c = problem(rng, 10, 8, "mixed", "float64")
    ga, gb, gc = cp.asarray(a), cp.asarray(b), cp.asarray(c)
    with pytest.raises(LinAlgError, match="half-plane"):
        solve_sylvester(ga, gb, gc)
    with pytest.raises(ValueError, match="schur"):
        solve_sylvester(ga, gb, gc, method="schur")
    with pytest.raises(TypeError, match="different array"):
        solve_sylvester(ga, b, gc)
    za, zb, zc = common_eigenvalue_problem(0.0)
    with pytest.raises(LinAlgError):
        solve_sylvester(cp.asarray(za), cp.asarray(zb), cp.asarray(zc))
    aa, ab, ac = axis_problem(0.0)
    with pytest.raises(LinAlgError):
        solve_sylvester(cp.asarray(aa), cp.asarray(ab), cp.asarray(ac))


@pytest.mark.gpu
def test_gpu_auto_checks_the_backward_error(cp, monkeypatch):
    """With an impossible bound on the backward error (measured on the device), ``auto``
    on the GPU must refuse X and say why."""
    from structla.sylvester import _api

    rng = np.random.default_rng(15)
    a, b, c = problem(rng, 20, 12, "rhp", "float64")
    ga, gb, gc = cp.asarray(a), cp.asarray(b), cp.asarray(c)
    solve_sylvester(ga, gb, gc)
    monkeypatch.setattr(_api, "ACCEPT", 0.0)
    with pytest.raises(LinAlgError, match="backward error"):
        solve_sylvester(ga, gb, gc)
    assert isinstance(solve_sylvester(ga, gb, gc, method="sign"), cp.ndarray)


@pytest.mark.gpu
def test_gpu_empty_and_inputs_unchanged(cp):
    x = solve_sylvester(cp.eye(3), cp.eye(0), cp.zeros((3, 0)))
    assert x.shape == (3, 0) and isinstance(x, cp.ndarray)
    rng = np.random.default_rng(14)
    a, b, c = problem(rng, 20, 20, "rhp", "float32", batch=(2,))
    ga, gb, gc = cp.asarray(a), cp.asarray(b[0]), cp.asarray(c)
    before = [v.copy() for v in (ga, gb, gc)]
    solve_sylvester(ga, gb, gc)
    for v, w in zip((ga, gb, gc), before, strict=True):
        assert bool((v == w).all())

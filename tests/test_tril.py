"""tril: diagonal + low-rank triangular matrices against dense float64 oracles (MATH A, F3–F4)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.linalg
from hypothesis import given
from hypothesis import strategies as st
from oracles import as_host, loop_batch, max_relative_error, tril_dlr_dense_oracle
from strategies import ALL_DTYPES, batch_shapes, eps, random_array, seeds

import structla
from structla._core.dispatch import implementation
from structla.tril import _numba, _reference

SIZES = (0, 1, 2, 7, 64, 65, 300)
RANKS = (1, 8, 64)


def make_operands(rng, n, d, dtype, batch=(), decay=False):
    """Well-scaled random operands: |λ| ∈ [1, 2], ‖q_i‖ ≈ 0.5, ‖k_i‖ ≈ 1."""
    dtype = np.dtype(dtype)
    diag = (1 + rng.random((*batch, n))) * rng.choice([-1.0, 1.0], (*batch, n))
    if dtype.kind == "c":
        diag = diag * np.exp(1j * rng.uniform(0, 2 * np.pi, diag.shape))
    diag = diag.astype(dtype)
    q = random_array(rng, (*batch, n, d), dtype, scale=0.5 / np.sqrt(d))
    k = random_array(rng, (*batch, n, d), dtype, scale=1 / np.sqrt(d))
    log_decay = -rng.random((*batch, n)).astype(diag.real.dtype) if decay else None
    return diag, q, k, log_decay


def same_ndim(a, b):
    """Pad two batch shapes to one length: a vector right-hand side has ``b.ndim == diag.ndim``."""
    size = max(len(a), len(b))
    return (1,) * (size - len(a)) + tuple(a), (1,) * (size - len(b)) + tuple(b)


def dense_oracle(diag, q, k, log_decay=None):
    """Batched :func:`tril_dlr_dense_oracle` (float64/complex128)."""
    if log_decay is None:
        return loop_batch(tril_dlr_dense_oracle, diag, q, k, core_ndims=(1, 2, 2))
    return loop_batch(tril_dlr_dense_oracle, diag, q, k, log_decay, core_ndims=(1, 2, 2, 1))


def abs_scale(diag, q, k, log_decay, x, trans):
    """``|Λ||x| + tril(|Q||K|ᵀ ⊙ Γ)|x|`` in max norm: what rounding in a substitution is relative to."""
    absolute = dense_oracle(np.abs(as_host(diag)), np.abs(as_host(q)), np.abs(as_host(k)), log_decay)
    if trans != "N":
        absolute = np.swapaxes(absolute, -1, -2)
    return float(np.abs(absolute @ np.abs(as_host(x))).max(initial=0.0))


def oracle_op(dense, trans):
    if trans == "N":
        return dense
    dense = np.swapaxes(dense, -1, -2)
    return dense.conj() if trans == "C" else dense


# ---------------------------------------------------------------------------------------------
# Property tests against the dense float64 oracle (Must show 1)


@given(n=st.sampled_from(SIZES), d=st.sampled_from(RANKS), m=st.sampled_from([None, 1, 5]),
       dtype=st.sampled_from(ALL_DTYPES), trans=st.sampled_from(["N", "T", "C"]), decay=st.booleans(),
       shapes=batch_shapes(max_dims=2, max_side=2), seed=seeds())
def test_solve_residual(n, d, m, dtype, trans, decay, shapes, seed):
    rng = np.random.default_rng(seed)
    batch_t, batch_b = same_ndim(*shapes)
    diag, q, k, log_decay = make_operands(rng, n, d, dtype, batch_t, decay)
    b = random_array(rng, (*batch_b, n) if m is None else (*batch_b, n, m), dtype)
    before = [a.copy() for a in (diag, q, k, b)]
    x = structla.tril_dlr_solve(diag, q, k, b, trans=trans, log_decay=log_decay)
    for a, a0 in zip((diag, q, k, b), before):
        np.testing.assert_array_equal(a, a0)
    batch = np.broadcast_shapes(batch_t, batch_b)
    assert x.dtype == np.dtype(dtype)
    assert x.shape == (*batch, n) + (() if m is None else (m,))
    t = oracle_op(dense_oracle(diag, q, k, log_decay), trans)
    xh = as_host(x)
    xm = xh[..., None] if m is None else xh
    bm = as_host(b)[..., None] if m is None else as_host(b)
    residual = float(np.abs(t @ xm - bm).max(initial=0.0))
    scale = abs_scale(diag, q, k, log_decay, xm, trans) + float(np.abs(bm).max(initial=0.0))
    assert residual <= 8 * (n + d) * eps(dtype) * scale, (residual, scale)


@given(n=st.sampled_from(SIZES), d=st.sampled_from(RANKS), m=st.sampled_from([None, 1, 5]),
       dtype=st.sampled_from(ALL_DTYPES), trans=st.sampled_from(["N", "T", "C"]), decay=st.booleans(),
       shapes=batch_shapes(max_dims=2, max_side=2), seed=seeds())
def test_matmul_against_dense(n, d, m, dtype, trans, decay, shapes, seed):
    rng = np.random.default_rng(seed)
    batch_t, batch_x = same_ndim(*shapes)
    diag, q, k, log_decay = make_operands(rng, n, d, dtype, batch_t, decay)
    x = random_array(rng, (*batch_x, n) if m is None else (*batch_x, n, m), dtype)
    y = structla.tril_dlr_matmul(diag, q, k, x, trans=trans, log_decay=log_decay)
    assert y.dtype == np.dtype(dtype)
    t = oracle_op(dense_oracle(diag, q, k, log_decay), trans)
    xm = as_host(x)[..., None] if m is None else as_host(x)
    expected = t @ xm
    expected = expected[..., 0] if m is None else expected
    assert y.shape == expected.shape
    error = float(np.abs(as_host(y) - expected).max(initial=0.0))
    assert error <= 8 * (n + d) * eps(dtype) * abs_scale(diag, q, k, log_decay, xm, trans) + 1e-300


@given(n=st.sampled_from(SIZES), d=st.sampled_from(RANKS), dtype=st.sampled_from(ALL_DTYPES),
       decay=st.booleans(), shapes=batch_shapes(max_dims=1, max_side=2), seed=seeds())
def test_inv_and_dense_against_oracle(n, d, dtype, decay, shapes, seed):
    rng = np.random.default_rng(seed)
    diag, q, k, log_decay = make_operands(rng, n, d, dtype, shapes[0], decay)
    t = dense_oracle(diag, q, k, log_decay)
    dense = structla.tril_dlr_dense(diag, q, k, log_decay=log_decay)
    assert dense.dtype == np.dtype(dtype) and dense.shape == t.shape
    assert max_relative_error(dense, t) <= 8 * (n + d) * eps(dtype)
    y = structla.tril_dlr_inv(diag, q, k, log_decay=log_decay)
    assert y.dtype == np.dtype(dtype) and y.shape == t.shape
    if n:
        yh = as_host(y)
        np.testing.assert_array_equal(np.triu(yh, 1), 0)
        residual = np.abs(yh @ t - np.eye(n)).max()
        scale = np.abs(yh).max() * np.abs(t).max()
        assert residual <= 8 * (n + d) * n * eps(dtype) * scale
        cond = np.linalg.cond(t.reshape(-1, n, n)).max()
        assert max_relative_error(y, np.linalg.inv(t)) <= 1e3 * n * eps(dtype) * cond


@given(c=st.sampled_from([1, 2, 16, 64, 65]), d=st.sampled_from([1, 8, 64]),
       dtype=st.sampled_from(ALL_DTYPES), decay=st.booleans(), shapes=batch_shapes(max_dims=2, max_side=2),
       seed=seeds())
def test_ut_transform_against_dense(c, d, dtype, decay, shapes, seed):
    rng = np.random.default_rng(seed)
    k = random_array(rng, (*shapes[0], c, d), dtype)
    k /= np.linalg.norm(k, axis=-1, keepdims=True).astype(k.real.dtype)
    beta = (2 * rng.random((*shapes[1], c))).astype(np.empty(0, dtype).real.dtype)
    log_decay = -rng.random(c) if decay else None
    out = structla.ut_transform(k, beta, log_decay=log_decay)
    batch = np.broadcast_shapes(shapes[0], shapes[1])
    assert out.shape == (*batch, c, c) and out.dtype == np.dtype(dtype)
    kb = np.broadcast_to(as_host(k), (*batch, c, d))
    bb = np.broadcast_to(as_host(beta), (*batch, c))
    system = dense_oracle(np.ones((*batch, c)), bb[..., None] * kb, kb, log_decay)
    expected = np.linalg.inv(system) * bb[..., None, :]
    # unit real keys and β ∈ [0, 2]: entries of the inverse are bounded by β_i (MATH A6), so
    # absolute error; complex keys enter unconjugated (I - β k kᵀ is no contraction, entries reach
    # 1e8 for c = 64, d = 1), so there the error is relative to the largest entry
    scale = 1.0 if np.isrealobj(expected) else max(1.0, np.abs(expected).max(initial=0))
    assert np.abs(as_host(out) - expected).max(initial=0) <= 16 * c * d * eps(dtype) * scale


# ---------------------------------------------------------------------------------------------
# Fast path == reference == chunked, batched == loop (Must show 2)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("decay", [False, True])
def test_numba_reference_chunked_agree(dtype, decay):
    rng = np.random.default_rng(7)
    n, d, m = 97, 6, 4
    diag, q, k, log_decay = make_operands(rng, n, d, dtype, (3,), decay)
    b = random_array(rng, (3, n, m), dtype)
    tol = 64 * n * eps(dtype)
    ref = _reference.tril_dlr_solve(diag, q, k, b, log_decay)
    fast = _numba.tril_dlr_solve(diag, q, k, b, log_decay, method="recursive")
    assert max_relative_error(fast, ref) <= tol
    for chunk in (1, 7, 16, 64, n, 2 * n):
        chunked = _numba.tril_dlr_solve(diag, q, k, b, log_decay, method="chunked", chunk=chunk)
        assert max_relative_error(chunked, ref) <= tol, chunk
    assert max_relative_error(_numba.tril_dlr_matmul(diag, q, k, b, log_decay),
                              _reference.tril_dlr_matmul(diag, q, k, b, log_decay)) <= tol
    ref_inv = _reference.tril_dlr_inv(diag, q, k, log_decay)
    assert max_relative_error(_numba.tril_dlr_inv(diag, q, k, log_decay, method="recursive"), ref_inv) <= tol
    for chunk in (1, 7, 32, 64, n):
        inv = _numba.tril_dlr_inv(diag, q, k, log_decay, method="chunked", chunk=chunk)
        assert max_relative_error(inv, ref_inv) <= tol, chunk
    assert max_relative_error(_numba.tril_dlr_dense(diag, q, k, log_decay),
                              _reference.tril_dlr_dense(diag, q, k, log_decay)) <= tol
    beta = rng.random((3, n)).astype(np.empty(0, dtype).real.dtype)
    assert max_relative_error(_numba.ut_transform(k, beta.astype(dtype), log_decay),
                              _reference.ut_transform(k, beta.astype(dtype), log_decay)) <= tol


def test_auto_paths_large(monkeypatch):
    """The size-picked paths (chunked solve, chunked inverse) on sizes that select them."""
    rng = np.random.default_rng(8)
    n, d, m = 400, 32, 40
    diag, q, k, log_decay = make_operands(rng, n, d, "float64", (), True)
    b = random_array(rng, (n, m))
    t = tril_dlr_dense_oracle(diag, q, k, log_decay)
    x = structla.tril_dlr_solve(diag, q, k, b, log_decay=log_decay)
    assert max_relative_error(x, scipy.linalg.solve_triangular(t, b, lower=True)) <= 1e-11
    y = structla.tril_dlr_inv(diag, q, k, log_decay=log_decay)
    assert max_relative_error(y, np.linalg.inv(t)) <= 1e-11
    monkeypatch.setenv("STRUCTLA_BACKEND", "reference")
    assert max_relative_error(structla.tril_dlr_solve(diag, q, k, b, log_decay=log_decay), x) <= 1e-12


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_inverse_tree_shapes(dtype):
    """The CPU merge-tree inverse for every shape of tree against the dense inverse.

    Leaf sizes from 1 to n: full pairs only (96/32, 256/64), an irregular last pair (97/32,
    300/64), an odd block count passed up a level (161/32, 300/7), one leaf (300/300).
    """
    rng = np.random.default_rng(19)
    for n, leaf in ((2, 1), (5, 2), (96, 32), (97, 32), (161, 32), (256, 64), (300, 7), (300, 64),
                    (300, 300)):
        decay = leaf % 2 == 0
        diag, q, k, log_decay = make_operands(rng, n, 5, dtype, (2,), decay)
        t = dense_oracle(diag, q, k, log_decay)
        g = None if log_decay is None else np.maximum(log_decay, -1e4)
        y = _numba.tril_dlr_inv(diag, q, k, g, method="chunked", chunk=leaf)
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(np.triu(y, 1), 0)
        cond = np.linalg.cond(t).max()
        assert max_relative_error(y, np.linalg.inv(t)) <= 100 * n * eps(dtype) * cond, (n, leaf)


def test_batched_equals_loop():
    rng = np.random.default_rng(9)
    diag, q, k, log_decay = make_operands(rng, 20, 3, "float64", (2, 1), True)
    b = random_array(rng, (1, 3, 20, 2))
    x = structla.tril_dlr_solve(diag, q, k, b, trans=True, log_decay=log_decay)
    looped = loop_batch(lambda *a: structla.tril_dlr_solve(*a[:4], trans=True, log_decay=a[4]),
                        diag, q, k, b, log_decay, core_ndims=(1, 2, 2, 2, 1))
    np.testing.assert_allclose(x, looped, rtol=1e-13, atol=1e-13)
    y = structla.tril_dlr_inv(diag, q, k, log_decay=log_decay)
    looped = loop_batch(lambda *a: structla.tril_dlr_inv(*a[:3], log_decay=a[3]), diag, q, k, log_decay,
                        core_ndims=(1, 2, 2, 1))
    np.testing.assert_allclose(y, looped, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------------------------
# MATH A numerics: decay safety, DeltaNet regime (Must show 3)


def test_long_decay_is_finite_and_exact():
    """log-decays summing to -10⁴ (and -inf resets): no overflow, no NaN, exact against the oracle."""
    rng = np.random.default_rng(10)
    n, d = 600, 4
    diag, q, k, _ = make_operands(rng, n, d, "float64")
    log_decay = np.full(n, -1e4 / n)
    log_decay[100] = -np.inf
    b = random_array(rng, (n, 3))
    t = tril_dlr_dense_oracle(diag, q, k, np.maximum(log_decay, -1e4))
    for dtype in ("float32", "float64"):
        for method in ("recursive", "chunked"):
            x = _numba.tril_dlr_solve(diag[None].astype(dtype), q[None].astype(dtype), k[None].astype(dtype),
                                      b[None].astype(dtype), np.maximum(log_decay, -1e4)[None].astype(dtype),
                                      method=method, chunk=64)
            assert np.isfinite(x).all()
        x = structla.tril_dlr_solve(diag.astype(dtype), q.astype(dtype), k.astype(dtype), b.astype(dtype),
                                    log_decay=log_decay)
        assert np.isfinite(x).all()
        assert max_relative_error(x, scipy.linalg.solve_triangular(t, b, lower=True)) <= 100 * n * eps(dtype)
        y = structla.tril_dlr_inv(diag.astype(dtype), q.astype(dtype), k.astype(dtype), log_decay=log_decay)
        assert np.isfinite(y).all()
        assert max_relative_error(y, np.linalg.inv(t)) <= 100 * n * eps(dtype)
    dense = structla.tril_dlr_dense(diag, q, k, log_decay=log_decay)
    assert np.isfinite(dense).all()
    assert max_relative_error(dense, t) <= 1e-12


def test_deltanet_inverse_bound():
    """Unit keys, β ∈ [0, 2]: |(T⁻¹)_ij| ≤ β_i‖k_i‖‖k_j‖ (MATH A6)."""
    rng = np.random.default_rng(11)
    n, d = 128, 16
    k = rng.standard_normal((20, n, d))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    beta = 2 * rng.random((20, n))
    y = structla.tril_dlr_inv(np.ones((20, n)), beta[..., None] * k, k)
    below = np.tril(np.abs(y), -1)
    bound = beta[..., :, None] * np.ones((1, 1, n))
    assert (below <= bound + 1e-12).all()
    assert below.max() > 0.1  # the bound is not vacuous for this data


def test_deltanet_counterexample():
    """MATH A6: d=1, k≡1, β=(0.7, 1, 0.5, 0.3); T⁻¹ is not diagonal + rank-1."""
    beta = np.array([0.7, 1.0, 0.5, 0.3])
    y = structla.tril_dlr_inv(np.ones(4), beta[:, None], np.ones((4, 1)))
    expected = [[1, 0, 0, 0], [-1, 1, 0, 0], [0, -0.5, 1, 0], [0, -0.15, -0.3, 1]]
    np.testing.assert_allclose(y, expected, atol=1e-15)


def test_raw_gaussian_keys_float32():
    """Raw Gaussian keys, d=64, β up to 2, C=64 (Must show 3).

    The exact inverse of such blocks grows like (β‖k‖²)^C: for this seed its largest entries
    are 3e34 … 2e45, so 8 of the 16 blocks are not representable in float32 at all. Every
    block whose exact values fit is finite (sums are carried in double precision, since
    partial sums overflow float32 before the answer does) and as accurate as float32 allows;
    the float64 path is exact against the dense oracle on all of them.
    """
    rng = np.random.default_rng(12)
    k = rng.standard_normal((16, 64, 64))
    beta = 2 * rng.random((16, 64))
    system = np.eye(64) + np.tril(beta[..., :, None] * (k @ np.swapaxes(k, -1, -2)), -1)
    reference = structla.ut_transform(k, beta)
    residual = np.abs(system @ reference - beta[..., None, :] * np.eye(64)).max(axis=(1, 2))
    assert (residual <= 1e-12 * np.abs(system).max(axis=(1, 2)) * np.abs(reference).max(axis=(1, 2))).all()
    with np.errstate(over="ignore", invalid="ignore"):
        out = structla.ut_transform(k.astype(np.float32), beta.astype(np.float32))
    fits = np.abs(reference).max(axis=(1, 2)) < np.finfo(np.float32).max
    assert fits.sum() == 8
    for i in np.flatnonzero(fits):
        assert np.isfinite(out[i]).all()
        assert max_relative_error(out[i], reference[i]) <= 1e-3


# ---------------------------------------------------------------------------------------------
# The operator class


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_trildlr_operator(dtype):
    rng = np.random.default_rng(13)
    diag, q, k, log_decay = make_operands(rng, 12, 3, dtype, (), True)
    op = structla.TrilDLR(diag, q, k, log_decay)
    dense = tril_dlr_dense_oracle(diag, q, k, log_decay)
    assert op.shape == (12, 12) and op.dtype == np.dtype(dtype)
    assert "TrilDLR" in repr(op)
    b = random_array(rng, (12, 2), dtype)
    np.testing.assert_allclose(op @ b, dense @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.solve(b), np.linalg.solve(dense, b), rtol=1e-10, atol=1e-12)
    for view, matrix in ((op.T, dense.T), (op.H, dense.conj().T), (op.T.T, dense), (op.H.H, dense),
                         (op.T.H, dense.conj())):
        np.testing.assert_allclose(view.todense(), matrix, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(view @ b, matrix @ b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(view.solve(b), np.linalg.solve(matrix, b), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(view.solve(b, trans=True), np.linalg.solve(matrix.T, b), rtol=1e-10,
                                   atol=1e-12)
        np.testing.assert_allclose(view.solve(b, trans="C"), np.linalg.solve(matrix.conj().T, b),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(view.inv(), np.linalg.inv(matrix), rtol=1e-10, atol=1e-12)
    sign, logabs = op.slogdet()
    ref_sign, ref_logabs = np.linalg.slogdet(dense)
    np.testing.assert_allclose([sign, logabs], [ref_sign, ref_logabs], rtol=1e-12)
    lin = op.aslinearoperator()
    v = random_array(rng, 12, dtype)
    np.testing.assert_allclose(lin.matvec(v), dense @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lin.rmatvec(v), dense.conj().T @ v, rtol=1e-12, atol=1e-12)
    x, info = scipy.sparse.linalg.gmres(lin, v, rtol=1e-13, atol=0, restart=12)
    assert info == 0
    np.testing.assert_allclose(x, op.solve(v), rtol=1e-8, atol=1e-10)


def test_trildlr_batched_slogdet_and_linearoperator_error():
    rng = np.random.default_rng(14)
    diag, q, k, _ = make_operands(rng, 5, 2, "float64", (3,))
    op = structla.TrilDLR(diag, q[0], k[0])
    sign, logabs = op.slogdet()
    ref = np.linalg.slogdet(dense_oracle(diag, np.broadcast_to(q[0], q.shape),
                                         np.broadcast_to(k[0], k.shape)))
    np.testing.assert_allclose(sign, ref[0])
    np.testing.assert_allclose(logabs, ref[1], rtol=1e-13)
    with pytest.raises(ValueError, match="unbatched"):
        op.aslinearoperator()


# ---------------------------------------------------------------------------------------------
# Bad input, edge cases, dtypes (Must show 4)


def test_shape_errors_name_the_argument():
    rng = np.random.default_rng(15)
    diag, q, k, _ = make_operands(rng, 5, 2, "float64")
    with pytest.raises(ValueError, match="core dimension 'n'"):
        structla.tril_dlr_solve(diag, q[:4], k, np.ones(5))
    with pytest.raises(ValueError, match="'d'"):
        structla.tril_dlr_solve(diag, q, k[:, :1], np.ones(5))
    with pytest.raises(ValueError, match="b"):
        structla.tril_dlr_solve(diag, q, k, np.ones((4, 2)))
    with pytest.raises(ValueError, match="'k'"):
        structla.tril_dlr_inv(diag, q, k[0])
    with pytest.raises(ValueError, match="broadcast"):
        structla.tril_dlr_solve(np.ones((2, 5)), np.ones((3, 5, 2)), k, np.ones((2, 5)))
    with pytest.raises(ValueError, match="log_decay"):
        structla.tril_dlr_solve(diag, q, k, np.ones(5), log_decay=np.zeros(4))
    with pytest.raises(ValueError, match="trans"):
        structla.tril_dlr_solve(diag, q, k, np.ones(5), trans="X")
    with pytest.raises(TypeError, match="log_decay"):
        structla.tril_dlr_solve(diag, q, k, np.ones(5), log_decay=np.zeros(5, complex))
    with pytest.raises(ValueError, match="beta"):
        structla.ut_transform(k, np.ones(4))


def test_nonfinite_and_singular():
    rng = np.random.default_rng(16)
    diag, q, k, _ = make_operands(rng, 6, 2, "float64")
    b = np.ones(6)
    for name in ("diag", "q", "k", "b"):
        args = {"diag": diag.copy(), "q": q.copy(), "k": k.copy(), "b": b.copy()}
        args[name].flat[args[name].size // 2] = np.nan  # an entry that reaches x
        with pytest.raises(ValueError, match=f"'{name}'"):
            structla.tril_dlr_solve(**args)
        if name != "diag":
            assert np.isnan(structla.tril_dlr_solve(**args, check_finite=False)).any()
    with pytest.raises(ValueError, match="log_decay"):
        structla.tril_dlr_solve(diag, q, k, b, log_decay=np.full(6, np.inf))
    zero = diag.copy()
    zero[3] = 0
    with pytest.raises(structla.LinAlgError, match="diagonal entry 3"):
        structla.tril_dlr_solve(zero, q, k, b)
    with pytest.raises(np.linalg.LinAlgError, match="diagonal entry 3"):
        structla.tril_dlr_inv(zero, q, k)
    with pytest.raises(structla.LinAlgError, match=r"diag\[1, 3\]"):
        structla.TrilDLR(np.stack([diag, zero]), q, k).solve(b[None])
    np.testing.assert_allclose(structla.tril_dlr_matmul(zero, q, k, b),
                               tril_dlr_dense_oracle(zero, q, k) @ b, rtol=1e-13)


def test_integer_readonly_noncontiguous_inputs():
    rng = np.random.default_rng(17)
    diag = np.arange(1, 9)
    q = rng.integers(-2, 3, (8, 3))
    k = rng.integers(-2, 3, (8, 3))
    b = rng.integers(-5, 5, 8)
    x = structla.tril_dlr_solve(diag, q, k, b)
    assert x.dtype == np.float64
    t = tril_dlr_dense_oracle(diag, q, k)
    np.testing.assert_allclose(t @ x, b, atol=1e-12)
    big = random_array(rng, (8, 6, 2))[:, ::2, :]  # non-contiguous
    qs, ks = big[..., 0], big[..., 1]
    qs3 = np.asfortranarray(random_array(rng, (8, 3)))
    for a in (qs, ks, qs3):
        a.setflags(write=False)
    lam = np.linspace(1, 2, 8)
    lam.setflags(write=False)
    copies = [a.copy() for a in (qs, ks, qs3, lam)]
    bb = random_array(rng, (8, 3, 2))[:, :, 0]
    y = structla.tril_dlr_solve(lam, qs3, qs3[:, ::-1], bb, trans="C")
    dense = tril_dlr_dense_oracle(lam, qs3, qs3[:, ::-1])
    np.testing.assert_allclose(dense.T @ y, bb, atol=1e-12)
    inv = structla.tril_dlr_inv(lam, qs, ks)
    np.testing.assert_allclose(inv, np.linalg.inv(tril_dlr_dense_oracle(lam, qs, ks)), atol=1e-12)
    for a, a0 in zip((qs, ks, qs3, lam), copies):
        np.testing.assert_array_equal(a, a0)


def test_empty_and_float16():
    empty = structla.tril_dlr_solve(np.ones((0, 4)), np.ones((0, 4, 2)), np.ones((0, 4, 2)),
                                    np.ones((0, 4, 3)))
    assert empty.shape == (0, 4, 3)
    assert structla.tril_dlr_solve(np.ones(0), np.ones((0, 2)), np.ones((0, 2)), np.ones(0)).shape == (0,)
    assert structla.tril_dlr_inv(np.ones(0), np.ones((0, 2)), np.ones((0, 2))).shape == (0, 0)
    assert structla.ut_transform(np.ones((3, 0, 2)), np.ones((3, 0))).shape == (3, 0, 0)
    rank0 = structla.tril_dlr_matmul(np.ones(3), np.ones((3, 0)), np.ones((3, 0)), np.ones(3))
    assert rank0.tolist() == [1, 1, 1]
    rng = np.random.default_rng(18)
    diag, q, k, log_decay = make_operands(rng, 10, 2, "float32", (), True)
    x16 = structla.tril_dlr_solve(diag.astype(np.float16), q.astype(np.float16), k.astype(np.float16),
                                  np.ones(10, np.float16), log_decay=log_decay)
    assert x16.dtype == np.float16
    t = tril_dlr_dense_oracle(diag.astype(np.float16), q.astype(np.float16), k.astype(np.float16), log_decay)
    assert max_relative_error(x16, np.linalg.solve(t, np.ones(10))) <= 1e-2


def test_dispatch_finds_every_backend_function():
    for name in ("tril_dlr_solve", "tril_dlr_matmul", "tril_dlr_inv", "tril_dlr_dense", "ut_transform"):
        assert implementation("tril", name, np).__module__ == "structla.tril._numba"
        assert implementation("tril", name, np, backend="reference").__module__ == "structla.tril._reference"

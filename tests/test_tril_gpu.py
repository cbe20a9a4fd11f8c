"""tril on the GPU (CuPy + tril.cu) against float64 CPU references, with poisoned outputs.

References are dense float64/complex128 matrices built by broadcasting (no Python loops over
rows), once per test: the file is meant to take well under a minute on a GPU box even when
many pytest workers share its CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from oracles import max_relative_error
from strategies import ALL_DTYPES, eps, random_array

import structla

pytestmark = pytest.mark.gpu


@pytest.fixture
def poisoned(monkeypatch, cp):
    """Every output the GPU path allocates starts as NaN, so an unwritten entry shows."""
    from structla.tril import _cupy

    def empty(shape, dtype):
        out = cp.empty(shape, dtype=dtype)
        out.fill(np.nan)
        return out

    monkeypatch.setattr(_cupy, "_empty", empty)
    return _cupy


def operands(rng, batch, n, d, dtype, decay):
    dtype = np.dtype(dtype)
    diag = (1 + rng.random((*batch, n))) * rng.choice([-1.0, 1.0], (*batch, n))
    q = random_array(rng, (*batch, n, d), dtype, scale=0.5 / np.sqrt(d))
    k = random_array(rng, (*batch, n, d), dtype, scale=1 / np.sqrt(d))
    log_decay = -rng.random((*batch, n)) if decay else None
    return diag.astype(dtype), q, k, log_decay


def to_gpu(cp, *arrays):
    return [None if a is None else cp.asarray(a) for a in arrays]


def dense(diag, q, k, log_decay):
    """``diag(λ) + tril((Q Kᵀ) ⊙ Γ, -1)`` in double precision over any batch.

    ``Γ_ij = exp(g_{j+1} + … + g_i)`` from float64 cumulative sums: the test log-decays lie in
    [-1, 0] and n ≤ 300, so the differences are exact to ~1e-13.
    """
    wide = np.result_type(diag, q, k, np.float64)
    q, k = q.astype(wide), k.astype(wide)
    n = diag.shape[-1]
    lower = np.tri(n, n, -1, dtype=bool)
    t = q @ np.swapaxes(k, -1, -2)
    if log_decay is None:
        t *= lower
    else:
        cum = np.cumsum(np.asarray(log_decay, dtype=np.float64), axis=-1)
        t *= np.exp(np.where(lower, cum[..., :, None] - cum[..., None, :], -np.inf))
    index = np.arange(n)
    t[..., index, index] = diag
    return t


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("n", [1, 7, 64, 65, 300])
@pytest.mark.parametrize("decay", [False, True])
def test_solve_matmul_inv_match_cpu(poisoned, cp, dtype, n, decay):
    rng = np.random.default_rng(n)
    d, m = 8, 5
    diag, q, k, log_decay = operands(rng, (2,), n, d, dtype, decay)
    b = random_array(rng, (2, n, m), dtype)
    t = dense(diag, q, k, log_decay)
    gd, gq, gk, gb, gg = to_gpu(cp, diag, q, k, b, log_decay)
    tol = 200 * n * eps(dtype)
    for trans, op in (("N", t), ("T", np.swapaxes(t, -1, -2)), ("C", np.swapaxes(t, -1, -2).conj())):
        x = structla.tril_dlr_solve(gd, gq, gk, gb, trans=trans, log_decay=gg, check_finite=True)
        assert isinstance(x, cp.ndarray) and x.dtype == np.dtype(dtype)
        assert max_relative_error(x, np.linalg.solve(op, b)) <= tol, trans
        y = structla.tril_dlr_matmul(gd, gq, gk, gb, trans=trans, log_decay=gg)
        assert max_relative_error(y, op @ b) <= tol, trans
    inv = structla.tril_dlr_inv(gd, gq, gk, log_decay=gg)
    assert max_relative_error(inv, np.linalg.inv(t)) <= tol
    dense_gpu = structla.tril_dlr_dense(gd, gq, gk, log_decay=gg)
    assert max_relative_error(dense_gpu, t) <= tol


@pytest.mark.parametrize(("n", "d", "m"), [(300, 8, 8), (256, 128, 132), (130, 36, 64)])
@pytest.mark.parametrize("decay", [False, True])
def test_one_pass_solve(poisoned, cp, monkeypatch, n, d, m, decay):
    """float32 with d ≤ 128 and m, d multiples of 4 take tril_chunk_solve (tril_solve.cu); the
    same problems through the two-pass form agree, and both match float64 dense solves."""
    rng = np.random.default_rng(n + d + m)
    diag, q, k, log_decay = operands(rng, (2,), n, d, "float32", decay)
    b = random_array(rng, (2, n, m), "float32")
    t = dense(diag, q, k, log_decay)
    gd, gq, gk, gb, gg = to_gpu(cp, diag, q, k, b, log_decay)
    calls = []
    one_pass = poisoned._solve_one_pass
    monkeypatch.setattr(poisoned, "_solve_one_pass", lambda *a: calls.append(1) or one_pass(*a))
    for trans, op in (("N", t), ("T", np.swapaxes(t, -1, -2))):
        x = structla.tril_dlr_solve(gd, gq, gk, gb, trans=trans, log_decay=gg)
        assert max_relative_error(x, np.linalg.solve(op, b)) <= 200 * n * eps("float32"), trans
    assert len(calls) == 2
    monkeypatch.setattr(poisoned, "_one_pass", lambda *a: False)
    two_pass = structla.tril_dlr_solve(gd, gq, gk, gb, log_decay=gg)
    assert max_relative_error(two_pass, np.linalg.solve(t, b)) <= 200 * n * eps("float32")
    assert len(calls) == 2


@pytest.mark.parametrize("chunk", [1, 7, 16, 64, 128])
def test_chunked_solve_every_chunk_size(poisoned, cp, chunk):
    rng = np.random.default_rng(chunk)
    diag, q, k, log_decay = operands(rng, (3,), 200, 6, "float64", True)
    b = random_array(rng, (3, 200, 4))
    t = dense(diag, q, k, log_decay)
    gd, gq, gk, gb, gg = to_gpu(cp, diag, q, k, b, log_decay)
    x = poisoned.tril_dlr_solve(gd, gq, gk, gb, gg, chunk=chunk)
    assert max_relative_error(x, np.linalg.solve(t, b)) <= 1e-12
    inv = poisoned.tril_dlr_inv(gd, gq, gk, gg, chunk=chunk)
    assert max_relative_error(inv, np.linalg.inv(t)) <= 1e-12


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("c", [16, 32, 64, 128, 40, 200])
def test_ut_transform_block_sizes(poisoned, cp, dtype, c):
    rng = np.random.default_rng(c)
    k = random_array(rng, (4, 3, c, 32), dtype)
    k /= np.linalg.norm(k, axis=-1, keepdims=True).astype(k.real.dtype)
    beta = 2 * rng.random((4, 3, c))
    log_decay = -rng.random((4, 3, c))
    beta = beta.astype(k.real.dtype)
    for g in (None, log_decay):
        out = structla.ut_transform(cp.asarray(k), cp.asarray(beta),
                                    log_decay=None if g is None else cp.asarray(g))
        assert out.dtype == np.dtype(dtype) and out.shape == (4, 3, c, c)
        out = cp.asnumpy(out)
        assert np.isfinite(out).all()
        assert (np.triu(out, 1) == 0).all()
        # residual of (I + A) X = diag(β), relative to ‖I + A‖‖X‖ (backward error ~ c·eps)
        system = dense(np.ones((4, 3, c)), beta[..., None] * k, k, g)
        residual = np.abs(system @ out - beta[..., None, :] * np.eye(c)).max()
        size = np.abs(system).sum(axis=-1).max() * np.abs(out).sum(axis=-1).max()
        assert residual <= 4 * c * eps(dtype) * size


def test_ut_transform_raw_keys_overflow_only_where_the_answer_does(poisoned, cp):
    """Must show 3 in full (examples/tril_raw_keys.py): the float32 blocks that come out non-finite
    are exactly those whose exact answer (float64 on the same float32 inputs) leaves float32's
    range, and the others are accurate to float32 rounding of the answer.
    """
    rng = np.random.default_rng(0)
    k = rng.standard_normal((512, 64, 64)).astype(np.float32)
    beta = (2 * rng.random((512, 64))).astype(np.float32)
    reference = structla.ut_transform(k.astype(np.float64), beta.astype(np.float64))
    peak = np.abs(reference).max(axis=(1, 2))
    top = float(np.finfo(np.float32).max)
    fits = peak < top
    assert 100 < fits.sum() < 500
    out = cp.asnumpy(structla.ut_transform(cp.asarray(k), cp.asarray(beta)))
    clear = np.abs(np.log(peak / top)) > 1e-3  # not within rounding of float32's largest value
    np.testing.assert_array_equal(~np.isfinite(out).all(axis=(1, 2))[clear], ~fits[clear])
    error = np.abs(out[fits] - reference[fits]).max(axis=(1, 2)) / peak[fits]
    assert error.max() <= 1e-5


def test_ut_transform_normalised_keys_identity(cp):
    """Must show 6 accuracy: ‖(I + A) X − diag(β)‖_max ≤ 1e-5 for float32 64×64 blocks, unit keys."""
    rng = np.random.default_rng(1)
    k = rng.standard_normal((512, 64, 64)).astype(np.float32)
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    beta = rng.random((512, 64)).astype(np.float32)
    x = cp.asnumpy(structla.ut_transform(cp.asarray(k), cp.asarray(beta)))
    assert x.dtype == np.float32 and np.isfinite(x).all()
    a = np.tril(beta[..., :, None] * (k.astype(np.float64) @ np.swapaxes(k, -1, -2)), -1)
    residual = np.abs((np.eye(64) + a) @ x - beta[..., None, :] * np.eye(64)).max()
    assert residual <= 1e-5


def test_gpu_errors_and_edge_cases(cp):
    with pytest.raises(TypeError, match="different array"):
        structla.tril_dlr_solve(cp.ones(3), np.ones((3, 1)), cp.ones((3, 1)), cp.ones(3))
    zero = cp.asarray([1.0, 0.0, 2.0])
    with pytest.raises(structla.LinAlgError, match="diagonal entry 1"):
        structla.tril_dlr_solve(zero, cp.ones((3, 1)), cp.ones((3, 1)), cp.ones(3), check_finite=True)
    empty = structla.tril_dlr_solve(cp.ones((0, 4)), cp.ones((0, 4, 2)), cp.ones((0, 4, 2)),
                                    cp.ones((0, 4, 3)))
    assert empty.shape == (0, 4, 3)
    half = cp.float16
    x16 = structla.tril_dlr_solve(cp.ones(5, half), cp.ones((5, 1), half), cp.zeros((5, 1), half),
                                  cp.arange(5, dtype=half))
    assert x16.dtype == cp.float16
    np.testing.assert_allclose(cp.asnumpy(x16), np.arange(5))

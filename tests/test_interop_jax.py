"""structla.jax: jax.grad through the custom_vjp wrappers matches finite differences (issue 10,
Must show 5), under jit and vmap too, and half precision computes in float32."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

import structla  # noqa: E402
import structla.jax as sj  # noqa: E402


@pytest.fixture(autouse=True)
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def _cplx(rng, *shape, scale=1.0, shift=0.0):
    return scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) + shift


def directional_check(f, args, seed=0, h=1e-6):
    """``Re Σ grad·d`` (JAX's convention) against a central difference along a random d."""
    rng = np.random.default_rng(seed)
    args = [jnp.asarray(a) for a in args]
    W = jnp.asarray(rng.standard_normal(np.shape(f(*args))))

    def loss(*a):
        return jnp.sum(W * jnp.real(f(*a)))

    grads = jax.grad(loss, argnums=tuple(range(len(args))))(*args)
    for g, a in zip(grads, args, strict=True):
        assert g.shape == a.shape and g.dtype == a.dtype
    dirs = [jnp.asarray(_cplx(rng, *a.shape) if jnp.iscomplexobj(a) else rng.standard_normal(a.shape))
            for a in args]
    fd = (loss(*(a + h * d for a, d in zip(args, dirs, strict=True)))
          - loss(*(a - h * d for a, d in zip(args, dirs, strict=True)))) / (2 * h)
    analytic = sum(jnp.sum(jnp.real(g * d)) for g, d in zip(grads, dirs, strict=True))
    assert abs(float(fd - analytic)) <= 1e-6 * max(1.0, abs(float(fd))), (float(fd), float(analytic))


def test_tril_dlr_solve_and_matmul():
    rng = np.random.default_rng(0)
    diag, q, k = 1.5 + rng.random((2, 6)), rng.standard_normal((2, 6, 2)), rng.standard_normal((6, 2))
    b, g = rng.standard_normal((2, 6, 3)), -rng.random(6)
    directional_check(lambda *a: sj.tril_dlr_solve(*a[:4], log_decay=a[4]), [diag, q, k, b, g])
    directional_check(lambda *a: sj.tril_dlr_solve(*a, trans=True), [diag, q, k, b[..., 0]])
    directional_check(lambda *a: sj.tril_dlr_matmul(*a[:4], log_decay=a[4]), [diag, q, k, b, g])


def test_ut_transform():
    rng = np.random.default_rng(1)
    directional_check(lambda *a: sj.ut_transform(a[0], a[1], log_decay=a[2]),
                      [0.6 * rng.standard_normal((2, 5, 3)), rng.random((2, 5)), -rng.random(5)])


def test_cauchy_and_vandermonde_complex():
    rng = np.random.default_rng(2)
    v, w, z = _cplx(rng, 2, 4), _cplx(rng, 4, shift=-2.0), _cplx(rng, 5)
    directional_check(lambda *a: sj.cauchy(*a), [v, w, z])
    directional_check(lambda *a: sj.cauchy(*a, conj_pairs=True), [v, w, z])
    x = _cplx(rng, 4, scale=0.5)
    directional_check(lambda *a: sj.vandermonde(*a, 7), [v, x])
    directional_check(lambda *a: sj.vandermonde(*a, 7, log=True, conj_pairs=True), [v, x])


def test_ssm_kernel_diag():
    rng = np.random.default_rng(3)
    a = -0.5 * rng.random((2, 3)) + 1j * rng.standard_normal((2, 3))
    args = [a, _cplx(rng, 3), _cplx(rng, 2, 3), 0.05 + 0.5 * rng.random(2)]
    directional_check(lambda *p: sj.ssm_kernel_diag(*p, 9), args)
    directional_check(lambda *p: sj.ssm_kernel_diag(*p, 9, method="bilinear", conj_pairs=False), args)


@pytest.mark.parametrize("conj_pairs,c_tilde", [(True, False), (False, True), (True, True)])
def test_ssm_kernel_dplr(conj_pairs, c_tilde):
    rng = np.random.default_rng(8)
    Lam = -0.3 - rng.random((2, 3)) + 1j * rng.standard_normal((2, 3))
    args = [Lam, _cplx(rng, 1, 3, scale=0.4), _cplx(rng, 3), _cplx(rng, 2, 3), 0.1 + 0.5 * rng.random(2)]
    length = 7 if c_tilde else 8
    directional_check(lambda *p: sj.ssm_kernel_dplr(*p, length, conj_pairs=conj_pairs, c_tilde=c_tilde), args)


def test_msign_and_linear_scan():
    rng = np.random.default_rng(4)
    directional_check(lambda M: sj.msign(M), [rng.standard_normal((2, 4, 3))])
    directional_check(lambda a, b, h0: sj.linear_scan(a, b, h0=h0, reverse=True),
                      [rng.random((2, 6)), rng.standard_normal((3, 2, 6)), rng.standard_normal(2)])


def test_selective_scan_and_delta_rule():
    rng = np.random.default_rng(5)
    u, delta = rng.standard_normal((2, 2, 5)), rng.standard_normal((2, 2, 5))
    A, B = -rng.random((2, 3)), rng.standard_normal((2, 3, 5))
    C, D = rng.standard_normal((2, 3)), rng.random(2)
    directional_check(lambda *p: sj.selective_scan(*p, delta_softplus=True), [u, delta, A, B, C, D])
    q, k = rng.standard_normal((2, 7, 3)), 0.5 * rng.standard_normal((2, 7, 3))
    v, beta, h0 = rng.standard_normal((2, 7, 2)), rng.random((2, 7)), rng.standard_normal((2, 2, 3))
    directional_check(lambda *p: sj.delta_rule(*p, chunk_size=4), [q, k, v, beta])
    directional_check(lambda *p: sj.delta_rule(*p[:4], h0=p[4], chunk_size=3, return_state=True)[1],
                      [q, k, v, beta, h0])


def test_jit_and_vmap_give_the_eager_results():
    rng = np.random.default_rng(6)
    a, b = jnp.asarray(rng.random((3, 8))), jnp.asarray(rng.standard_normal((3, 8)))

    def loss(a, b):
        return jnp.sum(jnp.sin(sj.linear_scan(a, b)))

    eager = jax.grad(loss, argnums=(0, 1))(a, b)
    jitted = jax.jit(jax.grad(loss, argnums=(0, 1)))(a, b)
    mapped = jax.vmap(jax.grad(loss, argnums=(0, 1)))(a[:, None], b[:, None])
    for e, j, m in zip(eager, jitted, mapped, strict=True):
        np.testing.assert_allclose(j, e, rtol=1e-13)
        np.testing.assert_allclose(m[:, 0], e, rtol=1e-13)


def test_forward_equals_numpy_and_half_precision_policy():
    rng = np.random.default_rng(7)
    diag, q, k, b = 1 + rng.random(6), rng.standard_normal((6, 2)), rng.standard_normal((6, 2)), rng.random(6)
    np.testing.assert_array_equal(np.asarray(sj.tril_dlr_solve(diag, q, k, b)),
                                  structla.tril_dlr_solve(diag, q, k, b))
    bf = [jnp.asarray(x, dtype=jnp.bfloat16) for x in (diag, q, k, b)]
    x = sj.tril_dlr_solve(*bf)
    assert x.dtype == jnp.bfloat16
    ref = structla.tril_dlr_solve(*(np.asarray(t.astype(jnp.float32)) for t in bf))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(jnp.asarray(ref).astype(jnp.bfloat16)))

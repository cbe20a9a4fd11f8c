"""structla.torch: zero-copy bridges, the half-precision policy, gradcheck of every wrapped
routine (float64, with batch dimensions), torch.compile, and the Muon optimizer."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import structla  # noqa: E402
import structla.torch as st  # noqa: E402
from structla.interop import from_numpy_or_cupy, run_on_tensors, to_numpy_or_cupy  # noqa: E402

F64 = torch.float64
C128 = torch.complex128


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, dtype=F64, seed=0, scale=1.0, shift=0.0):
    g = _gen(seed)
    if dtype.is_complex:
        re = torch.randn(*shape, generator=g, dtype=F64)
        im = torch.randn(*shape, generator=g, dtype=F64)
        x = torch.complex(re, im).to(dtype)
    else:
        x = torch.randn(*shape, generator=g, dtype=dtype)
    return (scale * x + shift).requires_grad_()


def rand(*shape, seed=0, scale=1.0, shift=0.0):
    return (scale * torch.rand(shape, generator=_gen(seed), dtype=F64) + shift).requires_grad_()


def gradcheck(fn, args):
    return torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------- bridges


def test_cpu_bridge_is_zero_copy_both_ways():
    t = torch.arange(12.0, dtype=F64).reshape(3, 4)
    a = to_numpy_or_cupy(t)
    assert isinstance(a, np.ndarray) and a.ctypes.data == t.data_ptr()
    back = from_numpy_or_cupy(a)
    assert back.data_ptr() == t.data_ptr()
    strided = t[:, ::2]
    assert to_numpy_or_cupy(strided).ctypes.data == strided.data_ptr()


def test_bridge_resolves_conj_and_detaches():
    z = torch.tensor([1 + 2j, 3 - 1j], dtype=C128)
    np.testing.assert_array_equal(to_numpy_or_cupy(z.conj()), np.array([1 - 2j, 3 + 1j]))
    w = torch.ones(3, dtype=F64, requires_grad=True)
    assert isinstance(to_numpy_or_cupy(w), np.ndarray)


def test_results_never_alias_inputs():
    t = torch.arange(4.0, dtype=F64)
    out = run_on_tensors(lambda x: x, t)
    assert out.data_ptr() != t.data_ptr()
    np.testing.assert_array_equal(out.numpy(), t.numpy())


def test_forward_matches_numpy_and_leaves_inputs_alone():
    diag, q, k, b = rand(3, 5, shift=1.0), randn(3, 5, 2, seed=1), randn(5, 2, seed=2), randn(3, 5, 4, seed=3)
    before = [x.detach().clone() for x in (diag, q, k, b)]
    x = st.tril_dlr_solve(diag, q, k, b, trans=True)
    ref = structla.tril_dlr_solve(*(t.detach().numpy() for t in (diag, q, k, b)), trans=True)
    np.testing.assert_array_equal(x.detach().numpy(), ref)
    for t, t0 in zip((diag, q, k, b), before, strict=True):
        assert torch.equal(t.detach(), t0)


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_half_precision_computes_in_float32_and_casts_back(half):
    """Policy: bf16/f16 tensors are converted to float32, computed, and the result cast back."""
    dt = getattr(torch, half)
    diag = (1 + torch.rand(2, 6)).to(dt)
    q, k, b = torch.randn(2, 6, 3).to(dt), torch.randn(2, 6, 3).to(dt), torch.randn(2, 6, 2).to(dt)
    x = st.tril_dlr_solve(diag, q, k, b)
    assert x.dtype == dt
    ref = st.tril_dlr_solve(diag.float(), q.float(), k.float(), b.float())
    assert torch.equal(x, ref.to(dt))
    leaves = [t.clone().requires_grad_() for t in (diag, q, k, b)]
    st.tril_dlr_solve(*leaves).float().square().sum().backward()
    assert all(t.grad.dtype == dt and torch.isfinite(t.grad.float()).all() for t in leaves)
    K = st.vandermonde(torch.randn(4).to(dt), (0.5 * torch.rand(4)).to(dt), 5, conj_pairs=True)
    assert K.dtype == dt
    k = st.cauchy(torch.randn(4).to(dt), torch.randn(4).to(dt), torch.randn(3).to(dt))
    assert k.dtype == torch.complex64


# ----------------------------------------------------------------------------- gradcheck (Must show 1)


@pytest.mark.parametrize("trans", [False, True, "C"])
def test_gradcheck_tril_dlr_solve(trans):
    diag = rand(2, 5, shift=1.5)
    q, k, b = randn(2, 5, 2, seed=1), randn(1, 5, 2, seed=2), randn(2, 5, 2, seed=3)
    g = rand(5, seed=4, scale=-1.0)
    assert gradcheck(lambda *a: st.tril_dlr_solve(*a[:4], trans=trans, log_decay=a[4]), (diag, q, k, b, g))


def test_gradcheck_tril_dlr_solve_complex_vector_rhs():
    diag = randn(2, 3, dtype=C128, shift=2.0)
    q, k = randn(3, 1, dtype=C128, seed=1), randn(2, 3, 1, dtype=C128, seed=2)
    b = randn(2, 3, dtype=C128, seed=3)
    for trans in (False, True, "C"):
        assert gradcheck(lambda *a, t=trans: st.tril_dlr_solve(*a, trans=t), (diag, q, k, b))


@pytest.mark.parametrize("trans", [False, True])
def test_gradcheck_tril_dlr_matmul(trans):
    diag = rand(2, 6)
    q, k, x = randn(2, 6, 2, seed=1), randn(6, 2, seed=2), randn(2, 6, 3, seed=3)
    g = rand(2, 6, seed=4, scale=-1.0)
    assert gradcheck(lambda *a: st.tril_dlr_matmul(*a[:4], trans=trans, log_decay=a[4]), (diag, q, k, x, g))


def test_gradcheck_ut_transform():
    k, beta, g = randn(2, 5, 3, scale=0.6), rand(2, 5, seed=1), rand(5, seed=2, scale=-1.0)
    assert gradcheck(lambda *a: st.ut_transform(a[0], a[1], log_decay=a[2]), (k, beta, g))


@pytest.mark.parametrize("conj_pairs", [False, True])
def test_gradcheck_cauchy(conj_pairs):
    v = randn(2, 4, dtype=C128)
    w = randn(1, 4, dtype=C128, seed=1, shift=-2.0)
    z = randn(3, dtype=C128, seed=2)
    assert gradcheck(lambda *a: st.cauchy(*a, conj_pairs=conj_pairs), (v, w, z))
    zr = randn(3, seed=3)  # real nodes: the gradient is the real part
    assert gradcheck(lambda *a: st.cauchy(*a, conj_pairs=conj_pairs), (v, w, zr))


@pytest.mark.parametrize("log,conj_pairs", [(False, False), (True, True), (False, True)])
def test_gradcheck_vandermonde(log, conj_pairs):
    v = randn(2, 4, dtype=C128)
    x = randn(1, 4, dtype=C128, seed=1, scale=0.5)
    assert gradcheck(lambda *a: st.vandermonde(*a, 7, log=log, conj_pairs=conj_pairs), (v, x))
    xr = randn(4, seed=2, scale=0.6)
    assert gradcheck(lambda *a: st.vandermonde(*a, 7, log=log, conj_pairs=conj_pairs), (v, xr))


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
@pytest.mark.parametrize("conj_pairs", [True, False])
def test_gradcheck_ssm_kernel_diag(method, conj_pairs):
    a = torch.complex(-0.5 * torch.rand(2, 3, dtype=F64, generator=_gen(0)),
                      torch.randn(2, 3, dtype=F64, generator=_gen(1))).requires_grad_()
    B, C = randn(3, dtype=C128, seed=2), randn(2, 3, dtype=C128, seed=3)
    dt = rand(2, seed=4, scale=0.5, shift=0.05)
    assert gradcheck(lambda *p: st.ssm_kernel_diag(*p, 9, method=method, conj_pairs=conj_pairs),
                     (a, B, C, dt))


def test_gradcheck_ssm_kernel_diag_small_steps_and_scalar_dt():
    """Tiny Δa exercises the Taylor branch of φ'; a Python-float-like 0-d dt gets a 0-d gradient."""
    a = randn(4, dtype=C128, scale=0.5)
    B, C = randn(4, dtype=C128, seed=1), randn(4, dtype=C128, seed=2)
    dt = torch.tensor(1e-3, dtype=F64, requires_grad=True)
    assert gradcheck(lambda *p: st.ssm_kernel_diag(*p, 6), (a, B, C, dt))


def _dplr_args(batch=(2,), N=3, rank=1, real=False, seed=0):
    """A stable DPLR system (Re Λ < 0, small P) with batch dimensions on Λ, C and dt."""
    if real:
        Lam = rand(*batch, N, seed=seed, scale=-1.0, shift=-0.3)
        P, B = randn(rank, N, seed=seed + 1, scale=0.4), randn(N, seed=seed + 2)
        C = randn(*batch, N, seed=seed + 3)
    else:
        Lam = torch.complex(-0.3 - torch.rand((*batch, N), dtype=F64, generator=_gen(seed)),
                            torch.randn(*batch, N, dtype=F64, generator=_gen(seed + 1))).requires_grad_()
        P, B = randn(rank, N, dtype=C128, seed=seed + 2, scale=0.4), randn(N, dtype=C128, seed=seed + 3)
        C = randn(*batch, N, dtype=C128, seed=seed + 4)
    dt = rand(*batch, seed=seed + 5, scale=0.5, shift=0.1)
    return Lam, P, B, C, dt


@pytest.mark.parametrize("conj_pairs", [True, False])
@pytest.mark.parametrize("c_tilde", [True, False])
def test_gradcheck_ssm_kernel_dplr(conj_pairs, c_tilde):
    """Every input (complex Λ, P, B, C and real dt), batch dims; even L has the Nyquist node."""
    length = 7 if c_tilde else 8
    assert gradcheck(lambda *p: st.ssm_kernel_dplr(*p, length, conj_pairs=conj_pairs, c_tilde=c_tilde),
                     _dplr_args())


def test_gradcheck_ssm_kernel_dplr_rank_two_real_and_scalar_dt():
    Lam, P, B, C, _ = _dplr_args(batch=(2, 1), rank=2, seed=10)
    dt = torch.tensor(0.3, dtype=F64, requires_grad=True)
    assert gradcheck(lambda *p: st.ssm_kernel_dplr(*p, 6), (Lam, P, B, C, dt))
    real = _dplr_args(rank=1, real=True, seed=20)
    assert gradcheck(lambda *p: st.ssm_kernel_dplr(*p, 5, conj_pairs=False), real)


def test_ssm_kernel_dplr_gradients_match_dense_powers():
    """Against autograd through ``K_k = C Āᵏ B̄`` with the dense bilinear Ā of the whole system."""
    Lam, P, B, C, dt = _dplr_args(batch=(), N=4, seed=30)
    length = 16
    w = torch.randn(length, dtype=F64, generator=_gen(31))
    (st.ssm_kernel_dplr(Lam, P, B, C, dt, length) * w).sum().backward()
    ours = [t.grad.clone() for t in (Lam, P, B, C, dt)]
    for t in (Lam, P, B, C, dt):
        t.grad = None
    full = [torch.cat([x, x.conj()], -1) for x in (Lam, P, B, C)]
    A = torch.diag(full[0]) - full[1].T @ full[1].conj()
    eye = torch.eye(8, dtype=C128)
    M = eye - dt / 2 * A
    Ad, Bd = torch.linalg.solve(M, eye + dt / 2 * A), dt * torch.linalg.solve(M, full[2])
    x, K = Bd, []
    for _ in range(length):
        K.append((full[3] * x).sum().real)
        x = Ad @ x
    (torch.stack(K) * w).sum().backward()
    for a, t in zip(ours, (Lam, P, B, C, dt), strict=True):
        torch.testing.assert_close(a, t.grad, rtol=1e-9, atol=1e-10)


def test_gradcheck_msign():
    M = randn(2, 4, 3)
    assert gradcheck(lambda M: st.msign(M), (M,))
    S = randn(3, 3, seed=1)
    assert gradcheck(lambda M: st.msign(M), (S,))


@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_linear_scan(reverse):
    a, b, h0 = rand(2, 6), randn(3, 2, 6, seed=1), randn(2, seed=2)
    assert gradcheck(lambda *p: st.linear_scan(p[0], p[1], h0=p[2], reverse=reverse), (a, b, h0))
    a0, b0 = rand(6, 1, seed=3), randn(6, 3, seed=4)
    assert gradcheck(lambda *p: st.linear_scan(*p, axis=0, reverse=reverse), (a0, b0))
    ac, bc = randn(2, 5, dtype=C128, seed=5, scale=0.5), randn(2, 5, dtype=C128, seed=6)
    assert gradcheck(lambda *p: st.linear_scan(*p, reverse=reverse), (ac, bc))


def test_gradcheck_selective_scan_all_arguments():
    bsz, D, L, N = 2, 2, 5, 3
    u, delta = randn(bsz, D, L), randn(bsz, D, L, seed=1)
    A = rand(D, N, seed=2, scale=-1.0)
    B, C = randn(bsz, N, L, seed=3), randn(bsz, N, L, seed=4)
    Dv, z, bias, h0 = randn(D, seed=5), randn(bsz, D, L, seed=6), randn(D, seed=7), randn(bsz, D, N, seed=8)

    def f(*p):
        return st.selective_scan(*p[:7], delta_bias=p[7], delta_softplus=True, h0=p[8])

    assert gradcheck(f, (u, delta, A, B, C, Dv, z, bias, h0))


def test_gradcheck_selective_scan_layouts():
    """Time-invariant B (D, N) and grouped C (1, G, N, L) broadcast over the batch."""
    bsz, D, L, N = 2, 4, 4, 2
    u, delta = randn(bsz, D, L), rand(bsz, D, L, seed=1, shift=0.1)
    A = rand(D, N, seed=2, scale=-1.0)
    B, C = randn(D, N, seed=3), randn(1, 2, N, L, seed=4)
    assert gradcheck(lambda *p: st.selective_scan(*p), (u, delta, A, B, C))


def test_selective_scan_matches_reference_recurrence():
    bsz, D, L, N = 1, 2, 6, 3
    u, delta, A = randn(bsz, D, L), rand(bsz, D, L, seed=1), rand(D, N, seed=2, scale=-1.0)
    B, C = randn(bsz, N, L, seed=3), randn(bsz, N, L, seed=4)
    y = st.selective_scan(u, delta, A, B, C)
    h = torch.zeros(bsz, D, N, dtype=F64)
    ref = []
    for t in range(L):
        h = torch.exp(delta[..., t, None] * A) * h + (delta[..., t] * u[..., t])[..., None] * B[:, None, :, t]
        ref.append((h * C[:, None, :, t]).sum(-1))
    ref = torch.stack(ref, -1)
    y.square().sum().backward()
    g_st = u.grad.clone()
    u.grad = None
    torch.testing.assert_close(y, ref)
    ref.square().sum().backward()
    torch.testing.assert_close(g_st, u.grad)


def test_gradcheck_delta_rule():
    q, k = randn(2, 5, 2), randn(2, 5, 2, seed=1, scale=0.5)
    v, beta = randn(1, 5, 2, seed=2), rand(2, 5, seed=3)
    h0 = randn(2, 2, 2, seed=4)
    assert gradcheck(lambda *p: st.delta_rule(*p, chunk_size=4), (q, k, v, beta))
    assert gradcheck(lambda *p: st.delta_rule(*p[:4], h0=p[4], chunk_size=3, return_state=True),
                     (q, k, v, beta, h0))


def test_delta_rule_gradients_match_recurrence():
    """The backward pass (full-sequence form) equals autograd through the step-by-step recurrence."""
    q, k = randn(2, 9, 3), randn(2, 9, 3, seed=1, scale=0.5)
    v, beta = randn(2, 9, 4, seed=2), rand(2, 9, seed=3)
    w = torch.randn(2, 9, 4, dtype=F64, generator=_gen(5))
    (st.delta_rule(q, k, v, beta, chunk_size=4) * w).sum().backward()
    ours = [t.grad.clone() for t in (q, k, v, beta)]
    for t in (q, k, v, beta):
        t.grad = None
    S = torch.zeros(2, 4, 3, dtype=F64)
    outs = []
    for t in range(9):
        kt = k[:, t]
        S = S + beta[:, t, None, None] * (v[:, t] - (S @ kt[..., None])[..., 0])[..., None] * kt[:, None, :]
        outs.append((S @ q[:, t, :, None])[..., 0])
    (torch.stack(outs, 1) * w).sum().backward()
    for a, t in zip(ours, (q, k, v, beta), strict=True):
        torch.testing.assert_close(a, t.grad)


# ----------------------------------------------------------------------------- torch.compile


def test_custom_ops_pass_opcheck():
    diag, q, k, b = rand(2, 5, shift=1.0), randn(2, 5, 2, seed=1), randn(5, 2, seed=2), randn(2, 5, 3, seed=3)
    torch.library.opcheck(torch.ops.structla.tril_dlr_solve.default,
                          (*(t.detach().requires_grad_() for t in (diag, q, k, b)), None, "N"))
    a, x = rand(2, 6, seed=4), randn(2, 6, seed=5)
    torch.library.opcheck(torch.ops.structla.linear_scan.default, (a, x, None, -1, False))
    torch.library.opcheck(torch.ops.structla.ssm_kernel_dplr.default, (*_dplr_args(), 6, True, False))


def test_torch_compile_fullgraph_forward_and_backward():
    a, b = rand(3, 8), randn(3, 8, seed=1)
    M = randn(4, 3, seed=2)

    def f(a, b, M):
        return st.linear_scan(a, b).sin().sum() + (st.msign(M) * M).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    compiled(a, b, M).backward()
    got = [t.grad.clone() for t in (a, b, M)]
    for t in (a, b, M):
        t.grad = None
    f(a, b, M).backward()
    for g, t in zip(got, (a, b, M), strict=True):
        torch.testing.assert_close(g, t.grad)


# ----------------------------------------------------------------------------- Muon (Must show 4)


def _reference_muon(params, grads_per_step, lr, momentum, weight_decay):
    """Muon written out in plain torch, with the polar factor from an SVD."""
    params = [p.detach().clone() for p in params]
    bufs = [torch.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for p, g, buf in zip(params, grads, bufs, strict=True):
            buf.mul_(momentum).add_(g)
            u = g + momentum * buf
            U, _, Vh = torch.linalg.svd(u.reshape(u.shape[0], -1), full_matrices=False)
            n, m = U.shape[0], Vh.shape[1]
            p.mul_(1 - lr * weight_decay)
            p.add_((U @ Vh).reshape(p.shape), alpha=-lr * max(1.0, n / m) ** 0.5)
    return params


def test_muon_matches_reference_update():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8, bias=False), torch.nn.Tanh(),
                                torch.nn.Linear(8, 3, bias=False)).double()
    x, y = torch.randn(16, 6, dtype=F64), torch.randn(16, 3, dtype=F64)
    start = [p.detach().clone() for p in model.parameters()]
    opt = st.Muon(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    grads_seen = []
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        grads_seen.append([p.grad.detach().clone() for p in model.parameters()])
        opt.step()
    ref = _reference_muon(start, grads_seen, lr=0.05, momentum=0.9, weight_decay=0.01)
    for p, r in zip(model.parameters(), ref, strict=True):
        torch.testing.assert_close(p.detach(), r, atol=1e-12, rtol=1e-12)
    assert not torch.equal(ref[0], start[0])


def test_muon_rejects_vectors_and_bad_arguments():
    with pytest.raises(ValueError, match="AdamW"):
        st.Muon([torch.zeros(3, requires_grad=True)])
    with pytest.raises(ValueError, match="scale"):
        st.Muon([torch.zeros(3, 3, requires_grad=True)], scale="other")


# ----------------------------------------------------------------------------- GPU (Must show 2)


def _cuda_cases():
    dev = "cuda"
    g = torch.Generator(device="cpu").manual_seed(0)

    def r(*s, shift=0.0, scale=1.0, dtype=F64):
        return (scale * torch.randn(*s, generator=g, dtype=F64) + shift).to(dtype)

    def rc(*s, shift=0.0, scale=1.0):
        return torch.complex(r(*s, scale=scale), r(*s, scale=scale)) + shift

    return dev, [
        ("tril_dlr_solve", lambda *a: st.tril_dlr_solve(*a[:4], log_decay=a[4]),
         (r(2, 8).abs() + 1, r(2, 8, 2), r(2, 8, 2), r(2, 8, 3), -r(8).abs())),
        ("tril_dlr_matmul", lambda *a: st.tril_dlr_matmul(*a, trans=True),
         (r(2, 8), r(2, 8, 2), r(8, 2), r(2, 8, 3))),
        ("ut_transform", lambda *a: st.ut_transform(*a), (0.5 * r(2, 8, 3), r(2, 8).sigmoid())),
        ("cauchy", lambda *a: st.cauchy(*a, conj_pairs=True), (rc(2, 4), rc(4, shift=-2.0), rc(6))),
        ("vandermonde", lambda *a: st.vandermonde(*a, 9, log=True, conj_pairs=True),
         (rc(2, 4), rc(4, scale=0.2))),
        ("ssm_kernel_diag", lambda *a: st.ssm_kernel_diag(*a, 16),
         (torch.complex(-r(2, 4).abs(), r(2, 4)), rc(4), rc(2, 4), r(2).abs() * 0.1)),
        ("ssm_kernel_dplr", lambda *a: st.ssm_kernel_dplr(*a, 16),
         (torch.complex(-r(2, 4).abs() - 0.2, r(2, 4)), rc(1, 4, scale=0.4), rc(4), rc(2, 4),
          r(2).abs() * 0.1 + 0.01)),
        ("ssm_kernel_dplr complex", lambda *a: st.ssm_kernel_dplr(*a, 15, conj_pairs=False, c_tilde=True),
         (torch.complex(-r(2, 4).abs() - 0.2, r(2, 4)), rc(2, 4, scale=0.4), rc(4), rc(2, 4),
          r(2).abs() * 0.1 + 0.01)),
        ("msign", lambda M: st.msign(M), (r(2, 5, 4),)),
        ("linear_scan", lambda a, b: st.linear_scan(a, b), (r(3, 32).sigmoid(), r(3, 32))),
        ("selective_scan", lambda *a: st.selective_scan(*a, delta_softplus=True),
         (r(2, 4, 16), r(2, 4, 16), -r(4, 3).abs(), r(2, 3, 16), r(2, 3, 16), r(4))),
        ("delta_rule", lambda *a: st.delta_rule(*a, chunk_size=8),
         (r(2, 16, 4), 0.5 * r(2, 16, 4), r(2, 16, 3), r(2, 16).sigmoid())),
    ]


def _grads(fn, args):
    leaves = [a.detach().clone().requires_grad_() for a in args]
    out = fn(*leaves)
    w = torch.ones_like(out.real if out.is_complex() else out)
    (out.real * w).sum().backward() if out.is_complex() else (out * w).sum().backward()
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.gpu
def test_gpu_tensors_in_and_out_without_host_copies():
    import cupy

    t = torch.randn(5, 7, device="cuda", dtype=torch.float32)
    a = to_numpy_or_cupy(t)
    assert isinstance(a, cupy.ndarray) and a.data.ptr == t.data_ptr()
    c = cupy.arange(6, dtype=cupy.float32)
    assert from_numpy_or_cupy(c).data_ptr() == c.data.ptr
    _, cases = _cuda_cases()
    for name, fn, args in cases:
        out = fn(*(x.cuda() for x in args))
        assert out.is_cuda, name


@pytest.mark.gpu
def test_gpu_gradients_equal_cpu_gradients():
    dev, cases = _cuda_cases()
    for name, fn, args in cases:
        out_c, g_c = _grads(fn, args)
        out_g, g_g = _grads(fn, [a.to(dev) for a in args])
        assert out_g.is_cuda and all(g.is_cuda for g in g_g), name
        torch.testing.assert_close(out_g.cpu(), out_c, rtol=1e-8, atol=1e-9, msg=name)
        for i, (a, b) in enumerate(zip(g_g, g_c, strict=True)):
            torch.testing.assert_close(a.cpu(), b, rtol=1e-7, atol=1e-8, msg=f"{name} grad {i}")


@pytest.mark.gpu
def test_gpu_runs_on_the_callers_stream_and_bf16_works():
    import cupy

    from structla.interop import torch_stream

    side = torch.cuda.Stream()
    with torch.cuda.stream(side), torch_stream(torch.device("cuda")):
        assert cupy.cuda.get_current_stream().ptr == side.cuda_stream
    a = torch.rand(4, 4096, device="cuda").sigmoid()
    b = torch.randn(4, 4096, device="cuda")
    with torch.cuda.stream(side):
        h = st.linear_scan(a, b)
    side.synchronize()
    torch.testing.assert_close(h.cpu(), st.linear_scan(a.cpu(), b.cpu()), rtol=1e-4, atol=1e-4)
    xb = st.linear_scan(a.bfloat16(), b.bfloat16())
    assert xb.dtype == torch.bfloat16 and xb.is_cuda
    assert torch.equal(xb, st.linear_scan(a.bfloat16().float(), b.bfloat16().float()).bfloat16())
    leaves = [t.bfloat16().requires_grad_() for t in (a, b)]
    st.linear_scan(*leaves).float().sum().backward()
    assert all(t.grad.dtype == torch.bfloat16 and t.grad.is_cuda for t in leaves)

"""structla.models: every form equals the step-by-step recurrence, states round-trip, the fla
failure regimes stay finite and accurate, S4/S4D convolution == recurrence, Mamba parallel ==
decoding, all against independent float64 oracles written here."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

from structla._core.namespace import array_namespace
from structla.models import (
    MambaMixer,
    S4DLayer,
    S4Layer,
    delta_rule,
    gated_delta_rule,
    gated_linear_attention,
    linear_attention,
)
from structla.models import _numba as fused
from structla.models import _reference as ref
from tests.oracles import as_host, max_relative_error
from tests.strategies import batch_shapes, eps, seeds

MODELS = ("delta", "gated_delta", "linear", "linear_decay", "gla")
CHUNKS = (1, 16, 64, 100)


def _problem(rng, model, batch=(2,), length=150, dk=5, dv=3, dtype=np.float64, h0=True):
    """Random inputs of one model: unit-ish keys, β in (0, 1), gates log U(0.5, 1)."""
    q = rng.standard_normal((*batch, length, dk))
    k = rng.standard_normal((*batch, length, dk)) / np.sqrt(dk)
    v = rng.standard_normal((*batch, length, dv))
    args = [q, k, v]
    if model in ("delta", "gated_delta"):
        args.append(rng.random((*batch, length)))
    if model in ("gated_delta", "linear_decay"):
        args.append(np.log(rng.uniform(0.5, 1.0, (*batch, length))))
    if model == "gla":
        args.append(np.log(rng.uniform(0.5, 1.0, (*batch, length, dk))))
    state = rng.standard_normal((*batch, dv, dk)) if h0 else None
    return [a.astype(dtype) for a in args], None if state is None else state.astype(dtype)


def _call(model, args, **kw):
    if model == "delta":
        return delta_rule(*args, **kw)
    if model == "gated_delta":
        return gated_delta_rule(*args, **kw)
    if model == "linear":
        return linear_attention(*args, **kw)
    if model == "linear_decay":
        q, k, v, g = args
        return linear_attention(q, k, v, log_decay=g, **kw)
    return gated_linear_attention(*args, **kw)


def _modes(model):
    return ("recurrent", "chunk") if model == "gla" else ("recurrent", "chunk", "tril")


def _oracle(model, args, h0):
    """float64 step-by-step recurrence, written out here (independent of the library)."""
    q, k, v = (np.asarray(a, np.float64) for a in args[:3])
    batch, length = q.shape[:-2], q.shape[-2]
    s = np.zeros((*batch, v.shape[-1], q.shape[-1])) if h0 is None else np.array(h0, np.float64)
    out = np.zeros(v.shape)
    for t in range(length):
        kt, qt, vt = k[..., t, :], q[..., t, :], v[..., t, :]
        if model in ("delta", "gated_delta"):
            beta = np.asarray(args[3], np.float64)[..., t, None]
            alpha = np.exp(args[4][..., t, None, None]) if model == "gated_delta" else 1.0
            s = alpha * s
            u = beta * (vt - np.einsum("...ij,...j->...i", s, kt))
            s = s + u[..., :, None] * kt[..., None, :]
        else:
            if model == "linear_decay":
                s = np.exp(args[3][..., t, None, None]) * s
            elif model == "gla":
                s = s * np.exp(args[3][..., t, None, :])
            s = s + vt[..., :, None] * kt[..., None, :]
        out[..., t, :] = np.einsum("...ij,...j->...i", s, qt)
    return out, s


# ---- Must show 1: chunk == recurrent to float64 accuracy, any T, every chunk size


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("chunk", CHUNKS)
def test_every_form_equals_recurrence_float64(model, chunk):
    rng = np.random.default_rng(7)
    args, h0 = _problem(rng, model)          # T = 150: not a multiple of 16, 64 or 100
    want, want_state = _oracle(model, args, h0)
    for mode in _modes(model):
        out, state = _call(model, args, h0=h0, chunk_size=chunk, mode=mode, return_state=True)
        assert max_relative_error(out, want) < 1e-10, mode
        assert max_relative_error(state, want_state) < 1e-10, mode


@pytest.mark.parametrize("model", MODELS)
def test_fused_kernel_equals_reference_oracle(model):
    rng = np.random.default_rng(8)
    args, h0 = _problem(rng, model, length=37)
    q, k, v = args[:3]
    if model in ("delta", "gated_delta"):
        gates = args[4] if model == "gated_delta" else np.zeros(q.shape[:2])
        pairs = [f.delta_rule_recurrent(q, k, v, args[3], gates, h0) for f in (fused, ref)]
    else:
        gates = args[3] if model != "linear" else np.zeros(q.shape[:2])
        pairs = [f.linear_attention_recurrent(q, k, v, gates, h0) for f in (fused, ref)]
    (o1, s1), (o2, s2) = pairs
    assert max_relative_error(o1, o2) < 1e-12
    assert max_relative_error(s1, s2) < 1e-12


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("length", [130, 131])
def test_fused_delta_column_blocks_equal_float64_oracle(dtype, length):
    # d_v = two SIMD column blocks (16 columns in float32, 8 in float64) plus a remainder;
    # T spans three tiles of 64 steps and, odd, leaves a last step outside the two-step
    # passes; pairs whose log-gates are exactly 0 take the pass without the gate multiply.
    rng = np.random.default_rng(length)
    dv = 2 * (64 // np.dtype(dtype).itemsize) + 3
    (q, k, v, beta, la), h0 = _problem(rng, "gated_delta", batch=(3,), length=length, dk=9, dv=dv)
    la[:, : length // 2] = 0.0
    la[1] = 0.0
    want, want_state = ref.delta_rule_recurrent(q, k, v, beta, la, h0)
    cast = [np.ascontiguousarray(x, dtype=dtype) for x in (q, k, v, beta, la, h0)]
    got, state = fused.delta_rule_recurrent(*cast)
    assert got.dtype == state.dtype == np.dtype(dtype)
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert max_relative_error(got, want) < tol
    assert max_relative_error(state, want_state) < tol


@pytest.mark.parametrize("model", MODELS)
def test_two_halves_with_carried_state_equal_the_whole(model):
    rng = np.random.default_rng(9)
    args, h0 = _problem(rng, model, length=131)
    whole, whole_state = _call(model, args, h0=h0, mode="recurrent", return_state=True)
    split = 53                               # not a chunk boundary
    for mode in _modes(model):
        first, mid = _call(model, [a[..., :split, :] if a.ndim == args[0].ndim else a[..., :split]
                                   for a in args], h0=h0, chunk_size=16, mode=mode, return_state=True)
        second, last = _call(model, [a[..., split:, :] if a.ndim == args[0].ndim else a[..., split:]
                                     for a in args], h0=mid, chunk_size=16, mode=mode, return_state=True)
        assert max_relative_error(np.concatenate([first, second], axis=-2), whole) < 1e-12, mode
        assert max_relative_error(last, whole_state) < 1e-12, mode


def test_delta_rule_equals_dense_triangular_solve():
    """MATH F3 in closed form: (I + tril(diag(β)KKᵀ, −1)) U = diag(β)V, O = ((QKᵀ) ⊙ M) U."""
    rng = np.random.default_rng(10)
    (q, k, v, beta), _ = _problem(rng, "delta", batch=(), length=90, h0=False)
    system = np.eye(90) + np.tril(beta[:, None] * (k @ k.T), -1)
    u = scipy.linalg.solve_triangular(system, beta[:, None] * v, lower=True)
    want = np.tril(q @ k.T) @ u
    for mode in _modes("delta"):
        assert max_relative_error(delta_rule(q, k, v, beta, mode=mode, chunk_size=32), want) < 1e-12


def test_gated_delta_rule_equals_dense_form():
    """MATH F4: O = ((QKᵀ) ⊙ Γ)(I + (KKᵀ β) ⊙ (Γ − I))⁻¹ diag(β) V."""
    rng = np.random.default_rng(11)
    (q, k, v, beta, la), _ = _problem(rng, "gated_delta", batch=(), length=70, h0=False)
    g = np.cumsum(la)
    gamma = np.tril(np.exp(g[:, None] - g[None, :]))
    system = np.eye(70) + np.tril(beta[:, None] * (k @ k.T) * gamma, -1)
    want = ((q @ k.T) * gamma) @ scipy.linalg.solve_triangular(system, beta[:, None] * v, lower=True)
    for mode in _modes("gated_delta"):
        got = gated_delta_rule(q, k, v, beta, la, mode=mode, chunk_size=16)
        assert max_relative_error(got, want) < 1e-12


# ---- Must show 2: the regimes where fla produces NaNs (#537, #736)


def _regime(name, rng, batch=2, length=300, d=16):
    f32 = np.float32
    q = rng.standard_normal((batch, length, d))
    v = rng.standard_normal((batch, length, d))
    raw = rng.standard_normal((batch, length, d))
    unit = raw / np.linalg.norm(raw, axis=-1, keepdims=True)
    beta = rng.random((batch, length))
    gates = None
    if name == "raw_keys":                   # not normalised: β‖k‖² spread around [0, 4]
        k, beta = raw, beta * 2 / d
    elif name == "beta_up_to_2":
        k, beta = unit, 2 * beta
    elif name == "beta_exactly_2":
        k, beta = unit, np.full((batch, length), 2.0)
    else:
        k = unit
        gates = {"gate_zero": np.zeros((batch, length)), "gate_minus_30": np.full((batch, length), -30.0),
                 "gate_minus_1e4": np.full((batch, length), -1e4),
                 "gate_minus_inf": np.full((batch, length), -np.inf),
                 "gate_mixed": np.where(rng.random((batch, length)) < 0.1, -50.0, np.log(0.99)),
                 }[name]
    arrays = [x.astype(f32) for x in (q, k, v, beta)]
    return arrays, None if gates is None else gates.astype(f32)


REGIMES = ("raw_keys", "beta_up_to_2", "beta_exactly_2", "gate_zero", "gate_minus_30",
           "gate_minus_1e4", "gate_minus_inf", "gate_mixed")


def _regime_oracle(arrays, gates):
    """The float64 recurrent output for a regime's inputs (gates clipped at −10⁴, as documented)."""
    args64 = [a.astype(np.float64) for a in arrays]
    if gates is None:
        return _oracle("delta", args64, None)[0]
    return _oracle("gated_delta", [*args64, np.maximum(gates.astype(np.float64), -1e4)], None)[0]


@pytest.mark.parametrize("regime", REGIMES)
def test_fla_failure_regimes_are_finite_and_accurate_in_float32(regime):
    rng = np.random.default_rng(12)
    arrays, gates = _regime(regime, rng)
    want = _regime_oracle(arrays, gates)
    assert np.isfinite(want).all()
    for mode in ("recurrent", "chunk", "tril"):
        for chunk in (16, 64):
            if gates is None:
                out = delta_rule(*arrays, mode=mode, chunk_size=chunk)
            else:
                out = gated_delta_rule(*arrays, gates, mode=mode, chunk_size=chunk)
            assert out.dtype == np.float32
            assert np.isfinite(out).all(), (mode, chunk)
            assert max_relative_error(out, want) < 200 * eps(np.float32), (mode, chunk)


def test_log_gate_zero_is_the_ungated_rule():
    rng = np.random.default_rng(13)
    (q, k, v, beta), h0 = _problem(rng, "delta")
    zero = np.zeros(beta.shape)
    for mode in _modes("delta"):
        a = gated_delta_rule(q, k, v, beta, zero, h0=h0, mode=mode)
        b = delta_rule(q, k, v, beta, h0=h0, mode=mode)
        assert max_relative_error(a, b) < 1e-13


# ---- properties over shapes, broadcasting, dtypes, edge sizes


@given(model=st.sampled_from(MODELS), shapes=batch_shapes(max_dims=2, max_side=2),
       length=st.sampled_from((0, 1, 2, 7, 64, 65)), dk=st.integers(1, 4), dv=st.integers(1, 3),
       chunk=st.integers(1, 70), dtype=st.sampled_from(("float32", "float64")),
       mode=st.sampled_from(("recurrent", "chunk", "tril", "auto")), seed=seeds())
def test_property_broadcast_batches_any_length(model, shapes, length, dk, dv, chunk, dtype, mode, seed):
    if model == "gla" and mode == "tril":
        mode = "chunk"
    rng = np.random.default_rng(seed)
    args, _ = _problem(rng, model, batch=shapes[0], length=length, dk=dk, dv=dv, dtype=dtype, h0=False)
    # Keys from the second batch shape: broadcasting between operands.
    args[1] = (rng.standard_normal((*shapes[1], length, dk)) / np.sqrt(dk)).astype(dtype)
    batch = np.broadcast_shapes(shapes[0], shapes[1])
    full = [np.broadcast_to(a, (*batch, *a.shape[len(shapes[1 if i == 1 else 0]):]))
            for i, a in enumerate(args)]
    want, _ = _oracle(model, full, None)
    out = _call(model, args, chunk_size=chunk, mode=mode)
    assert out.shape == (*batch, length, dv) and out.dtype == np.dtype(dtype)
    if length:
        assert max_relative_error(out, want) < 50 * eps(dtype) * max(1, length) ** 0.5


def test_zero_size_batch_and_empty_sequence():
    for model in MODELS:
        rng = np.random.default_rng(0)
        args, _ = _problem(rng, model, batch=(0,), length=5)
        for mode in _modes(model):
            out, state = _call(model, args, mode=mode, return_state=True)
            assert out.shape == (0, 5, 3) and state.shape == (0, 3, 5)
        args, h0 = _problem(rng, model, batch=(2,), length=0)
        for mode in _modes(model):
            out, state = _call(model, args, h0=h0, mode=mode, return_state=True)
            assert out.shape == (2, 0, 3)
            np.testing.assert_array_equal(state, h0)


def test_dtypes_integers_promote_and_float16_round_trips():
    rng = np.random.default_rng(1)
    (q, k, v, beta), _ = _problem(rng, "delta", length=20, h0=False)
    ints = [np.round(4 * a).astype(np.int64) for a in (q, k, v)]
    assert delta_rule(*ints, beta).dtype == np.float64
    half = delta_rule(*(a.astype(np.float16) for a in (q, k, v, beta)))
    assert half.dtype == np.float16
    want, _ = _oracle("delta", [a.astype(np.float16).astype(np.float64) for a in (q, k, v, beta)], None)
    assert max_relative_error(half, want) < 1e-2


def test_inputs_unchanged_read_only_and_non_contiguous():
    rng = np.random.default_rng(2)
    (q, k, v, beta, la), h0 = _problem(rng, "gated_delta", length=40, dk=6)
    q_nc = np.asfortranarray(q)
    k_nc = np.repeat(k, 2, axis=-1)[..., ::2]
    arrays = [q_nc, k_nc, v, beta, la, h0]
    for a in arrays:
        a.flags.writeable = False
    copies = [a.copy() for a in arrays]
    want, _ = _oracle("gated_delta", [q, k, v, beta, la], h0)
    for mode in _modes("gated_delta"):
        out = gated_delta_rule(q_nc, k_nc, v, beta, la, h0=h0, mode=mode, chunk_size=16)
        assert max_relative_error(out, want) < 1e-12
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_bad_input_is_named():
    rng = np.random.default_rng(3)
    (q, k, v, beta), _ = _problem(rng, "delta", length=10)
    with pytest.raises(ValueError, match="'k'"):
        delta_rule(q, k[..., :3], v, beta)
    with pytest.raises(ValueError, match="'beta'"):
        delta_rule(q, k, v, beta[..., :9])
    with pytest.raises(ValueError, match="'h0'"):
        delta_rule(q, k, v, beta, h0=np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="'mode'"):
        delta_rule(q, k, v, beta, mode="fast")
    with pytest.raises(ValueError, match="'chunk_size'"):
        delta_rule(q, k, v, beta, chunk_size=0)
    with pytest.raises(ValueError, match="'mode'"):
        gated_linear_attention(q, k, v, np.zeros(q.shape), mode="tril")
    with pytest.raises(TypeError, match="'v'"):
        delta_rule(q, k, v + 1j, beta)
    bad = q.copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="'q'"):
        delta_rule(bad, k, v, beta)
    assert np.isnan(delta_rule(bad, k, v, beta, check_finite=False)).any()
    with pytest.raises(ValueError, match="'log_alpha'"):
        gated_delta_rule(q, k, v, beta, np.full(beta.shape, np.nan))
    with pytest.raises(ValueError, match="'log_alpha'"):
        gated_linear_attention(q, k, v, np.zeros(beta.shape))



@pytest.mark.parametrize("mode", ("recurrent", "chunk", "auto"))
@pytest.mark.parametrize("position", ((0, 0, 0), (1, 9, 2)))
def test_nonfinite_sequences_are_named_in_every_mode(mode, position):
    """The fused CPU recurrence counts NaN/Inf while it reads q, k, v, β (no separate pass):
    each argument is still named, at the first and the last step, in every mode."""
    rng = np.random.default_rng(4)
    args, _ = _problem(rng, "delta", length=10)
    for index, name in enumerate(("q", "k", "v", "beta")):
        for value in (np.nan, np.inf, -np.inf):
            bad = [a.copy() for a in args]
            bad[index][position[:bad[index].ndim]] = value
            with pytest.raises(ValueError, match=f"'{name}'"):
                delta_rule(*bad, mode=mode, chunk_size=4)
    # the counts of both implementations of the counted recurrence agree
    q, k, v, beta = (np.ascontiguousarray(a.reshape(-1, *a.shape[1:])) for a in args)
    v[1, 2, 0] = np.inf
    q[0, 5, 1] = np.nan
    gates, h0 = np.zeros(beta.shape), np.zeros((2, v.shape[-1], q.shape[-1]))
    for impl in (fused, ref):
        assert list(impl.delta_rule_recurrent_counted(q, k, v, beta, gates, h0)[2]) == [1, 0, 1, 0]

# ---- Must show 3: S4 / S4D convolution == recurrence; Mamba parallel == decoding


def _run_steps(layer, x, state, **kw):
    outs = []
    for t in range(x.shape[-2]):
        y, state = layer.step(x[..., t, :], state, **kw)
        outs.append(y)
    return array_namespace(y=x).stack(outs, axis=-2), state


@pytest.mark.parametrize("init", ("lin", "inv", "real"))
def test_s4d_convolution_equals_recurrence(init):
    layer = S4DLayer(4, N=16, init=init, seed=0)
    x = np.random.default_rng(1).standard_normal((2, 300, 4))
    steps, _ = _run_steps(layer, x, layer.initial_state((2,)), system=layer.discrete_system())
    assert max_relative_error(layer(x), steps) < 1e-10


def test_s4d_kernel_equals_dense_powers():
    layer = S4DLayer(2, N=8, seed=3)
    ad, bd = layer.discrete_system()
    kernel = layer.kernel(50)
    for h in range(2):
        want = [2 * np.sum(layer.C[h] * bd[h] * ad[h] ** j).real for j in range(50)]
        assert max_relative_error(kernel[h], want) < 1e-12


@pytest.mark.parametrize("measure", ("legs", "legt"))
def test_s4_convolution_equals_recurrence_and_dense_system(measure):
    layer = S4Layer(3, N=16, measure=measure, seed=0)
    x = np.random.default_rng(2).standard_normal((300, 3))
    system = layer.discrete_system()
    steps, _ = _run_steps(layer, x, layer.initial_state(), system=system)
    assert max_relative_error(layer(x), steps) < 1e-10
    ad, bd, c = system                        # dense powers of the full system
    want = np.array([[(c[h] @ np.linalg.matrix_power(ad[h], j) @ bd[h]).real for j in range(40)]
                     for h in range(3)])
    assert max_relative_error(layer.kernel(40), want) < 1e-10


def test_ssm_layers_float32_and_bad_input():
    layer = S4DLayer(3, N=8, seed=0, dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    steps, _ = _run_steps(layer, x, layer.initial_state())
    assert max_relative_error(y, steps) < 1e-4
    with pytest.raises(ValueError, match="'x'"):
        layer(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="'channels'"):
        S4Layer(0)


def _mamba_oracle(m, x):
    """Mamba mixer written out step by step from its parameters (mamba_ssm's step)."""
    length = x.shape[0]
    conv_buf = np.zeros((m.d_inner, m.d_conv))
    h = np.zeros((m.d_inner, m.d_state))
    a = -np.exp(m.A_log)
    out = []
    for t in range(length):
        xz = m.in_proj @ x[t]
        u, z = xz[:m.d_inner], xz[m.d_inner:]
        conv_buf = np.concatenate([conv_buf[:, 1:], u[:, None]], axis=1)
        u = np.sum(conv_buf * m.conv_weight, axis=1) + m.conv_bias
        u = u / (1 + np.exp(-u))
        proj = m.x_proj @ u
        dt = m.dt_proj @ proj[:m.dt_rank] + m.dt_bias
        dt = np.log1p(np.exp(dt))
        b, c = proj[m.dt_rank:m.dt_rank + m.d_state], proj[m.dt_rank + m.d_state:]
        h = np.exp(dt[:, None] * a) * h + (dt * u)[:, None] * b[None, :]
        y = (h @ c + m.D * u) * (z / (1 + np.exp(-z)))
        out.append(m.out_proj @ y)
    return np.array(out)


def test_mamba_parallel_equals_decoding_and_oracle():
    m = MambaMixer(16, d_state=8, seed=0)
    x = np.random.default_rng(4).standard_normal((3, 40, 16))
    y = m(x)
    steps, _ = _run_steps(m, x, m.initial_state((3,)))
    assert max_relative_error(y, steps) < 1e-12
    assert max_relative_error(y[1], _mamba_oracle(m, x[1])) < 1e-12
    # prefill 25 tokens, then decode the rest one by one
    head, state = m(x[:, :25], return_state=True)
    tail, _ = _run_steps(m, x[:, 25:], state)
    assert max_relative_error(np.concatenate([head, tail], axis=1), y) < 1e-12


def test_mamba_float32_and_bad_input():
    m = MambaMixer(8, d_state=4, seed=1, dtype=np.float32)
    x = np.random.default_rng(5).standard_normal((30, 8)).astype(np.float32)
    y = m(x)
    assert y.dtype == np.float32 and y.shape == (30, 8)
    steps, _ = _run_steps(m, x, m.initial_state())
    assert max_relative_error(y, steps) < 1e-4
    with pytest.raises(ValueError, match="'x'"):
        m(np.zeros((5, 7)))


# ---- GPU: the same modules on CuPy arrays through the families' GPU paths


@pytest.mark.gpu
@pytest.mark.parametrize("model", MODELS)
def test_gpu_every_form_equals_cpu_float64(cp, model):
    rng = np.random.default_rng(20)
    args, h0 = _problem(rng, model, length=150, dk=32, dv=16)
    want, want_state = _oracle(model, args, h0)
    dargs = [cp.asarray(a) for a in args]
    for mode in (*_modes(model), "auto"):
        for chunk in (16, 64):
            out, state = _call(model, dargs, h0=cp.asarray(h0), chunk_size=chunk, mode=mode,
                               return_state=True)
            assert isinstance(out, cp.ndarray)
            assert max_relative_error(as_host(out), want) < 1e-10, (mode, chunk)
            assert max_relative_error(as_host(state), want_state) < 1e-10, (mode, chunk)


@pytest.mark.gpu
@pytest.mark.parametrize("regime", REGIMES)
def test_gpu_fla_regimes_float32(cp, regime):
    rng = np.random.default_rng(21)
    arrays, gates = _regime(regime, rng)
    want = _regime_oracle(arrays, gates)
    darrays = [cp.asarray(a) for a in arrays]
    for mode in ("auto", "chunk", "tril"):
        if gates is None:
            out = delta_rule(*darrays, mode=mode)
        else:
            out = gated_delta_rule(*darrays, cp.asarray(gates), mode=mode)
        assert out.dtype == np.float32, mode
        out = as_host(out)
        assert np.isfinite(out).all(), mode
        assert max_relative_error(out, want) < 200 * eps(np.float32), mode


@pytest.mark.gpu
def test_gpu_float16_inputs_compute_in_float32(cp):
    rng = np.random.default_rng(22)
    (q, k, v, beta), _ = _problem(rng, "delta", length=200, dk=64, dv=64, h0=False)
    half = [cp.asarray(a, dtype=cp.float16) for a in (q, k, v, beta)]
    out = delta_rule(*half)
    assert out.dtype == cp.float16
    want, _ = _oracle("delta", [as_host(a).astype(np.float64) for a in half], None)
    assert max_relative_error(as_host(out), want) < 2e-3


@pytest.mark.gpu
def test_gpu_layers_equal_cpu(cp):
    x = np.random.default_rng(23).standard_normal((2, 128, 4))
    for cls in (S4DLayer, S4Layer):
        cpu, gpu = cls(4, N=16, seed=0), cls(4, N=16, seed=0, xp=cp)
        y = gpu(cp.asarray(x))
        assert isinstance(y, cp.ndarray)
        assert max_relative_error(as_host(y), cpu(x)) < 1e-10
        steps, _ = _run_steps(gpu, cp.asarray(x[:, :20]), gpu.initial_state((2,)))
        assert max_relative_error(as_host(steps), cpu(x[:, :20])) < 1e-10
    cpu, gpu = MambaMixer(4, d_state=8, seed=0), MambaMixer(4, d_state=8, seed=0, xp=cp)
    y = gpu(cp.asarray(x))
    assert max_relative_error(as_host(y), cpu(x)) < 1e-10
    steps, _ = _run_steps(gpu, cp.asarray(x[:, :20]), gpu.initial_state((2,)))
    assert max_relative_error(as_host(steps), cpu(x[:, :20])) < 1e-10

"""scan: linear_scan, selective_scan and deer against step-by-step float64 loops (CPU)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracles import linear_scan_loop, max_relative_error, selective_scan_loop, tanh_rnn_loop
from strategies import eps, extreme_selective_inputs, random_array, seeds

import structla
from structla import NotConvergedWarning
from structla._core.dispatch import implementation

LENGTHS = (1, 2, 63, 64, 65, 1000)
STATES = (1, 16, 300)


def _selective_problem(rng, batch, dim, nstate, length, *, complex_model=False, b_layout="var",
                       c_layout="var", groups=1, dtype="float64"):
    """Random Mamba-like inputs: Δ of either sign before softplus, decaying A."""
    u = random_array(rng, (batch, dim, length), dtype)
    delta = (0.5 * random_array(rng, (batch, dim, length))).astype(dtype)
    A = -np.exp(rng.uniform(-1, 1.5, (dim, nstate)))
    if complex_model:
        A = A + 1j * rng.uniform(-3, 3, (dim, nstate))
    cdtype = np.result_type(dtype, np.complex64) if complex_model else np.dtype(dtype)
    shapes = {"var": (batch, nstate, length), "group": (batch, groups, nstate, length),
              "inv": (dim, nstate)}
    B = random_array(rng, shapes[b_layout], cdtype)
    C = random_array(rng, shapes[c_layout], cdtype)
    return u, delta, A.astype(cdtype), B, C


@st.composite
def selective_cases(draw):
    length = draw(st.sampled_from(LENGTHS))
    nstate = draw(st.sampled_from(STATES))
    # Keep the float64 loop oracle cheap: fewer channels for the long/large cases.
    small = length * nstate > 5000
    batch = draw(st.integers(1, 1 if small else 2))
    groups = draw(st.sampled_from((1, 2)))
    dim = groups * draw(st.integers(1, 1 if small else 2))
    return {
        "batch": batch, "dim": dim, "nstate": nstate, "length": length, "groups": groups,
        "complex_model": draw(st.booleans()),
        "b_layout": draw(st.sampled_from(("var", "group", "inv"))),
        "c_layout": draw(st.sampled_from(("var", "group", "inv"))),
        "bias": draw(st.booleans()), "softplus": draw(st.booleans()), "D": draw(st.booleans()),
        "z": draw(st.booleans()), "h0": draw(st.booleans()), "seed": draw(seeds()),
    }


@given(case=selective_cases(), backend=st.sampled_from(("numba", "reference")))
def test_selective_scan_matches_loop(case, backend):
    rng = np.random.default_rng(case["seed"])
    batch, dim, nstate, length = case["batch"], case["dim"], case["nstate"], case["length"]
    u, delta, A, B, C = _selective_problem(rng, batch, dim, nstate, length,
                                           complex_model=case["complex_model"],
                                           b_layout=case["b_layout"], c_layout=case["c_layout"],
                                           groups=case["groups"])
    D = rng.standard_normal(dim) if case["D"] else None
    z = rng.standard_normal((batch, dim, length)) if case["z"] else None
    bias = rng.standard_normal(dim) if case["bias"] else None
    if not case["softplus"]:
        # Δ > 0 keeps exp(ΔA) < 1: a stable recurrence over L = 1000 steps.
        delta = np.abs(delta)
        bias = None if bias is None else np.abs(bias)
    h0 = random_array(rng, (batch, dim, nstate), A.dtype) if case["h0"] else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STRUCTLA_BACKEND", "reference" if backend == "reference" else "")
        y, last = structla.selective_scan(u, delta, A, B, C, D, z, delta_bias=bias,
                                          delta_softplus=case["softplus"], h0=h0, return_state=True)
        only_y = structla.selective_scan(u, delta, A, B, C, D, z, delta_bias=bias,
                                         delta_softplus=case["softplus"], h0=h0)
    y_ref, last_ref = selective_scan_loop(u, delta, A, B, C, D, z, bias, case["softplus"], h0)
    assert y.dtype == np.float64 and y.shape == (batch, dim, length)
    assert last.dtype == A.dtype and last.shape == (batch, dim, nstate)
    assert max_relative_error(y, y_ref) <= 1e-12
    assert max_relative_error(last, last_ref) <= 1e-12
    np.testing.assert_array_equal(only_y, y)


@pytest.mark.parametrize("complex_model", [False, True])
@pytest.mark.parametrize("length", [64, 1000])
def test_selective_scan_float32_is_float32_accurate(complex_model, length):
    rng = np.random.default_rng(7)
    u, delta, A, B, C = _selective_problem(rng, 2, 4, 16, length, complex_model=complex_model,
                                           dtype="float32")
    z = rng.standard_normal((2, 4, length)).astype(np.float32)
    D = np.ones(4, np.float32)
    y, last = structla.selective_scan(u, delta, A, B, C, D, z, delta_softplus=True, return_state=True)
    y_ref, last_ref = selective_scan_loop(u, delta, A, B, C, D, z, None, True)
    assert y.dtype == np.float32
    assert last.dtype == (np.complex64 if complex_model else np.float32)
    # Each output sums N decaying terms over ~1/Δ steps: error grows like sqrt(steps)·eps.
    assert max_relative_error(y, y_ref) <= 200 * eps("float32")
    assert max_relative_error(last, last_ref) <= 200 * eps("float32")


def test_selective_scan_interleaved_complex_bc_is_mamba_layout():
    rng = np.random.default_rng(3)
    u, delta, A, B, C = _selective_problem(rng, 2, 3, 4, 9, complex_model=True)
    interleave = lambda M: np.stack([M.real, M.imag], axis=-1).reshape(*M.shape[:-1], -1)  # noqa: E731
    y = structla.selective_scan(u, delta, A, B, C)
    y_interleaved = structla.selective_scan(u, delta, A, interleave(B), interleave(C))
    np.testing.assert_allclose(y_interleaved, y, rtol=1e-14, atol=1e-14)


def test_selective_scan_batch_one_bc_broadcasts():
    rng = np.random.default_rng(4)
    u, delta, A, B, C = _selective_problem(rng, 3, 2, 5, 11)
    y = structla.selective_scan(u, delta, A, B[:1], C[:1])
    y_ref, _ = selective_scan_loop(u, delta, A, np.repeat(B[:1], 3, 0), np.repeat(C[:1], 3, 0))
    assert max_relative_error(y, y_ref) <= 1e-13


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_selective_scan_extreme_steps_underflow_cleanly(dtype):
    """Δ up to 1e3 and A down to −1e3: exp(ΔA) underflows to 0, no overflow, no NaN."""
    rng = np.random.default_rng(5)
    batch, dim, nstate, length = 2, 3, 16, 65
    u, delta, A, B, C, z = extreme_selective_inputs(rng, batch, dim, nstate, length, dtype)
    for softplus in (False, True):
        y, last = structla.selective_scan(u, delta, A, B, C, z=z, delta_softplus=softplus,
                                          return_state=True)
        assert np.isfinite(y).all() and np.isfinite(last).all()
        y_ref, last_ref = selective_scan_loop(u, delta, A, B, C, z=z, delta_softplus=softplus)
        tol = 1e-12 if dtype == "float64" else 1e-4
        assert max_relative_error(y, y_ref) <= tol
        assert max_relative_error(last, last_ref) <= tol
    # Steps that wipe the state entirely: the state is exactly the last input term.
    huge = np.full_like(delta, 1e3)
    steep = -np.logspace(0, 3, dim * nstate).reshape(dim, nstate).astype(dtype)
    _, last = structla.selective_scan(u, huge, steep, B, C, return_state=True)
    expected = 1e3 * B[:, None, :, -1] * u[:, :, -1:]
    np.testing.assert_allclose(last, expected, rtol=10 * eps(dtype))


def test_selective_scan_numba_equals_reference_float32():
    rng = np.random.default_rng(6)
    u, delta, A, B, C = _selective_problem(rng, 2, 4, 16, 130, dtype="float32", b_layout="group",
                                           groups=2)
    C = C[:, None]  # the canonical (batch, G, N, L) layout the backends receive
    fast = implementation("scan", "selective_scan", np, backend="numba")
    ref = implementation("scan", "selective_scan", np, backend="reference")
    y1, h1 = fast(u, delta, A, B, C, None, None, None, True, None)
    y2, h2 = ref(u, delta, A, B, C, None, None, None, True, None)
    assert max_relative_error(y1, y2) <= 50 * eps("float32")
    assert max_relative_error(h1, h2) <= 50 * eps("float32")


def test_selective_scan_edge_sizes():
    rng = np.random.default_rng(8)
    A = -np.ones((3, 4))
    for batch, dim, length in [(0, 3, 5), (2, 3, 0)]:
        u = np.zeros((batch, dim, length))
        B = np.zeros((batch, 4, length))
        h0 = rng.standard_normal((batch, dim, 4))
        y, last = structla.selective_scan(u, u, A, B, B, h0=h0, return_state=True)
        assert y.shape == (batch, dim, length) and last.shape == (batch, dim, 4)
        np.testing.assert_array_equal(last, h0)
    u = rng.standard_normal((2, 3, 7))
    y = structla.selective_scan(u, u, np.ones((3, 0)), np.ones((2, 0, 7)), np.ones((2, 0, 7)),
                                D=np.full(3, 2.0))
    np.testing.assert_allclose(y, 2 * u)


def test_selective_scan_dtypes():
    rng = np.random.default_rng(9)
    u = rng.integers(-3, 3, (1, 2, 5))
    A = -np.ones((2, 3), np.int64)
    B = np.ones((1, 3, 5), np.int32)
    assert structla.selective_scan(u, np.abs(u), A, B, B).dtype == np.float64
    u32 = u.astype(np.float32)
    y, h = structla.selective_scan(u32, np.abs(u32), A.astype(np.complex64), B.astype(np.float32),
                                   B.astype(np.float32), return_state=True)
    assert y.dtype == np.float32 and h.dtype == np.complex64


def test_selective_scan_readonly_noncontiguous_inputs_unchanged():
    rng = np.random.default_rng(10)
    u, delta, A, B, C = _selective_problem(rng, 2, 4, 5, 12)
    expected = structla.selective_scan(u, delta, A, B, C, np.ones(4), u)
    # Fortran-ordered, strided, read-only copies of the same values.
    big = np.zeros((2, 4, 24))
    big[:, :, ::2] = u
    u_strided = big[:, :, ::2]
    delta_f = np.asfortranarray(delta)
    B_t = np.ascontiguousarray(np.swapaxes(B, 1, 2)).swapaxes(1, 2)
    for x in (u_strided, delta_f, A, B_t, C):
        x.flags.writeable = False
    snapshot = [x.copy() for x in (u_strided, delta_f, A, B_t, C)]
    y = structla.selective_scan(u_strided, delta_f, A, B_t, C, np.ones(4), u_strided)
    np.testing.assert_allclose(y, expected, rtol=1e-14, atol=0)
    for before, after in zip(snapshot, (u_strided, delta_f, A, B_t, C), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize(("change", "message"), [
    ({"u": np.zeros((2, 3))}, "'u'"),
    ({"delta": np.zeros((2, 3, 6))}, "'delta'"),
    ({"A": np.zeros((4, 4))}, "'A'"),
    ({"B": np.zeros((2, 5, 5))}, "'B'"),
    ({"C": np.zeros((2, 2, 4, 5))}, "'C'"),
    ({"B": np.zeros((4, 4))}, "'B'"),
    ({"D": np.zeros(4)}, "'D'"),
    ({"z": np.zeros((2, 3, 4))}, "'z'"),
    ({"delta_bias": np.zeros((3, 1))}, "'delta_bias'"),
    ({"h0": np.zeros((2, 3, 5))}, "'h0'"),
])
def test_selective_scan_bad_shapes_name_the_argument(change, message):
    args = {"u": np.zeros((2, 3, 5)), "delta": np.zeros((2, 3, 5)), "A": -np.ones((3, 4)),
            "B": np.zeros((2, 4, 5)), "C": np.zeros((2, 4, 5))}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        structla.selective_scan(**args)


def test_selective_scan_bad_values_and_types():
    u = np.zeros((1, 2, 3))
    A, B = -np.ones((2, 2)), np.zeros((1, 2, 3))
    bad = u.copy()
    bad[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"'delta'.*infs or NaNs"):
        structla.selective_scan(u, bad, A, B, B)
    assert np.isnan(structla.selective_scan(u, bad, A, B, B, check_finite=False)).any()
    with pytest.raises(TypeError, match="'u'"):
        structla.selective_scan(u + 1j, u, A, B, B)
    with pytest.raises(TypeError, match="'B'"):
        structla.selective_scan(u, u, A, B + 1j, B)
    with pytest.raises(TypeError, match="'h0'"):
        structla.selective_scan(u, u, A, B, B, h0=np.zeros((1, 2, 2), complex))


# ---------------------------------------------------------------- linear_scan


@st.composite
def linear_cases(draw):
    length = draw(st.sampled_from((0, 1, 2, 7, 64, 65, 300)))
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    ndim = len(batch) + 1
    axis = draw(st.integers(-ndim, ndim - 1))
    shape = list(batch)
    shape.insert(axis % ndim, length)
    # a broadcasts: drop leading dims and set random dims to 1 (never the whole time axis removal).
    a_shape = [1 if draw(st.booleans()) else s for s in shape]
    a_shape = a_shape[draw(st.integers(0, len(a_shape))):]
    return {"shape": tuple(shape), "a_shape": tuple(a_shape), "axis": axis,
            "dtype": draw(st.sampled_from(("float32", "float64", "complex64", "complex128"))),
            "reverse": draw(st.booleans()), "h0": draw(st.booleans()), "seed": draw(seeds())}


@given(case=linear_cases(), backend=st.sampled_from(("numba", "reference")))
def test_linear_scan_matches_loop(case, backend):
    rng = np.random.default_rng(case["seed"])
    dtype, axis = case["dtype"], case["axis"]
    b = random_array(rng, case["shape"], dtype)
    a = random_array(rng, case["a_shape"], dtype)
    a = (0.95 * a / np.maximum(1.0, np.abs(a))).astype(dtype)  # |a| < 1: no overflow over L steps
    state = tuple(s for i, s in enumerate(case["shape"]) if i != axis % len(case["shape"]))
    h0 = random_array(rng, state, dtype) if case["h0"] else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STRUCTLA_BACKEND", "reference" if backend == "reference" else "")
        h = structla.linear_scan(a, b, axis=axis, h0=h0, reverse=case["reverse"])
    assert h.shape == b.shape and h.dtype == np.dtype(dtype)
    a_full = np.moveaxis(np.broadcast_to(a, b.shape), axis, -1)
    expected = np.moveaxis(linear_scan_loop(a_full, np.moveaxis(b, axis, -1), h0, case["reverse"]), -1, axis)
    assert max_relative_error(h, expected) <= 20 * eps(dtype)


def test_linear_scan_matches_lfilter_and_broadcasts_h0():
    import scipy.signal

    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 3, 500))
    h = structla.linear_scan(0.8, x, h0=np.array([1.0, 2.0, 3.0]))
    zi = 0.8 * np.broadcast_to(np.array([1.0, 2.0, 3.0]), (4, 3))[..., None]
    ref, _ = scipy.signal.lfilter([1.0], [1.0, -0.8], x, axis=-1, zi=zi)
    assert max_relative_error(h, ref) <= 1e-13
    # Time along axis 1 of (batch, T, d) sequences, a per channel.
    seq = rng.standard_normal((2, 300, 5))
    decay = rng.uniform(0, 1, 5)
    h = structla.linear_scan(decay, seq, axis=1)
    ref = scipy.signal.lfilter([1.0], [1.0, -decay[2]], seq[..., 2], axis=1)
    assert max_relative_error(h[..., 2], ref) <= 1e-13


@pytest.mark.parametrize("cols", [63, 64, 65, 130])
def test_linear_scan_column_blocks(cols):
    """Time on axis 0: the CPU kernel walks columns in blocks of 64 (block boundaries)."""
    rng = np.random.default_rng(cols)
    b = rng.standard_normal((3, 40, cols))
    a = rng.uniform(-1, 1, (40, 1))
    h0 = rng.standard_normal((3, cols))
    h = structla.linear_scan(a, b, axis=1, h0=h0, reverse=True)
    expected = np.moveaxis(linear_scan_loop(np.moveaxis(np.broadcast_to(a, b.shape), 1, -1),
                                            np.moveaxis(b, 1, -1), h0, True), -1, 1)
    assert max_relative_error(h, expected) <= 1e-14


def test_linear_scan_bad_input_and_inputs_unchanged():
    b = np.arange(12.0).reshape(3, 4)
    b.flags.writeable = False
    a = np.full((3, 1), 0.5)
    with pytest.raises(ValueError, match="'axis'"):
        structla.linear_scan(a, b, axis=2)
    with pytest.raises(ValueError, match="broadcast"):
        structla.linear_scan(np.ones(3), b)
    with pytest.raises(ValueError, match="'h0'"):
        structla.linear_scan(a, b, h0=np.ones(4))
    with pytest.raises(ValueError, match="at least one dimension"):
        structla.linear_scan(1.0, 2.0)
    with pytest.raises(ValueError, match=r"'b'.*infs or NaNs"):
        structla.linear_scan(a, np.where(b > 5, np.inf, b))
    h = structla.linear_scan(a, b[:, ::-1])
    np.testing.assert_allclose(h, linear_scan_loop(a, b[:, ::-1]), rtol=1e-15)
    np.testing.assert_array_equal(b, np.arange(12.0).reshape(3, 4))
    assert structla.linear_scan(np.ones((0, 5)), np.ones((0, 5))).shape == (0, 5)
    assert structla.linear_scan([0.5, 0.5], [1, 2]).dtype == np.float64


# ------------------------------------------------------------------------ deer


def _tanh_rnn(W):
    def f(x, u):
        return np.tanh(x @ W.T + u)

    def jac(x, u):
        return (1 - np.tanh(x @ W.T + u) ** 2)[..., :, None] * W

    return f, jac


@pytest.mark.parametrize("d", [1, 4])
def test_deer_dense_newton_equals_loop(d):
    rng = np.random.default_rng(12)
    W = 0.9 * rng.standard_normal((d, d)) / np.sqrt(d)
    u = rng.standard_normal((1000, d))
    x0 = rng.standard_normal(d)
    f, jac = _tanh_rnn(W)
    x, info = structla.deer(f, x0, u, jac=jac, return_info=True)
    assert np.abs(x - tanh_rnn_loop(W, u, x0)).max() <= 1e-10
    # Newton converges quadratically: the documented 8–9 iterations, far below L.
    assert info.converged and info.iterations <= 10 and info.method == "newton-dense"


def test_deer_diagonal_jacobian_and_finite_differences():
    rng = np.random.default_rng(13)
    w = rng.uniform(-1.5, 1.5, 6)
    u = rng.standard_normal((3, 500, 6))
    x0 = rng.standard_normal(6)

    def f(x, v):
        return np.tanh(w * x + v)

    def jac(x, v):
        return (1 - np.tanh(w * x + v) ** 2) * w

    x, info = structla.deer(f, x0, u, jac=jac, return_info=True)
    loop = np.stack([tanh_rnn_loop(w, u[i], x0) for i in range(3)])
    assert np.abs(x - loop).max() <= 1e-10
    assert info.method == "newton-diagonal" and info.iterations <= 12
    x_fd, info_fd = structla.deer(f, x0, u[0], return_info=True)
    assert np.abs(x_fd - loop[0]).max() <= 1e-10
    assert info_fd.method == "newton-fd-dense" and info_fd.iterations <= 12


def test_deer_finite_termination_with_any_jacobian():
    """After k iterations the first k states are exact, for any J (MATH F5)."""
    rng = np.random.default_rng(14)
    W = 1.5 * rng.standard_normal((3, 3))  # not contractive: Newton has no easy time
    u = rng.standard_normal((40, 3))
    f, _ = _tanh_rnn(W)
    loop = tanh_rnn_loop(W, u, np.zeros(3))
    zero_jacobian = lambda x, v: np.zeros_like(x)  # noqa: E731  (Picard iteration)
    for k in (1, 5, 17):
        with pytest.warns(NotConvergedWarning):
            x = structla.deer(f, np.zeros(3), u, jac=zero_jacobian, max_iter=k)
        assert np.abs(x[:k] - loop[:k]).max() <= 1e-13
    x, info = structla.deer(f, np.zeros(3), u, jac=zero_jacobian, return_info=True)
    assert info.converged and info.iterations <= 40
    assert np.abs(x - loop).max() <= 1e-12


def test_deer_float32_and_bad_input():
    rng = np.random.default_rng(15)
    W = (0.5 * rng.standard_normal((4, 4))).astype(np.float32)
    u = rng.standard_normal((200, 4)).astype(np.float32)
    f, jac = _tanh_rnn(W)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = structla.deer(f, np.zeros(4, np.float32), u, jac=jac)
    assert x.dtype == np.float32
    assert np.abs(x - tanh_rnn_loop(W, u, np.zeros(4))).max() <= 1e-5
    with pytest.raises(ValueError, match="'u'"):
        structla.deer(f, np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"'x0'.*infs or NaNs"):
        structla.deer(f, np.full(4, np.nan), u)
    with pytest.raises(TypeError, match="'f'"):
        structla.deer(None, np.zeros(4), u)
    with pytest.raises(ValueError, match=r"f\(x, u\) must return"):
        structla.deer(lambda x, v: x[..., :2], np.zeros(4), u)
    assert structla.deer(f, np.zeros(4), np.zeros((0, 4))).shape == (0, 4)

"""scan on CuPy: CUDA kernels against float64 CPU references, with poisoned outputs."""

from __future__ import annotations

import numpy as np
import pytest
from oracles import linear_scan_loop, max_relative_error, selective_scan_loop
from strategies import extreme_selective_inputs, random_array

import structla

pytestmark = pytest.mark.gpu

# Chunk boundaries: a warp's chunk is 512 steps in float32, 256 in float64 and complex64,
# 128 in complex128 (selective); 8 per thread and up to 2048 per block (linear_scan).
SELECTIVE_LENGTHS = (1, 2, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000, 2049)
LINEAR_LENGTHS = (1, 7, 8, 9, 2047, 2048, 2049, 100_003)


@pytest.fixture
def poisoned(cp, monkeypatch):
    """Outputs start as NaN, so anything the kernels fail to write shows up."""
    from structla.scan import _cupy

    monkeypatch.setattr(_cupy, "_empty", lambda shape, dtype: cp.full(shape, np.nan, dtype=dtype))
    return cp


@pytest.fixture
def sequential(poisoned, monkeypatch):
    """selective.cu's sequential kernel for every call that fits it, whatever the channel count;
    yields the names of the kernels launched."""
    from structla.scan import _cupy

    monkeypatch.setattr(_cupy, "_SEQUENTIAL_MIN_CHANNELS", 0)
    monkeypatch.setattr(_cupy, "_SEQUENTIAL_MIN_STATES", 1)
    launched = []
    get_kernel = _cupy.get_kernel

    def recording(family, filename, name, dtype):
        launched.append(name)
        return get_kernel(family, filename, name, dtype)

    monkeypatch.setattr(_cupy, "get_kernel", recording)
    return launched


def _tol(dtype, length):
    return 1e-12 if np.dtype(dtype) in (np.float64, np.complex128) else 2e-5 * max(1.0, np.sqrt(length / 64))


@pytest.mark.parametrize("length", SELECTIVE_LENGTHS)
@pytest.mark.parametrize("nstate", [1, 16, 300])
@pytest.mark.parametrize("complex_model", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_selective_scan_gpu_all_options(poisoned, length, nstate, complex_model, dtype):
    cp = poisoned
    rng = np.random.default_rng(length * 7 + nstate)
    batch, dim = 2, 8
    cdtype = np.result_type(dtype, np.complex64) if complex_model else np.dtype(dtype)
    u = random_array(rng, (batch, dim, length), dtype)
    delta = (0.5 * random_array(rng, (batch, dim, length))).astype(dtype)
    A = -np.exp(rng.uniform(-1, 1.5, (dim, nstate)))
    if complex_model:
        A = A + 1j * rng.uniform(-3, 3, (dim, nstate))
    A = A.astype(cdtype)
    B = random_array(rng, (batch, nstate, length), cdtype)
    C = random_array(rng, (batch, nstate, length), cdtype)
    D = rng.standard_normal(dim).astype(dtype)
    z = random_array(rng, (batch, dim, length), dtype)
    bias = rng.standard_normal(dim).astype(dtype)
    h0 = random_array(rng, (batch, dim, nstate), cdtype)
    args = [cp.asarray(x) for x in (u, delta, A, B, C, D, z)]
    y, last = structla.selective_scan(*args, delta_bias=cp.asarray(bias), delta_softplus=True,
                                      h0=cp.asarray(h0), return_state=True)
    assert isinstance(y, cp.ndarray) and y.dtype == np.dtype(dtype) and last.dtype == cdtype
    y_ref, last_ref = selective_scan_loop(u, delta, A, B, C, D, z, bias, True, h0)
    assert max_relative_error(y, y_ref) <= _tol(dtype, length)
    assert max_relative_error(last, last_ref) <= _tol(dtype, length)


# The sequential kernel: 32 steps per chunk in float32 (16 in float64), partial sums added every 16.
@pytest.mark.parametrize("length", (1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 257))
@pytest.mark.parametrize("nstate", [1, 5, 16])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_selective_scan_gpu_sequential_kernel(sequential, length, nstate, dtype):
    import cupy as cp

    rng = np.random.default_rng(length * 5 + nstate)
    batch, dim = 1, 16  # one block of 2 warps of 8 channels; grouped below: 2 blocks of 1 warp
    u = random_array(rng, (batch, dim, length), dtype)
    delta = (0.5 * random_array(rng, (batch, dim, length))).astype(dtype)
    A = -np.exp(rng.uniform(-1, 1.5, (dim, nstate))).astype(dtype)
    B = random_array(rng, (batch, nstate, length), dtype)
    C = random_array(rng, (batch, nstate, length), dtype)
    D = rng.standard_normal(dim).astype(dtype)
    z = random_array(rng, (batch, dim, length), dtype)
    bias = rng.standard_normal(dim).astype(dtype)
    h0 = random_array(rng, (batch, dim, nstate), dtype)
    args = [cp.asarray(x) for x in (u, delta, A, B, C, D, z)]
    y, last = structla.selective_scan(*args, delta_bias=cp.asarray(bias), delta_softplus=True,
                                      h0=cp.asarray(h0), return_state=True)
    # L = 1: B and C of one step are taken as time-invariant, which the chunked kernel handles.
    assert sequential == ["selective_scan_sequential" if length > 1 else "selective_scan_chunked"]
    y_ref, last_ref = selective_scan_loop(u, delta, A, B, C, D, z, bias, True, h0)
    assert max_relative_error(y, y_ref) <= _tol(dtype, length)
    assert max_relative_error(last, last_ref) <= _tol(dtype, length)
    # Without the options (no h0: the state is only written) and with B, C grouped.
    Bg, Cg = (random_array(rng, (batch, 2, nstate, length), dtype) for _ in range(2))
    y, last = structla.selective_scan(*args[:3], cp.asarray(Bg), cp.asarray(Cg), return_state=True)
    assert sequential[-1] == ("selective_scan_sequential" if length > 1 else "selective_scan_chunked")
    y_ref, last_ref = selective_scan_loop(u, delta, A, Bg, Cg)
    assert max_relative_error(y, y_ref) <= _tol(dtype, length)
    assert max_relative_error(last, last_ref) <= _tol(dtype, length)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_selective_scan_gpu_sequential_extreme_steps(sequential, dtype):
    import cupy as cp

    rng = np.random.default_rng(2)
    batch, dim, nstate, length = 2, 8, 16, 100
    u, delta, A, B, C, z = extreme_selective_inputs(rng, batch, dim, nstate, length, dtype)
    y, last = structla.selective_scan(*(cp.asarray(x) for x in (u, delta, A, B, C)), z=cp.asarray(z),
                                      return_state=True)
    assert sequential == ["selective_scan_sequential"]
    assert bool(cp.isfinite(y).all()) and bool(cp.isfinite(last).all())
    y_ref, last_ref = selective_scan_loop(u, delta, A, B, C, z=z)
    tol = 1e-12 if dtype == "float64" else 1e-4
    assert max_relative_error(y, y_ref) <= tol
    assert max_relative_error(last, last_ref) <= tol


@pytest.mark.parametrize(("b_layout", "c_layout"), [("group", "group"), ("inv", "var"), ("var", "inv"),
                                                    ("inv", "inv"), ("group", "var")])
@pytest.mark.parametrize("dim", [4, 6, 24])
def test_selective_scan_gpu_layouts(poisoned, b_layout, c_layout, dim):
    cp = poisoned
    rng = np.random.default_rng(dim)
    batch, nstate, length, groups = 3, 16, 600, 2
    shapes = {"var": (batch, nstate, length), "group": (batch, groups, nstate, length),
              "inv": (dim, nstate)}
    u = rng.standard_normal((batch, dim, length))
    delta = rng.uniform(0.001, 0.5, (batch, dim, length))
    A = -np.exp(rng.uniform(-1, 1.5, (dim, nstate)))
    B, C = rng.standard_normal(shapes[b_layout]), rng.standard_normal(shapes[c_layout])
    y, last = structla.selective_scan(*(cp.asarray(x) for x in (u, delta, A, B, C)), return_state=True)
    y_ref, last_ref = structla.selective_scan(u, delta, A, B, C, return_state=True)
    assert max_relative_error(y, y_ref) <= 1e-12
    assert max_relative_error(last, last_ref) <= 1e-12


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_selective_scan_gpu_extreme_steps(poisoned, dtype):
    cp = poisoned
    rng = np.random.default_rng(1)
    batch, dim, nstate, length = 2, 4, 16, 513
    u, delta, A, B, C, z = extreme_selective_inputs(rng, batch, dim, nstate, length, dtype)
    y, last = structla.selective_scan(*(cp.asarray(x) for x in (u, delta, A, B, C)), z=cp.asarray(z),
                                      return_state=True)
    assert bool(cp.isfinite(y).all()) and bool(cp.isfinite(last).all())
    y_ref, last_ref = selective_scan_loop(u, delta, A, B, C, z=z)
    tol = 1e-12 if dtype == "float64" else 1e-4
    assert max_relative_error(y, y_ref) <= tol
    assert max_relative_error(last, last_ref) <= tol


@pytest.mark.parametrize("length", [1000, 1001, 2048])
def test_selective_scan_gpu_unaligned_inputs(poisoned, length):
    """Inputs starting 4 bytes into an allocation take the scalar loads, odd L the scalar staging."""
    cp = poisoned
    rng = np.random.default_rng(length)
    batch, dim, nstate = 2, 16, 16
    shape = (batch, dim, length)
    count = batch * dim * length

    def shifted(x):
        store = cp.empty(count + 1, dtype=cp.float32)
        store[1:] = cp.asarray(x, dtype=cp.float32).ravel()
        return store[1:].reshape(shape)

    u, delta, z = rng.standard_normal(shape), rng.uniform(0.001, 0.5, shape), rng.standard_normal(shape)
    A = -np.exp(rng.uniform(-1, 1.5, (dim, nstate)))
    B, C = rng.standard_normal((batch, nstate, length)), rng.standard_normal((batch, nstate, length))
    A, B, C = (cp.asarray(x, dtype=cp.float32) for x in (A, B, C))
    y = structla.selective_scan(shifted(u), shifted(delta), A, B, C, z=shifted(z))
    y_ref, _ = selective_scan_loop(u, delta, A, B, C, z=z)
    assert max_relative_error(y, y_ref) <= _tol("float32", length)


@pytest.mark.parametrize("threshold", [0, 1 << 60], ids=["sequential", "chunked"])
def test_selective_scan_gpu_benchmark_shape(poisoned, monkeypatch, threshold):
    """The benchmark's layout (Mamba's initialisation, N = 16, L = 2048) against float64, in
    both kernels (the sequential one in a block of 4 warps)."""
    from structla.scan import _cupy

    monkeypatch.setattr(_cupy, "_SEQUENTIAL_MIN_CHANNELS", threshold)
    cp = poisoned
    rng = np.random.default_rng(6)
    batch, dim, nstate, length = 2, 32, 16, 2048
    u = rng.standard_normal((batch, dim, length))
    delta = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), (batch, dim, length)))
    A = -np.tile(np.arange(1, nstate + 1, dtype=np.float64), (dim, 1))
    B = rng.standard_normal((batch, nstate, length))
    C = rng.standard_normal((batch, nstate, length))
    y, last = structla.selective_scan(*(cp.asarray(x, dtype=cp.float32) for x in (u, delta, A, B, C)),
                                      return_state=True)
    y_ref, last_ref = selective_scan_loop(u, delta, A, B, C)
    assert max_relative_error(y, y_ref) <= 1e-5
    assert max_relative_error(last, last_ref) <= 1e-5


def test_selective_scan_gpu_edge_sizes(poisoned):
    cp = poisoned
    A = -cp.ones((3, 4))
    h0 = cp.arange(2 * 3 * 4, dtype=cp.float64).reshape(2, 3, 4)
    y, last = structla.selective_scan(cp.zeros((2, 3, 0)), cp.zeros((2, 3, 0)), A, cp.zeros((2, 4, 0)),
                                      cp.zeros((2, 4, 0)), h0=h0, return_state=True)
    assert y.shape == (2, 3, 0)
    assert bool((last == h0).all())
    u = cp.asarray(np.random.default_rng(2).standard_normal((2, 3, 7)))
    y = structla.selective_scan(u, u, cp.ones((3, 0)), cp.ones((2, 0, 7)), cp.ones((2, 0, 7)),
                                D=cp.full(3, 2.0))
    assert max_relative_error(y, 2 * u) <= 1e-15


@pytest.mark.parametrize("length", LINEAR_LENGTHS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_scan_gpu_chunk_boundaries(poisoned, length, dtype, reverse):
    cp = poisoned
    rng = np.random.default_rng(length)
    b = random_array(rng, (3, length), dtype)
    a = (0.999 * random_array(rng, (3, length), dtype) / np.sqrt(2)).astype(dtype)
    a = (a / np.maximum(1.0, np.abs(a))).astype(dtype)  # |a| ≤ 1: bounded states over long runs
    h0 = random_array(rng, (3,), dtype)
    h = structla.linear_scan(cp.asarray(a), cp.asarray(b), h0=cp.asarray(h0), reverse=reverse)
    assert h.dtype == np.dtype(dtype)
    expected = linear_scan_loop(a, b, h0, reverse)
    assert max_relative_error(h, expected) <= (1e-12 if dtype in ("float64", "complex128") else 1e-4)


def test_linear_scan_gpu_million_steps(poisoned):
    """L = 2²⁰: 512 chunks per row, carried across blocks."""
    cp = poisoned
    rng = np.random.default_rng(3)
    length = 2**20
    a = rng.uniform(0.9, 1.0, (2, length))
    b = rng.standard_normal((2, length))
    h = structla.linear_scan(cp.asarray(a), cp.asarray(b), h0=cp.asarray([1.0, -1.0]))
    expected = structla.linear_scan(a, b, h0=np.array([1.0, -1.0]))
    assert max_relative_error(h, expected) <= 1e-11


def test_linear_scan_gpu_time_axis_not_last(poisoned):
    cp = poisoned
    rng = np.random.default_rng(4)
    b = rng.standard_normal((2, 3000, 5))
    a = rng.uniform(0, 1, (1, 3000, 5))
    h0 = rng.standard_normal((2, 5))
    h = structla.linear_scan(cp.asarray(a), cp.asarray(b), axis=1, h0=cp.asarray(h0), reverse=True)
    expected = structla.linear_scan(a, b, axis=1, h0=h0, reverse=True)
    assert max_relative_error(h, expected) <= 1e-12


def test_deer_gpu_matches_cpu(cp):
    rng = np.random.default_rng(5)
    W = 0.9 * rng.standard_normal((4, 4)) / 2
    u = rng.standard_normal((500, 4))
    Wg = cp.asarray(W)

    def f(x, v):
        return cp.tanh(x @ Wg.T + v)

    def jac(x, v):
        return (1 - cp.tanh(x @ Wg.T + v) ** 2)[..., :, None] * Wg

    x = structla.deer(f, cp.zeros(4), cp.asarray(u), jac=jac)
    expected = structla.deer(lambda x, v: np.tanh(x @ W.T + v), np.zeros(4), u,
                             jac=lambda x, v: (1 - np.tanh(x @ W.T + v) ** 2)[..., :, None] * W)
    assert isinstance(x, cp.ndarray)
    assert max_relative_error(x, expected) <= 1e-10


def test_mixed_libraries_raise(cp):
    with pytest.raises(TypeError, match="different array"):
        structla.linear_scan(cp.ones(3), np.ones(3))
    with pytest.raises(TypeError, match="different array"):
        structla.selective_scan(cp.ones((1, 2, 3)), np.ones((1, 2, 3)), cp.ones((2, 2)),
                                cp.ones((1, 2, 3)), cp.ones((1, 2, 3)))

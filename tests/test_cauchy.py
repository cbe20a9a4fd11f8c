"""cauchy / vandermonde: float64 oracles, backends, batching, dtypes, edge cases, bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracles import as_host, cauchy_dense, loop_batch, vandermonde_dense
from strategies import batch_shapes, eps, random_array, seeds

import structla
from structla._core.dispatch import implementation
from structla.cauchy import _api

POLE_COUNTS = (1, 2, 3, 31, 64, 100)
LENGTHS = (1, 7, 1024, 4097)
COMPLEX = ("complex64", "complex128")


def _complex_of(dtype) -> np.dtype:
    return np.result_type(np.dtype(dtype), np.complex64)


def assert_within(ours, reference, scale, dtype, terms):
    """``|ours − reference| ≤ 4 (terms + 4) eps · scale`` at every entry.

    ``scale`` is the componentwise condition from the oracle; ``terms + 4`` bounds
    recursive summation of ``terms`` terms plus the few roundings of each term.
    """
    ours, reference = as_host(ours), as_host(reference)
    assert ours.shape == reference.shape
    # results in the subnormal range of dtype are only good to its smallest normal number
    bound = 4 * (terms + 4) * (eps(dtype) * scale + np.finfo(dtype).tiny)
    excess = np.abs(ours - reference) - bound
    worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.size else None
    assert excess.size == 0 or excess.max() <= 0, (
        f"error {np.abs(ours - reference)[worst]:.3e} > bound {bound[worst]:.3e} at {worst}")


def cauchy_data(rng, batch_vw, batch_z, n, length, dtype):
    v = random_array(rng, (*batch_vw, n), dtype)
    w = random_array(rng, (*batch_vw, n), dtype)
    z = random_array(rng, (*batch_z, length), dtype, scale=2.0)
    return v, w, z


def vandermonde_data(rng, batch, n, dtype, log):
    """Nodes with |x| ≤ 1 (or Re x ≤ 0 for log): S4D's stable modes, no overflow at large l."""
    v = random_array(rng, (*batch, n), dtype)
    real = np.dtype(dtype).kind == "f"
    if log:
        x = -rng.uniform(0, 0.02, (*batch, n))
        if not real:
            x = x + 1j * rng.uniform(-np.pi, np.pi, (*batch, n))
    else:
        x = rng.uniform(0.5, 1.0, (*batch, n))
        x = np.where(rng.random((*batch, n)) < 0.5, -x, x) if real else (
            x * np.exp(1j * rng.uniform(-np.pi, np.pi, (*batch, n))))
    return v, x.astype(dtype)


# ---- Must show 1: the size grid against the float64 broadcasting oracle ------------------

@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("n", POLE_COUNTS)
def test_cauchy_grid_against_broadcast_oracle(n, length):
    rng = np.random.default_rng(1000 * n + length)
    for dtype in COMPLEX:
        v, w, z = cauchy_data(rng, (2, 1), (3,), n, length, dtype)
        for conj_pairs in (False, True):
            k = structla.cauchy(v, w, z, conj_pairs=conj_pairs)
            assert k.shape == (2, 3, length) and k.dtype == dtype
            ref, scale = cauchy_dense(v, w, z, conj_pairs)
            assert_within(k, ref, scale, dtype, 2 * n if conj_pairs else n)


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("n", POLE_COUNTS)
def test_vandermonde_grid_against_powers(n, length):
    rng = np.random.default_rng(1000 * n + length + 7)
    for dtype in COMPLEX:
        for log in (False, True):
            v, x = vandermonde_data(rng, (2,), n, dtype, log)
            v = v[:, None, :] * np.ones((1, 3, 1), dtype)
            for conj_pairs in (False, True):
                k = structla.vandermonde(v, x[:, None, :], length, log=log, conj_pairs=conj_pairs)
                expected = np.finfo(dtype).dtype if conj_pairs else np.dtype(dtype)
                assert k.shape == (2, 3, length) and k.dtype == expected
                ref, scale = vandermonde_dense(v, x[:, None, :], length, log, conj_pairs)
                assert_within(k, ref, scale, dtype, n)


# ---- Hypothesis: broadcasting batches, all input dtypes, both backends --------------------

@given(shapes=batch_shapes(), n=st.sampled_from(POLE_COUNTS), length=st.sampled_from((1, 7, 65)),
       dtype=st.sampled_from(("float32", "float64", "complex64", "complex128")),
       conj_pairs=st.booleans(), backend=st.sampled_from(("numba", "reference")), seed=seeds())
def test_cauchy_property(shapes, n, length, dtype, conj_pairs, backend, seed):
    rng = np.random.default_rng(seed)
    v, w, z = cauchy_data(rng, shapes[0], shapes[1], n, length, dtype)
    w = w[(0,) * (w.ndim - 1)] if w.ndim > 1 and seed % 2 else w  # w shared by the batch
    fn = implementation("cauchy", "cauchy", np, backend=backend)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_api, "implementation", lambda *a, **k: fn)
        k = structla.cauchy(v, w, z, conj_pairs=conj_pairs)
    batch = np.broadcast_shapes(v.shape[:-1], w.shape[:-1], z.shape[:-1])
    assert k.shape == (*batch, length) and k.dtype == _complex_of(dtype)
    ref, scale = cauchy_dense(v, w, z, conj_pairs)
    assert_within(k, ref, scale, _complex_of(dtype), 2 * n if conj_pairs else n)


@given(shapes=batch_shapes(), n=st.sampled_from(POLE_COUNTS), length=st.sampled_from((1, 7, 300)),
       dtype=st.sampled_from(("float32", "float64", "complex64", "complex128")),
       log=st.booleans(), conj_pairs=st.booleans(),
       backend=st.sampled_from(("numba", "reference")), seed=seeds())
def test_vandermonde_property(shapes, n, length, dtype, log, conj_pairs, backend, seed):
    rng = np.random.default_rng(seed)
    v, _ = vandermonde_data(rng, shapes[0], n, dtype, log)
    _, x = vandermonde_data(rng, shapes[1], n, dtype, log)
    fn = implementation("cauchy", "vandermonde", np, backend=backend)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_api, "implementation", lambda *a, **k: fn)
        k = structla.vandermonde(v, x, length, log=log, conj_pairs=conj_pairs)
    out = _complex_of(dtype)
    assert k.dtype == (np.finfo(out).dtype if conj_pairs else out)
    ref, scale = vandermonde_dense(v, x, length, log, conj_pairs)
    assert_within(k, ref, scale, out, n)


# ---- Must show 3: numba == reference, batched == loop ------------------------------------

@pytest.mark.parametrize("dtype", COMPLEX)
def test_numba_matches_reference(dtype):
    rng = np.random.default_rng(3)
    v, w, z = cauchy_data(rng, (5,), (5,), 37, 1000, dtype)
    for conj_pairs in (False, True):
        args = [a.reshape(5, -1) for a in (v, w, z)]
        fast = implementation("cauchy", "cauchy", np, backend="numba")(*args, conj_pairs=conj_pairs)
        slow = implementation("cauchy", "cauchy", np, backend="reference")(*args,
                                                                         conj_pairs=conj_pairs)
        _, scale = cauchy_dense(v, w, z, conj_pairs)
        assert_within(fast, slow, scale, dtype, 2 * 37)
    v, x = vandermonde_data(rng, (5,), 37, dtype, log=True)
    for log in (False, True):
        xx = x if log else np.exp(x)
        for conj_pairs in (False, True):
            fast = implementation("cauchy", "vandermonde", np, backend="numba")(
                v, xx, 1000, log=log, conj_pairs=conj_pairs)
            slow = implementation("cauchy", "vandermonde", np, backend="reference")(
                v, xx, 1000, log=log, conj_pairs=conj_pairs)
            _, scale = vandermonde_dense(v, xx, 1000, log, conj_pairs)
            assert_within(fast, slow, scale, dtype, 37)


def test_batched_equals_loop():
    rng = np.random.default_rng(4)
    v, w, z = cauchy_data(rng, (2, 1), (3,), 9, 50, "complex128")
    k = structla.cauchy(v, w, z, conj_pairs=True)
    loop = loop_batch(lambda a, b, c: structla.cauchy(a, b, c, conj_pairs=True), v, w, z,
                      core_ndims=(1, 1, 1))
    np.testing.assert_array_equal(k, loop)
    v, x = vandermonde_data(rng, (4, 1), 9, "complex64", log=True)
    k = structla.vandermonde(v, x[0], 333, log=True)
    loop = loop_batch(lambda a, b: structla.vandermonde(a, b, 333, log=True), v, x[0],
                      core_ndims=(1, 1))
    np.testing.assert_array_equal(k, loop)


# ---- accuracy that does not grow with l ----------------------------------------------------

@pytest.mark.parametrize("log", [False, True])
def test_vandermonde_error_does_not_grow_with_l(log):
    """Unit-modulus nodes, L = 2**16: the last entries are as accurate as the first ones."""
    rng = np.random.default_rng(5)
    n, length = 8, 2**16
    angle = rng.uniform(-np.pi, np.pi, n)
    x = (1j * angle if log else np.exp(1j * angle)).astype(np.complex64)
    v = np.ones(n, np.complex64)
    k = structla.vandermonde(v, x, length, log=log)
    # float64 exp(l·s) of the float32 nodes themselves (|x| is 1 only to float32 rounding):
    # l·s is exact to 1e-16·6e4·π, far below float32 resolution.
    s = x.astype(np.complex128) if log else np.log(x.astype(np.complex128))
    ref = np.exp(np.outer(np.arange(length), s)).sum(axis=1)
    error = np.abs(k - ref)
    tol = 4 * (n + 4) * eps("complex64") * n
    assert error[:1024].max() <= tol and error[-1024:].max() <= tol, (
        error[:1024].max(), error[-1024:].max())


# ---- edge cases --------------------------------------------------------------------------

def test_pole_equal_to_node_is_nonfinite_there_only():
    w = np.array([0.5 + 1j, -2.0, 3j])
    v = np.array([1.0, 2.0 - 1j, 0.5j])
    z = np.array([0.0, 0.5 + 1j, 1.0, -2.0, 2j])
    for backend in ("numba", "reference"):
        fn = implementation("cauchy", "cauchy", np, backend=backend)
        for conj_pairs in (False, True):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                k = fn(v[None], w[None], z[None], conj_pairs=conj_pairs)[0]
            hit = np.array([False, True, False, True, False])
            assert not np.isfinite(k[hit]).any(), (backend, k)
            ref, _ = cauchy_dense(v, w, z[~hit], conj_pairs)
            np.testing.assert_allclose(k[~hit], ref, rtol=1e-13)
    # through the public API too: no error, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        k = structla.cauchy(v, w, z)
    assert np.isfinite(k).tolist() == [True, False, True, False, True]


def test_vandermonde_zero_node_and_zeroth_power():
    v = np.array([2.0, 3.0, 1j])
    x = np.array([0.0, 1.0, 0.5])
    k = structla.vandermonde(v, x, 4)
    np.testing.assert_allclose(k, [2 + 3 + 1j, 3 + 0.5j, 3 + 0.25j, 3 + 0.125j], rtol=1e-15)
    k = structla.vandermonde(v, np.zeros(3), 3, log=True)  # exp(l·0) = 1
    np.testing.assert_allclose(k, np.full(3, 5 + 1j), rtol=1e-15)


@pytest.mark.parametrize("fn", ["cauchy", "vandermonde"])
def test_empty_sizes(fn):
    if fn == "cauchy":
        assert structla.cauchy(np.ones((0, 3)), np.ones(3), np.ones(5)).shape == (0, 5)
        assert structla.cauchy(np.ones((2, 3)), np.ones(3), np.ones(0)).shape == (2, 0)
        k = structla.cauchy(np.ones((2, 0), np.float32), np.ones(0, np.float32), np.ones(5, np.float32))
        assert k.shape == (2, 5) and k.dtype == np.complex64 and not k.any()
    else:
        assert structla.vandermonde(np.ones((0, 3)), np.ones(3), 4).shape == (0, 4)
        assert structla.vandermonde(np.ones(3), np.ones(3), 0).shape == (0,)
        k = structla.vandermonde(np.ones((2, 0)), np.ones(0), 4, conj_pairs=True)
        assert k.shape == (2, 4) and k.dtype == np.float64 and not k.any()


def test_dtype_promotion():
    i = np.arange(1, 4)
    assert structla.cauchy(i, i, np.arange(4) + 0.5).dtype == np.complex128
    f32 = np.ones(3, np.float32)
    assert structla.cauchy(f32, f32 + 1, f32[:2]).dtype == np.complex64
    assert structla.cauchy(f32, f32 + 1, np.ones(2, np.complex128)).dtype == np.complex128
    assert structla.vandermonde(f32, f32, 3).dtype == np.complex64
    assert structla.cauchy(f32.astype(np.float16), f32, f32).dtype == np.complex64
    assert structla.vandermonde(f32, f32, 3, conj_pairs=True).dtype == np.float32
    assert structla.vandermonde(i, i, 3, log=True, conj_pairs=True).dtype == np.float64


def test_readonly_noncontiguous_inputs_unchanged():
    rng = np.random.default_rng(6)
    v = random_array(rng, (4, 20), "complex128")[:, ::2]
    w = random_array(rng, (4, 20), "complex128")[:, ::2]
    z = random_array(rng, (30, 3), "complex128").T
    copies = [a.copy() for a in (v, w, z)]
    for a in (v, w, z):
        a.flags.writeable = False
    k = structla.cauchy(v[:, None], w[:, None], z, conj_pairs=True)
    ref, scale = cauchy_dense(copies[0][:, None], copies[1][:, None], copies[2], True)
    assert_within(k, ref, scale, "complex128", 20)
    x = np.exp(-np.abs(w))
    x.flags.writeable = False
    kv = structla.vandermonde(v, x, 17, conj_pairs=True)
    ref, scale = vandermonde_dense(copies[0], x, 17, False, True)
    assert_within(kv, ref, scale, "complex128", 10)
    for a, c in zip((v, w, z), copies):
        np.testing.assert_array_equal(a, c)


# ---- Must show 4: bad input -----------------------------------------------------------------

def test_bad_shapes():
    with pytest.raises(ValueError, match=r"'n'.*'v'.*'w'"):
        structla.cauchy(np.ones(3), np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="batch dimensions do not broadcast"):
        structla.cauchy(np.ones((2, 3)), np.ones(3), np.ones((3, 5)))
    with pytest.raises(ValueError, match="argument 'z'"):
        structla.cauchy(np.ones(3), np.ones(3), np.float64(1.0))
    with pytest.raises(ValueError, match=r"'n'.*'v'.*'x'"):
        structla.vandermonde(np.ones(3), np.ones(2), 4)
    with pytest.raises(ValueError, match="'length'"):
        structla.vandermonde(np.ones(3), np.ones(3), -1)
    with pytest.raises(TypeError, match="'length'"):
        structla.vandermonde(np.ones(3), np.ones(3), 4.0)
    with pytest.raises(TypeError, match="unsupported dtype"):
        structla.cauchy(np.array(["a", "b"]), np.ones(2), np.ones(2))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_inputs_with_check_finite(bad):
    for name in ("v", "w", "z"):
        args = {"v": np.ones(3), "w": np.arange(3.0), "z": np.ones(4) * 7}
        args[name] = args[name].copy()
        args[name][1] = bad
        with pytest.raises(ValueError, match=f"argument '{name}' must not contain infs or NaNs"):
            structla.cauchy(**args)
        k = structla.cauchy(**args, check_finite=False)
        assert not np.isfinite(k).all()
    x = np.array([0.5, bad])
    with pytest.raises(ValueError, match="argument 'x'"):
        structla.vandermonde(np.ones(2), x, 3)
    with pytest.raises(ValueError, match="argument 'v'"):
        structla.vandermonde(x, np.ones(2), 3, log=True)


def test_foreign_arrays_are_rejected():
    class Foreign:
        __module__ = "torch"

    with pytest.raises(TypeError, match="argument 'w' is a torch array"):
        structla.cauchy(np.ones(3), Foreign(), np.ones(2))


@pytest.mark.gpu
def test_mixed_libraries(cp):
    with pytest.raises(TypeError, match="different array libraries"):
        structla.cauchy(cp.ones(3), np.ones(3), cp.ones(4))
    with pytest.raises(TypeError, match="different array libraries"):
        structla.vandermonde(np.ones(3), cp.ones(3), 4)


# ---- Must show 2: peak memory ---------------------------------------------------------------

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resets and reads /proc/self peak RSS")
def test_peak_memory_well_below_broadcast_temporary():
    """batch 64, N = 64, L = 2**16, complex128: a broadcast temporary would take 4 GiB."""
    script = textwrap.dedent("""
        import numpy as np, structla

        def status(key):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

        rng = np.random.default_rng(0)
        v = rng.standard_normal((64, 64)) + 1j * rng.standard_normal((64, 64))
        w = -0.5 + 1j * np.pi * np.arange(64) + 0.1j * rng.standard_normal((64, 64))
        z = 1j * np.linspace(-100.0, 100.0, 2**16)
        structla.cauchy(v[:1], w[:1], z[:256])  # compile before measuring
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS: forget compiling
        before = status("VmRSS:")
        k = structla.cauchy(v, w, z)
        peak = status("VmHWM:")
        assert k.shape == (64, 2**16)
        print(peak - before, k.nbytes)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=True)
    growth, output_bytes = map(int, result.stdout.split())
    assert output_bytes == 64 * 2**16 * 16
    # the output itself (64 MiB) plus scratch; a broadcast temporary would be 4 GiB.
    assert growth <= 2 * output_bytes, f"peak RSS grew by {growth / 2**20:.0f} MiB"


# ---- GPU: CUDA kernels against float64 CPU oracles, outputs poisoned with NaN ----------------

def test_cuda_tile_constant_matches_launch_code():
    """The launch grid assumes the kernel's NODES_PER_THREAD; a mismatch would skip nodes."""
    import re
    from pathlib import Path

    source = (Path(structla.__file__).parent / "cauchy" / "cauchy.cu").read_text()
    launch_code = (Path(structla.__file__).parent / "cauchy" / "_cupy.py").read_text()
    in_cu = re.search(r"constexpr int NODES_PER_THREAD = (\d+);", source).group(1)
    in_py = re.search(r"^NODES_PER_THREAD = (\d+)$", launch_code, re.MULTILINE).group(1)
    assert in_cu == in_py


GPU_SHAPES = [  # (count, N, L, z shared by the batch): tails of tiles, pole chunks > 256, many rows
    (3, 1, 1, False), (3, 3, 7, True), (2, 31, 513, False), (4, 100, 4097, True),
    (2, 300, 1000, False), (70000, 2, 3, False),
]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", COMPLEX)
@pytest.mark.parametrize("shape", GPU_SHAPES)
def test_gpu_cauchy_poisoned_output(cp, shape, dtype):
    from structla.cauchy import _cupy

    count, n, length, shared = shape
    rng = np.random.default_rng(count + n + length)
    v, w, z = cauchy_data(rng, (count,), (1,) if shared else (count,), n, length, dtype)
    dz = cp.asarray(z)
    dz = cp.broadcast_to(dz, (count, length)) if shared else dz
    for conj_pairs in (False, True):
        out = cp.full((count, length), complex(np.nan, np.nan), dtype=dtype)
        _cupy._cauchy_into(cp.asarray(v), cp.asarray(w), dz, conj_pairs, out)
        ref, scale = cauchy_dense(v, w, z, conj_pairs)
        assert_within(out, ref, scale, dtype, 2 * n if conj_pairs else n)
    k = structla.cauchy(cp.asarray(v), cp.asarray(w), cp.asarray(z), conj_pairs=True)
    assert isinstance(k, cp.ndarray) and k.dtype == dtype
    cpu = structla.cauchy(v, w, z, conj_pairs=True)
    assert_within(k, cpu, cauchy_dense(v, w, z, True)[1], dtype, 2 * n)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", COMPLEX)
@pytest.mark.parametrize("shape", GPU_SHAPES)
def test_gpu_vandermonde_poisoned_output(cp, shape, dtype):
    from structla.cauchy import _cupy

    count, n, length, _ = shape
    rng = np.random.default_rng(count + n + length + 1)
    for log in (False, True):
        v, x = vandermonde_data(rng, (count,), n, dtype, log)
        for conj_pairs in (False, True):
            out_dtype = np.finfo(dtype).dtype if conj_pairs else np.dtype(dtype)
            out = cp.full((count, length), np.nan, dtype=out_dtype)
            _cupy._vandermonde_into(cp.asarray(v), cp.asarray(x), length, log, conj_pairs, out)
            ref, scale = vandermonde_dense(v, x, length, log, conj_pairs)
            assert_within(out, ref, scale, dtype, n)
    k = structla.vandermonde(cp.asarray(v), cp.asarray(x), length, log=True, conj_pairs=True)
    assert isinstance(k, cp.ndarray) and k.dtype == np.finfo(dtype).dtype


@pytest.mark.gpu
def test_gpu_edge_cases(cp):
    w = cp.asarray([0.5 + 1j, -2.0, 3j])
    v = cp.asarray([1.0, 2.0 - 1j, 0.5j])
    z = cp.asarray([0.0, 0.5 + 1j, 1.0, -2.0, 2j])
    k = structla.cauchy(v, w, z).get()
    assert np.isfinite(k).tolist() == [True, False, True, False, True]
    k = structla.vandermonde(cp.asarray([2.0, 3.0, 1j]), cp.asarray([0.0, 1.0, 0.5]), 4).get()
    np.testing.assert_allclose(k, [2 + 3 + 1j, 3 + 0.5j, 3 + 0.25j, 3 + 0.125j], rtol=1e-15)
    assert structla.cauchy(cp.ones((0, 3)), cp.ones(3), cp.ones(5)).shape == (0, 5)
    k = structla.vandermonde(cp.ones((2, 0)), cp.ones(0), 4)
    assert k.shape == (2, 4) and not k.any()
    # long sequences: the error does not grow with l on the GPU either
    angle = np.random.default_rng(9).uniform(-np.pi, np.pi, 8)
    x = (1j * angle).astype(np.complex64)
    k = structla.vandermonde(cp.ones(8, cp.complex64), cp.asarray(x), 2**16, log=True).get()
    ref = np.exp(np.outer(np.arange(2**16), x.astype(np.complex128))).sum(axis=1)
    assert np.abs(k - ref).max() <= 4 * 12 * eps("complex64") * 8


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", COMPLEX)
def test_gpu_reference_backend(cp, dtype):
    """The readable fallback runs on CuPy too (it is the GPU oracle when a kernel is in doubt)."""
    rng = np.random.default_rng(11)
    v, w, z = cauchy_data(rng, (3,), (3,), 17, 300, dtype)
    fn = implementation("cauchy", "cauchy", cp, backend="reference")
    k = fn(cp.asarray(v), cp.asarray(w), cp.asarray(z), conj_pairs=True)
    ref, scale = cauchy_dense(v, w, z, True)
    assert_within(k, ref, scale, dtype, 34)
    v, x = vandermonde_data(rng, (3,), 17, dtype, log=False)
    fn = implementation("cauchy", "vandermonde", cp, backend="reference")
    k = fn(cp.asarray(v), cp.asarray(x), 300, log=False, conj_pairs=False)
    ref, scale = vandermonde_dense(v, x, 300)
    assert_within(k, ref, scale, dtype, 17)

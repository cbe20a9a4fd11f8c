"""The shared helpers of structla._core: namespaces, batching, validation, dispatch, jit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from structla._core.batch import broadcast_batch, parse_signature
from structla._core.dispatch import defined_names, implementation
from structla._core.namespace import array_namespace, library_of
from structla._core.validate import (
    as_array,
    check_finite,
    check_square,
    compute_dtype,
    result_dtype,
)

# ---------------------------------------------------------------- namespace


def test_numpy_fast_path_and_scalars():
    assert array_namespace(a=np.ones(2), b=3.0, c=None, d=1j) is np


def test_torch_like_object_is_refused_with_a_fix(monkeypatch):
    Fake = type("Tensor", (), {"__module__": "torch"})
    with pytest.raises(TypeError, match=r"'q' is a torch array.*structla\.interop"):
        array_namespace(q=Fake())


def test_library_of_unknown_type():
    with pytest.raises(TypeError, match="unsupported argument"):
        library_of(object())


@pytest.mark.gpu
def test_mixing_numpy_and_cupy_names_both_arguments(cp):
    with pytest.raises(TypeError, match=r"'a' \(numpy\) and 'b' \(cupy\)"):
        array_namespace(a=np.ones(3), b=cp.ones(3))
    with pytest.raises(TypeError, match=r"'b' \(numpy\) and 'a' \(cupy\)"):
        array_namespace(a=cp.ones(3), b=np.ones(3))
    assert array_namespace(a=cp.ones(3), b=2.0) is cp


# ---------------------------------------------------------------- batching


def test_parse_signature():
    assert parse_signature("(n),(n,d),()") == [("n",), ("n", "d"), ()]
    with pytest.raises(ValueError, match="malformed"):
        parse_signature("n,d")


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                min_side=0, max_side=3),
       n=st.integers(0, 4), d=st.integers(1, 3))
def test_batch_broadcasts_like_numpy_linalg(shapes, n, d):
    s1, s2, s3 = shapes.input_shapes
    diag = np.zeros((*s1, n))
    q = np.zeros((*s2, n, d))
    b = np.zeros((*s3, n, 2))
    batch = broadcast_batch("(n),(n,d),(n,m)", diag=diag, q=q, b=b)
    assert batch.shape == shapes.result_shape
    assert batch.sizes == {"n": n, "d": d, "m": 2}
    # the same batch shape numpy.linalg would produce for the matrix operands
    if n > 0:
        expected = np.linalg.solve(np.broadcast_to(np.eye(n), (*s2, n, n)), b).shape[:-2]
        assert np.broadcast_shapes(expected, s1) == batch.shape


def test_zero_size_batch_flattens_and_unflattens():
    batch = broadcast_batch("(n),(n,d)", diag=np.ones((0, 3, 4)), q=np.ones((3, 4, 2)))
    assert batch.shape == (0, 3) and batch.count == 0
    flat = batch.flatten(np.ones((3, 4, 2)), core_ndim=2)
    assert flat.shape == (0, 4, 2)
    assert batch.unflatten(np.empty((0, 4, 5))).shape == (0, 3, 4, 5)


def test_flatten_shares_memory_of_broadcast_operand():
    q = np.arange(8.0).reshape(4, 2)
    batch = broadcast_batch("(n),(n,d)", diag=np.ones((5, 4)), q=q)
    flat = batch.flatten(q, core_ndim=2)
    assert flat.shape == (5, 4, 2) and np.shares_memory(flat, q)
    np.testing.assert_array_equal(flat[3], q)


def test_batch_errors_name_the_arguments():
    with pytest.raises(ValueError, match=r"'n' is 4 in 'diag' but 5 in 'q'"):
        broadcast_batch("(n),(n,d)", diag=np.ones(4), q=np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"'q' must have shape \(\.\.\., n, d\)"):
        broadcast_batch("(n),(n,d)", diag=np.ones(4), q=np.ones(4))
    with pytest.raises(ValueError, match=r"do not broadcast \(diag: \(2,\), q: \(3,\)\)"):
        broadcast_batch("(n),(n,d)", diag=np.ones((2, 4)), q=np.ones((3, 4, 1)))
    with pytest.raises(ValueError, match="size 3"):
        broadcast_batch("(n,3)", x=np.ones((4, 2)))


def test_optional_operands_are_skipped():
    batch = broadcast_batch("(n),(n)", diag=np.ones((2, 4)), log_decay=None)
    assert batch.shape == (2,)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(("dtypes", "expected"), [
    (("int32", "float32"), "float64"),
    (("bool",), "float64"),
    (("float32", "float32"), "float32"),
    (("float32", "complex64"), "complex64"),
    (("float64", "complex64"), "complex128"),
    (("float16",), "float16"),
])
def test_result_dtype(dtypes, expected):
    assert result_dtype(*(np.ones(2, dt) for dt in dtypes)) == np.dtype(expected)


def test_result_dtype_is_not_value_dependent():
    assert result_dtype(np.ones(2, np.float32), 1e300) == np.float32
    assert result_dtype(np.ones(2, np.float32), 1j) == np.complex64
    with pytest.raises(TypeError, match="needs real"):
        result_dtype(np.ones(2, np.complex64), real_only=True)
    with pytest.raises(TypeError, match="unsupported dtype"):
        result_dtype(np.array(["a"]))


def test_compute_dtype_half_goes_to_single():
    assert compute_dtype(np.float16) == np.float32
    assert compute_dtype(np.complex128) == np.complex128


def test_check_finite_and_square():
    check_finite(np.ones(3), "a", np)
    check_finite(np.ones(0), "a", np)
    with pytest.raises(ValueError, match="'b' must not contain infs or NaNs"):
        check_finite(np.array([1.0, np.nan]), "b", np)
    with pytest.raises(ValueError, match="'A' must be square"):
        check_square(np.ones((2, 3)), "A")
    with pytest.raises(ValueError, match=r"'A' must have shape \(\.\.\., n, n\)"):
        check_square(np.ones(3), "A")


def test_as_array_names_the_argument():
    with pytest.raises(TypeError, match="'x' could not be converted"):
        as_array([[1, 2], [3]], "x", np)
    a = np.ones(3)
    assert as_array(a, "a", np) is a


# ---------------------------------------------------------------- dispatch


def test_dispatch_falls_back_and_reports(tmp_path):
    assert defined_names("no_such_family", "numba") == frozenset()
    with pytest.raises(LookupError, match="no_such_family"):
        implementation("no_such_family", "f", np)


def test_defined_names_reads_source_without_importing():
    code = ("import sys; from structla._core.dispatch import defined_names; "
            "print(sorted(defined_names('_core', 'reference')), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False"


# ---------------------------------------------------------------- jit


def test_kernel_compiles_and_propagates_nan():
    from structla._core.jit import FASTMATH, kernel

    assert "nnan" not in FASTMATH and "ninf" not in FASTMATH

    @kernel
    def total(x):
        s = 0.0
        for i in range(x.shape[0]):
            s += x[i]
        return s

    assert total(np.arange(5.0)) == 10.0
    assert np.isnan(total(np.array([1.0, np.nan])))
    assert np.isinf(total(np.array([1.0, np.inf])))


def test_disable_jit_runs_plain_python():
    code = ("from structla._core.jit import kernel, prange\n"
            "@kernel(parallel=True)\n"
            "def f(x):\n    return x + 1\n"
            "import sys; print(f(1), prange is range, 'numba' in sys.modules)")
    env = {**os.environ, "STRUCTLA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.split() == ["2", "True", "False"]


# ---------------------------------------------------------------- timing


def test_time_call_reports_first_and_median():
    from structla._core.timing import time_call

    calls = []
    timing = time_call(lambda: calls.append(1), repeats=3)
    assert timing.repeats == 3 and len(calls) == 5
    assert timing.first >= 0 and timing.median >= 0


# ---------------------------------------------------------------- cuda loader (GPU)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
def test_cuda_loader_runs_sample_kernel_on_current_stream(cp, dtype):
    from structla._core.cuda import get_kernel, launch

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3000).astype(dtype)
    y = rng.standard_normal(3000).astype(dtype)
    out = cp.full(3000, np.nan, dtype=dtype)  # poisoned: every element must be written
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        k = get_kernel("_core", "selftest.cu", "axpby", dtype)
        launch(k, 3, 256, (np.int64(3000), dtype.type(2), cp.asarray(x), dtype.type(-3),
                           cp.asarray(y), out))
    stream.synchronize()
    np.testing.assert_allclose(out.get(), 2 * x - 3 * y, rtol=10 * np.finfo(dtype).eps)


@pytest.mark.gpu
def test_cuda_launch_rejects_empty_grid(cp):
    from structla._core.cuda import get_kernel, launch

    k = get_kernel("_core", "selftest.cu", "axpby", np.float64)
    with pytest.raises(ValueError, match="empty launch"):
        launch(k, 0, 256, ())


def test_checks_finite_defaults_to_the_cpu_only():
    from structla._core.validate import checks_finite

    cupy_like = type(sys)("cupy")
    assert checks_finite(None, np) is True
    assert checks_finite(None, cupy_like) is False
    assert checks_finite(True, cupy_like) is True
    assert checks_finite(False, np) is False

"""GPU path of msign: the reference iteration with its elementwise work fused.

The products are cuBLAS calls in :mod:`structla.matfun._reference` (a stack of one
matrix goes through the 2-D GEMM, float16 on tensor cores). What is left per step
besides the three products is forming ``H = aI + bY + cY²``: five CuPy operations
(and temporaries) in the reference, one kernel here. For a stack of small matrices
(e.g. 256 × 128×128) the step is launch-bound, so this matters there most.
"""

from __future__ import annotations

import functools
from typing import Any

import cupy
import numpy as np
from cupy_backends.cuda.api import runtime
from cupy_backends.cuda.libs import cublas

from . import _reference

__all__ = ["frobenius_start", "fused_small", "matmul", "msign", "poly_matrix", "product16"]


@functools.cache
def _combine_kernel(scalar: str) -> Any:
    # H = aI + bY + cY² for real Y, Y2 of a stack of n×n matrices; the scalars and the
    # arithmetic are in S = `scalar` (float for float16/float32, double for float64), named
    # in the signature because CuPy binds no type placeholder from scalar arguments alone;
    # the flat index i runs in C order over the contiguous stack (n and i are CuPy's names)
    ctype = {"float32": "float", "float64": "double"}[scalar]
    return cupy.ElementwiseKernel(
        f"T Y, T Y2, {scalar} a, {scalar} b, {scalar} c, int64 side",
        "T H",
        f"""
        typedef {ctype} S;
        const long long r = i % (side * side);
        const S d = (r / side == r % side) ? a : S(0);
        H = T(S(Y) * b + S(Y2) * c + d);
        """,
        f"structla_matfun_poly_matrix_{scalar}",
    )


def poly_matrix(row: np.ndarray, Y: Any, Y2: Any, eye: Any) -> Any:
    """``aI + bY + cY²`` in one kernel (real dtypes; complex ones take the reference)."""
    if Y.dtype.kind == "c":
        return _reference.poly_matrix(row, Y, Y2, eye)
    scalar = np.float64 if Y.dtype == np.float64 else np.float32
    a, b, c = (scalar(v) for v in row)
    if Y2 is None:
        Y2, c = Y, scalar(0)
    return _combine_kernel(np.dtype(scalar).name)(Y, Y2, a, b, c, np.int64(Y.shape[-1]))


def _blas_handle() -> int:
    """CuPy's cuBLAS handle, bound to the current stream with host-side scalars.

    CuPy sets both before each of its own cuBLAS calls and leaves them as they were, so
    a raw call must set them too: on another stream it could read X before the kernels
    of the current stream have written it.
    """
    handle = cupy.cuda.device.get_cublas_handle()
    cublas.setStream(handle, cupy.cuda.get_current_stream().ptr)
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    return handle


def product16(a: Any, b: Any) -> Any:
    """``a @ b`` of float16 stacks with float32 accumulation and float32 output.

    A stack of one matrix is one ``cublasGemmEx`` (float16 inputs on tensor cores,
    float32 result); larger stacks take the reference (float32 products).
    """
    if a.shape[0] != 1 or b.shape[0] != 1:
        return _reference.product_float32(a, b)
    A, B = a[0], b[0]
    rows, inner = A.shape
    cols = B.shape[1]
    if not A.flags.c_contiguous:
        A = cupy.ascontiguousarray(A)
    # cuBLAS is column-major: the row-major C = A B is the column-major Cᵀ = Bᵀ Aᵀ, and a
    # row-major array read column-major is its transpose; a transposed C-contiguous B is
    # read as is with the transpose flag
    if B.flags.c_contiguous:
        op_b, ld_b = cublas.CUBLAS_OP_N, cols
    elif B.flags.f_contiguous:
        op_b, ld_b = cublas.CUBLAS_OP_T, inner
    else:
        B = cupy.ascontiguousarray(B)
        op_b, ld_b = cublas.CUBLAS_OP_N, cols
    C = cupy.empty((rows, cols), dtype=np.float32)
    one, zero = np.array(1.0, np.float32), np.array(0.0, np.float32)
    cublas.gemmEx(_blas_handle(), op_b, cublas.CUBLAS_OP_N,
                  cols, rows, inner, one.ctypes.data,
                  B.data.ptr, runtime.CUDA_R_16F, ld_b,
                  A.data.ptr, runtime.CUDA_R_16F, inner, zero.ctypes.data,
                  C.data.ptr, runtime.CUDA_R_32F, cols,
                  cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT_TENSOR_OP)
    return C[None]


_CUDA_TYPES = {np.dtype(np.float16): "CUDA_R_16F", np.dtype(np.float32): "CUDA_R_32F",
               np.dtype(np.float64): "CUDA_R_64F"}


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` of real stacks ``(count, r, k) @ (count, k, c)``, one cuBLAS call.

    CuPy's 3-D product copies a transposed operand (``X Xᵀ`` every step) before its
    strided-batched GEMM; here a ``b`` that is the transposed view of a C-contiguous
    stack is passed with the transpose flag. Stacks of one matrix and anything else
    (complex, other layouts) take the reference product.
    """
    dtype = a.dtype
    if (a.shape[0] == 1 or dtype not in _CUDA_TYPES or b.dtype != dtype or a.ndim != 3
            or b.ndim != 3 or a.shape[0] != b.shape[0] or not a.flags.c_contiguous):
        return _reference._mm(a, b)
    count, rows, inner = a.shape
    cols = b.shape[2]
    bt = b.swapaxes(1, 2)
    # column-major view as in product16: C (row-major) = A B is Cᵀ = Bᵀ Aᵀ
    if b.flags.c_contiguous:
        op_b, ld_b = cublas.CUBLAS_OP_N, cols
    elif bt.flags.c_contiguous:
        op_b, ld_b = cublas.CUBLAS_OP_T, inner
    else:
        return _reference._mm(a, b)
    C = cupy.empty((count, rows, cols), dtype=dtype)
    scalar = np.float64 if dtype == np.float64 else np.float32
    one, zero = np.array(1.0, scalar), np.array(0.0, scalar)
    kind = getattr(runtime, _CUDA_TYPES[dtype])
    compute = cublas.CUBLAS_COMPUTE_64F if dtype == np.float64 else cublas.CUBLAS_COMPUTE_32F
    cublas.gemmStridedBatchedEx(
        _blas_handle(), op_b, cublas.CUBLAS_OP_N, cols, rows, inner,
        one.ctypes.data, b.data.ptr, kind, ld_b, inner * cols,
        a.data.ptr, kind, inner, rows * inner, zero.ctypes.data,
        C.data.ptr, kind, cols, rows * cols, count, compute, cublas.CUBLAS_GEMM_DEFAULT_TENSOR_OP)
    return C


@functools.cache
def _start_kernels() -> tuple[Any, Any, Any]:
    # max |x|, Σ (x / max|x|)², and x / max|x| / √Σ cast to the compute dtype: dividing by
    # the largest entry first keeps every square in [0, 1]. NaN propagates (max() would
    # drop it), so that a NaN input still ends in the API's non-finite error.
    largest = cupy.ReductionKernel("T x", "T y", "abs(x)",
                                   "(a != a || b != b) ? a + b : max(a, b)", "y = a", "0",
                                   "structla_matfun_absmax")
    squares = cupy.ReductionKernel("T x, T top", "T y",
                                   "top == 0 ? T(0) : (x / top) * (x / top)", "a + b", "y = a",
                                   "0", "structla_matfun_scaled_squares")
    scale = cupy.ElementwiseKernel("T x, T top, T total", "U y",
                                   "y = top == 0 ? U(0) : U(x / top / sqrt(total))",
                                   "structla_matfun_frobenius_scale")
    return largest, squares, scale


def frobenius_start(M: Any, cdt: np.dtype) -> Any:
    """``M / ‖M‖_F`` per matrix in ``cdt`` in three kernels (the reference takes ≈ 17
    operations, which dominate a launch-bound stack of small matrices).

    Real float32/float64 stacks of more than one matrix (float16 results from float32
    input only); anything else takes the reference.
    """
    cdt = np.dtype(cdt)
    if (M.shape[0] == 1 or M.dtype not in (np.float32, np.float64) or cdt.kind != "f"
            or (cdt == np.float16 and M.dtype != np.float32)):
        return _reference.frobenius_start(M, cdt)
    largest, squares, scale = _start_kernels()
    # rows first (one CuPy block per output element; see _reference.matrix_reduce)
    top = largest(largest(M, axis=2), axis=1)[:, None, None]
    total = squares(M, top, axis=2).sum(axis=1)[:, None, None]
    return scale(M, top, total, cupy.empty(M.shape, dtype=cdt))


#: Largest side of the matrices the fused kernel takes (its three float16 buffers of
#: rows × (cols + 8) fit the shared memory of two blocks per SM up to 128 × 128).
_FUSED_MAX = 128
_FUSED_THREADS = 256


def _fused_fits(M: Any, table: np.ndarray, options: dict) -> bool:
    """Whether a call runs as one :func:`fused_small` launch: a fixed float16 table on a
    real float32/float16 stack of matrices with sides multiples of 16 up to 128, on a GPU
    with mma.sync (compute capability 8.0 or newer)."""
    n, m = M.shape[-2:]
    return (not options.get("adaptive") and options.get("low") is None
            and np.dtype(options.get("cdt")) == np.float16
            and M.dtype in (np.float32, np.float16) and len(table) > 0
            and min(n, m) >= 16 and max(n, m) <= _FUSED_MAX and n % 16 == 0 and m % 16 == 0
            and _has_mma(cupy.cuda.runtime.getDevice()))


@functools.cache
def _has_mma(device_id: int) -> bool:
    return int(cupy.cuda.Device(device_id).compute_capability) >= 80


@functools.lru_cache(maxsize=64)
def _device_table(rows: bytes) -> Any:
    """The float32 rows (given as their bytes, a cheap key) copied to the device once."""
    return cupy.asarray(np.frombuffer(rows, dtype=np.float32))


def fused_small(M: Any, table: np.ndarray, out: Any = None) -> Any:
    """Fixed-step float16 msign of a stack ``(count, n, m)`` in one kernel (``matfun.cu``).

    One block per matrix keeps X, Y = XXᵀ and H in shared memory for all steps; the
    products run on the tensor cores (float16 inputs, float32 accumulation), the same
    rounding points as the float16 reference iteration. Returns float32 (into ``out``,
    a C-contiguous float32 array of M's shape, when given).
    """
    from .._core.cuda import get_kernel, launch

    M = cupy.ascontiguousarray(M, dtype=np.float32)
    count, n, m = M.shape
    tall = n > m
    rows, cols = (m, n) if tall else (n, m)
    if out is None:
        out = cupy.empty(M.shape, dtype=np.float32)
    shared = 3 * rows * (cols + 8) * 2 + 32 * 4
    kernel = get_kernel("matfun", "matfun.cu", "msign_small_fused", np.float32)
    coefficients = _device_table(np.asarray(table, dtype=np.float32).tobytes())
    launch(kernel, count, _FUSED_THREADS,
           (M, out, coefficients, np.int32(len(table)), np.int32(rows), np.int32(cols),
            np.int32(tall)), shared_mem=shared)
    return out


def msign(M: Any, table: np.ndarray, **options: Any) -> tuple[Any, Any]:
    """:func:`structla.matfun._reference.msign` with the fused ``H`` kernel and the
    float16-in, float32-out product for the mixed-precision finish; fixed float16 tables
    on small matrices run as one :func:`fused_small` launch."""
    if _fused_fits(M, table, options):
        outcome = _reference.Outcome(iterations=len(table), method="standard")
        return fused_small(M, table), outcome
    return _reference.msign(M, table, combine=poly_matrix, product16=product16, mm=matmul,
                            start=frobenius_start, **options)

"""GPU launches for Cauchy and Vandermonde sums (kernels in ``cauchy.cu``).

Inputs arrive from ``_api`` as CuPy arrays flattened to one batch axis and cast to
complex64/complex128: ``v, w`` (count, N), ``z`` (count, L). Everything runs on
CuPy's current stream; nothing synchronises with the host.
"""

from __future__ import annotations

import cupy
import numpy as np

from .._core.cuda import get_kernel, launch

__all__ = ["cauchy", "vandermonde"]

#: Must equal ``NODES_PER_THREAD`` in cauchy.cu: nodes each thread keeps in registers.
NODES_PER_THREAD = 8
THREADS = 128
#: gridDim.y limit of CUDA; larger batches are covered by the kernels' grid-stride loop over rows.
MAX_GRID_Y = 65535


def _grid(count: int, length: int) -> tuple[int, int]:
    tile = THREADS * NODES_PER_THREAD
    return (-(-length // tile), min(count, MAX_GRID_Y))


def cauchy(v, w, z, *, conj_pairs):
    """Kernel entry for ``_api.cauchy``."""
    out = cupy.empty((v.shape[0], z.shape[1]), dtype=z.dtype)
    _cauchy_into(v, w, z, conj_pairs, out)
    return out


def _cauchy_into(v, w, z, conj_pairs, out):
    """Launch the Cauchy kernel writing every entry of ``out`` (count, L)."""
    count, n = v.shape
    length = z.shape[1]
    if z.strides[0] == 0:
        zc, z_stride = cupy.ascontiguousarray(z[:1]), 0  # one node set shared by the batch
    else:
        zc, z_stride = cupy.ascontiguousarray(z), length
    kernel = get_kernel("cauchy", "cauchy.cu", "cauchy_kernel", out.dtype)
    launch(kernel, _grid(count, length), THREADS,
           (cupy.ascontiguousarray(v), cupy.ascontiguousarray(w), zc, np.int64(z_stride), out,
            np.int32(count), np.int32(n), np.int32(length), np.int32(bool(conj_pairs))))


def _exp_scaled(s, k):
    """``exp(k·s)`` from magnitude and angle, so ``Re s = −inf`` gives 0 (never nan)."""
    magnitude = cupy.exp(k * s.real)
    return magnitude * cupy.cos(k * s.imag) + 1j * (magnitude * cupy.sin(k * s.imag))


def vandermonde(v, x, length, *, log, conj_pairs):
    """Kernel entry for ``_api.vandermonde``."""
    real = np.finfo(v.dtype).dtype
    shape = (v.shape[0], length)
    out = cupy.empty(shape, dtype=real if conj_pairs else v.dtype)
    _vandermonde_into(v, x, length, log, conj_pairs, out)
    return out


def _vandermonde_into(v, x, length, log, conj_pairs, out):
    """Launch the Vandermonde kernel writing every entry of ``out`` (count, length)."""
    count, n = v.shape
    x128 = x.astype(cupy.complex128)
    if log:
        s = x128
    else:
        # x**l = exp(l·log x); log 0 = −inf makes every power but the zeroth vanish.
        zero = x128 == 0
        s = cupy.log(cupy.where(zero, 1, x128))
        s = cupy.where(zero, complex(-np.inf, 0.0), s)
    s = cupy.ascontiguousarray(s)
    step = _exp_scaled(s, float(THREADS)).astype(v.dtype)
    kernel = get_kernel("cauchy", "cauchy.cu", "vandermonde_kernel", v.dtype)
    placeholder = cupy.empty(1, dtype=v.dtype if conj_pairs else out.real.dtype)
    complex_out, real_out = (placeholder, out) if conj_pairs else (out, placeholder)
    launch(kernel, _grid(count, length), THREADS,
           (cupy.ascontiguousarray(v), s, step, complex_out, real_out,
            np.int32(count), np.int32(n), np.int32(length), np.int32(bool(conj_pairs))))

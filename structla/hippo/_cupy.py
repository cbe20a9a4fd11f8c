"""GPU path of the S4 kernel: one fused spectrum kernel (``hippo.cu``) and one inverse FFT.

Inputs arrive from ``_api`` as CuPy arrays flattened to one batch axis and cast to
complex64/complex128 (``dt`` to the matching real dtype). Everything runs on CuPy's
current stream; nothing synchronises with the host. The kernel already applies the 1/L of
the inverse DFT and the spectrum is a private scratch array, so the inverse FFT runs
unnormalised and in place of its input: two launches per call, no copy, no scaling pass.
"""

from __future__ import annotations

import functools

import cupy
import cupyx.scipy.fft
import numpy as np

from .._core.cuda import get_kernel, launch
from . import _reference

__all__ = ["generating_kernel", "ssm_kernel_dplr"]

#: Must equal ``NODES_PER_THREAD`` in hippo.cu: nodes each thread keeps in registers.
NODES_PER_THREAD = 4
#: Must equal ``THREADS`` in hippo.cu (the kernels' launch bounds).
THREADS = 128
#: Must equal ``MAX_RANK`` in hippo.cu; higher ranks use ``_reference`` (batched solves).
MAX_RANK = 2
#: gridDim.y limit of CUDA; more channels are covered by the kernel's grid-stride loop.
MAX_GRID_Y = 65535
_REAL = {np.dtype(np.complex64): np.dtype(np.float32), np.dtype(np.complex128): np.dtype(np.float64)}


def _grid(count: int, regular: int) -> tuple[int, int]:
    tile = THREADS * NODES_PER_THREAD
    return (-(-regular // tile), min(count, MAX_GRID_Y))


def generating_kernel(Lambda, P, B, Ct, dt, length, *, conj_pairs, real):
    """``K̄ = IFFT(K̂)`` like ``_reference.generating_kernel``, the spectrum by one kernel."""
    count, rank, _ = P.shape
    if rank > MAX_RANK or length == 0 or count == 0:
        return _reference.generating_kernel(Lambda, P, B, Ct, dt, length,
                                            conj_pairs=conj_pairs, real=real)
    nodes = length // 2 + 1 if real else length
    spectrum = cupy.empty((count, nodes), dtype=Lambda.dtype)
    _spectrum_into(Lambda, P, B, Ct, dt, length, conj_pairs, spectrum, scale=1 / length)
    if real:
        return cupyx.scipy.fft.irfft(spectrum, n=length, norm="forward", overwrite_x=True)
    return cupyx.scipy.fft.ifft(spectrum, n=length, norm="forward", overwrite_x=True)


def _spectrum_into(Lambda, P, B, Ct, dt, length, conj_pairs, out, *, scale=1.0):
    """Launch the fused kernel writing every entry of ``out`` (count, nodes): ``scale·K̂(ω_l)``."""
    count, rank, M = P.shape
    nodes = out.shape[1]
    # The Nyquist node (even L, inside the output) is written apart from the tiled regular nodes.
    regular = nodes - (length % 2 == 0 and length // 2 < nodes)
    real_dtype = _REAL[Lambda.dtype]
    kernel = get_kernel("hippo", "hippo.cu", f"dplr_spectrum_rank{rank}", real_dtype)
    tangents = _tangents(length, nodes, real_dtype, cupy.cuda.runtime.getDevice())
    launch(kernel, _grid(count, regular), THREADS,
           (*(_contiguous(x) for x in (Lambda, P, B, Ct)),
            _contiguous(dt if dt.dtype == real_dtype else dt.astype(real_dtype)), tangents, out,
            np.int32(count), np.int32(M),
            np.int32(length), np.int32(nodes), np.int32(bool(conj_pairs)), real_dtype.type(scale)))


@functools.lru_cache(maxsize=16)
def _tangents(length, nodes, real_dtype, device):
    """``τ_l = tan(πl/L)``, l < nodes, on ``device``: one table per length, like an FFT plan."""
    with cupy.cuda.Device(device):
        return cupy.asarray(_reference.node_tangents(length, nodes), dtype=real_dtype)


def _contiguous(x):
    return x if x.flags.c_contiguous else cupy.ascontiguousarray(x)


def ssm_kernel_dplr(Lambda, P, B, C, dt, length, *, conj_pairs, c_tilde, real):
    """Kernel entry for ``_api.ssm_kernel_dplr``; ``C̃ = C − C Āᴸ`` by dense squaring."""
    if not c_tilde:
        C = C - _reference.c_tilde_correction(Lambda, P, C, dt, length, conj_pairs=conj_pairs)
    return generating_kernel(Lambda, P, B, C, dt, length, conj_pairs=conj_pairs, real=real)

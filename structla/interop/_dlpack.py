"""Zero-copy bridges between torch / JAX tensors and the NumPy / CuPy arrays structla computes on.

Policy
------
* CPU torch tensors become NumPy arrays sharing their memory (``numpy.from_dlpack``); CUDA
  tensors become CuPy arrays sharing their memory (``cupy.from_dlpack``). Results come back
  the same way (``torch.from_numpy`` / ``torch.from_dlpack``), on the caller's device.
* CUDA work runs on the caller's *current torch stream*: :func:`torch_stream` wraps it in a
  ``cupy.cuda.ExternalStream`` made current for the duration of the call, so structla's
  kernels and cuBLAS calls queue behind the caller's own work without any synchronisation.
* bfloat16 and float16 tensors (CuPy has no bfloat16, the CPU kernels have neither) are
  converted to float32 by torch on the caller's stream, computed in float32, and the result
  is cast back to the caller's dtype. This is the only copy the bridges make.
* Tensors carrying torch's lazy conjugate or negative bit are resolved first (DLPack
  cannot describe them); tensors that require grad are detached (autograd lives in
  :mod:`structla.interop._torch`, not here).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "from_numpy_or_cupy",
    "half_dtypes",
    "jax_to_numpy",
    "numpy_to_jax",
    "run_on_tensors",
    "to_numpy_or_cupy",
    "torch_stream",
]


def half_dtypes() -> tuple[Any, ...]:
    """The torch dtypes computed in float32 (and cast back)."""
    import torch

    return (torch.bfloat16, torch.float16)


def to_numpy_or_cupy(t: Any) -> Any:
    """A NumPy (CPU) or CuPy (CUDA) array viewing the memory of the torch tensor ``t``.

    bfloat16/float16 become float32 (a new tensor, made by torch on the current stream).
    On CUDA, call inside :func:`torch_stream` so CuPy's current stream is torch's.
    """
    import torch

    if t.dtype in half_dtypes():
        t = t.to(torch.float32)
    t = t.detach().resolve_conj().resolve_neg()
    if t.device.type == "cpu":
        return np.from_dlpack(t)
    if t.device.type == "cuda":
        import cupy

        return cupy.from_dlpack(t)
    raise TypeError(f"structla computes on CPU and CUDA tensors; got a tensor on {t.device}")


def from_numpy_or_cupy(a: Any, dtype: Any = None, device: Any = None) -> Any:
    """The torch tensor viewing the NumPy/CuPy array ``a`` (zero-copy), cast to ``dtype``.

    ``dtype`` is the dtype the caller expects: float32 results of half-precision inputs
    are cast back to it.
    """
    import torch

    if isinstance(a, np.ndarray | np.generic):
        a = np.asarray(a)
        if not a.flags.writeable or any(st < 0 for st in a.strides):
            a = a.copy()  # torch has no read-only tensors and no negative strides
        out = torch.from_numpy(a)
    else:
        if any(st < 0 for st in a.strides):
            a = a.copy()  # torch's DLPack import aborts the process on negative strides
        out = torch.from_dlpack(a)
    if device is not None and out.device != torch.device(device):
        raise RuntimeError(f"internal error: result on {out.device}, expected {device}")
    if dtype is not None and out.dtype != dtype:
        out = out.to(dtype)
    return out


@contextlib.contextmanager
def torch_stream(device: Any) -> Iterator[None]:
    """Make torch's current CUDA stream of ``device`` CuPy's current stream (no-op on CPU)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    import cupy

    index = device.index if device.index is not None else torch.cuda.current_device()
    stream = torch.cuda.current_stream(index)
    with cupy.cuda.Device(index), cupy.cuda.ExternalStream(stream.cuda_stream, index):
        yield


def _device_of(tensors: list[Any]) -> Any:
    import torch

    devices = {t.device for t in tensors if isinstance(t, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(f"tensors on different devices: {sorted(map(str, devices))}")
    return devices.pop() if devices else torch.device("cpu")


def run_on_tensors(fn: Callable[..., Any], *args: Any, out_dtype: Any = None, **kwargs: Any) -> Any:
    """Call ``fn`` (a NumPy/CuPy routine) on torch tensors and return torch tensors.

    Tensor arguments (positional or keyword) are bridged with :func:`to_numpy_or_cupy`; the
    call runs on the caller's current CUDA stream; array results (also inside tuples and
    lists) come back as tensors on the same device, cast to ``out_dtype`` when given (the
    half-precision policy). A result that shares memory with an input is
    copied, so the caller never receives an alias of its own tensor.
    """
    import torch

    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    device = _device_of(tensors)
    pointers = {t.data_ptr() for t in tensors if t.numel()}

    def bring(x: Any) -> Any:
        return to_numpy_or_cupy(x) if isinstance(x, torch.Tensor) else x

    def back(x: Any) -> Any:
        if isinstance(x, tuple | list):
            return type(x)(back(y) for y in x)
        if x is None or isinstance(x, int | float | complex | str | bool):
            return x
        out = from_numpy_or_cupy(x, out_dtype, device)
        if out.numel() and out.data_ptr() in pointers:
            out = out.clone()
        return out

    with torch_stream(device):
        result = fn(*(bring(a) for a in args), **{k: bring(v) for k, v in kwargs.items()})
        return back(result)


def jax_to_numpy(x: Any) -> np.ndarray:
    """A NumPy array of the JAX (CPU) array ``x``; zero-copy where JAX allows it."""
    return np.asarray(x)


def numpy_to_jax(a: np.ndarray) -> Any:
    """A JAX array holding the NumPy array ``a``."""
    import jax.numpy as jnp

    return jnp.asarray(a)

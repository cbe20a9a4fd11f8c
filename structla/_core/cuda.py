"""The one CuPy ``RawModule`` loader, its dtype → C++ table and the launch helper.

A family's ``*.cu`` file holds kernels templated on their element type::

    template <typename T> __global__ void my_kernel(...);

and may restrict the types it is instantiated for with a directive line
``// structla-dtypes: float32 float64``. The loader compiles the file once per
(file, device) with NVRTC, instantiating every kernel for every listed dtype
through ``name_expressions`` generated from :data:`CUDA_TYPES`. The same table
drives ``tests/test_cuda_sources.py``, which builds each file with ``nvcc``.

Only ``<family>/_cupy.py`` modules import this file, so ``import structla``
never imports CuPy.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CUDA_TYPES",
    "INCLUDE_DIR",
    "cuda_type",
    "get_kernel",
    "kernel_dtypes",
    "kernel_names",
    "launch",
]

INCLUDE_DIR = Path(__file__).resolve().parent / "include"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent

#: C++ element type each NumPy dtype is computed in. float16 data is converted to
#: float32 before launch (see :func:`launch_dtype`) so kernels see ``float``.
CUDA_TYPES: dict[np.dtype, str] = {
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.complex64): "sl::complex<float>",
    np.dtype(np.complex128): "sl::complex<double>",
}
COMPILE_OPTIONS = ("--std=c++17", f"-I{INCLUDE_DIR}")

_KERNEL = re.compile(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+(\w+)\s*\(")
_DTYPES = re.compile(r"^//\s*structla-dtypes:\s*(.+)$", re.MULTILINE)


def cuda_type(dtype: Any) -> str:
    """C++ type name for ``dtype`` (``ValueError`` for dtypes without a kernel type)."""
    dtype = launch_dtype(dtype)
    try:
        return CUDA_TYPES[dtype]
    except KeyError:
        raise ValueError(f"no CUDA kernel type for dtype {dtype}") from None


def launch_dtype(dtype: Any) -> np.dtype:
    """The dtype arrays are converted to before a launch (float16 → float32)."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def kernel_names(source: str) -> list[str]:
    """Names of the ``template <typename T> __global__`` kernels in ``source``."""
    return _KERNEL.findall(source)


def kernel_dtypes(source: str) -> list[np.dtype]:
    """Dtypes the kernels of ``source`` are instantiated for (directive or all four)."""
    match = _DTYPES.search(source)
    if match is None:
        return list(CUDA_TYPES)
    return [np.dtype(name) for name in match.group(1).split()]


def name_expressions(source: str) -> list[str]:
    """``kernel<type>`` for every kernel and dtype of ``source``."""
    return [f"{k}<{CUDA_TYPES[t]}>" for k in kernel_names(source) for t in kernel_dtypes(source)]


@functools.cache
def _module(path: Path, device_id: int) -> Any:
    import cupy

    source = path.read_text(encoding="utf-8")
    with cupy.cuda.Device(device_id):
        module = cupy.RawModule(
            code=source, options=COMPILE_OPTIONS, name_expressions=name_expressions(source)
        )
        module.compile()
    return module


def get_kernel(family: str, filename: str, name: str, dtype: Any) -> Any:
    """The compiled ``name<T>`` kernel of ``structla/<family>/<filename>`` for ``dtype``.

    Compiled with NVRTC on first use per (file, device), then cached for the process
    (CuPy also caches the binary on disk across processes); the function handle is
    cached too, since a launch of a short kernel is dominated by host-side work.
    """
    import cupy

    return _function(family, filename, f"{name}<{cuda_type(dtype)}>", cupy.cuda.runtime.getDevice())


@functools.cache
def _function(family: str, filename: str, expression: str, device_id: int) -> Any:
    return _module(PACKAGE_ROOT / family / filename, device_id).get_function(expression)


_SHARED_WITHOUT_OPT_IN = 48 * 1024


def launch(kernel: Any, grid: int | tuple[int, ...], block: int | tuple[int, ...],
           args: tuple[Any, ...], shared_mem: int = 0) -> None:
    """Launch ``kernel`` on CuPy's current stream and check the launch.

    Launch-configuration errors raise at once (CuPy checks ``cuLaunchKernel``).
    Dynamic shared memory beyond the 48 KiB a kernel gets without asking is opted into
    here (once per kernel), so callers only pass the bytes they need.
    With ``STRUCTLA_CUDA_SYNC=1`` the stream is synchronised after every launch so
    that faults inside the kernel surface at the launch that caused them.
    """
    import cupy

    grid = grid if isinstance(grid, tuple) else (grid,)
    block = block if isinstance(block, tuple) else (block,)
    if any(g <= 0 for g in grid) or any(b <= 0 for b in block):
        raise ValueError(f"empty launch: grid={grid}, block={block}")
    if shared_mem > _SHARED_WITHOUT_OPT_IN and kernel.max_dynamic_shared_size_bytes < shared_mem:
        kernel.max_dynamic_shared_size_bytes = shared_mem
    kernel(grid, block, args, shared_mem=shared_mem)
    if os.environ.get("STRUCTLA_CUDA_SYNC", "0") not in ("", "0"):
        cupy.cuda.get_current_stream().synchronize()

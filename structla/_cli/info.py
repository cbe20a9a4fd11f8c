"""``python -m structla info``: versions, threads, devices and the routine × backend table."""

from __future__ import annotations

import importlib.metadata
import inspect
import platform
from typing import TextIO

from .._core.dispatch import defined_names
from .._core.families import gpu_available

__all__ = ["print_info", "routine_table"]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def routine_table() -> list[tuple[str, str, str, str]]:
    """``(routine, family, cpu, gpu)``: which implementation serves each public routine.

    ``numba``/``cuda`` are compiled kernels, ``reference`` is the array-generic code (which
    runs on the GPU through CuPy), ``composed`` means the routine is built from other
    public routines.
    """
    import structla

    rows = []
    for name in structla.__all__:
        obj = getattr(structla, name)
        module = getattr(obj, "__module__", "") or ""
        parts = module.split(".")
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or len(parts) < 3:
            continue
        family = parts[1]
        if family.startswith("_"):
            continue
        reference = name in defined_names(family, "reference")
        fallback = "reference" if reference else "composed"
        cpu = "numba" if name in defined_names(family, "numba") else fallback
        gpu = "cuda" if name in defined_names(family, "cuda") else fallback
        rows.append((name, family, cpu, gpu))
    return rows


def print_info(out: TextIO) -> None:
    """Write the ``info`` report to ``out``."""
    import structla

    out.write(f"structla {structla.__version__}\n")
    out.write(f"python   {platform.python_version()} ({platform.machine()}, {platform.system()})\n")
    for dist in ("numpy", "scipy", "numba", "llvmlite", "array-api-compat"):
        out.write(f"{dist:<17}{_version(dist)}\n")
    try:
        import numba

        out.write(f"numba threads: {numba.config.NUMBA_NUM_THREADS} "
                  f"(threading layer: {numba.config.THREADING_LAYER})\n")
    except ImportError:
        out.write("numba threads: numba not installed\n")
    if gpu_available():
        import cupy

        runtime = cupy.cuda.runtime
        props = runtime.getDeviceProperties(runtime.getDevice())
        out.write(f"cupy     {cupy.__version__}\n")
        out.write(f"CUDA     runtime {runtime.runtimeGetVersion()}, driver {runtime.driverGetVersion()}\n")
        out.write(f"GPU      {props['name'].decode()} ({props['multiProcessorCount']} SMs, "
                  f"{props['totalGlobalMem'] / 2**30:.0f} GiB)\n")
    else:
        cupy_version = next((v for v in map(_version, ("cupy-cuda13x", "cupy-cuda12x", "cupy"))
                             if v != "not installed"), "not installed")
        out.write(f"cupy     {cupy_version} (no CUDA device visible: GPU backend unavailable)\n")
    rows = routine_table()
    out.write("\n")
    if not rows:
        out.write("No routine families are implemented yet.\n")
        return
    header = ("routine", "family", "cpu (NumPy)", "gpu (CuPy)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")

"""Wall-clock timing shared by ``demo``, ``check`` and the benchmark runner.

CPU calls are timed with ``time.perf_counter``; calls on CuPy arrays with CUDA
events on the current stream. The first call is timed on its own (it includes
Numba/NVRTC compilation or cache loading) and reported separately.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Timing", "time_call"]


@dataclass(frozen=True)
class Timing:
    """Seconds taken by a call: the first one, and the median of the repeats."""

    first: float
    median: float
    repeats: int


def _gpu_seconds(fn: Callable[[], Any]) -> float:
    cupy = sys.modules["cupy"]
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    fn()
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / 1e3


def _cpu_seconds(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_call(
    fn: Callable[[], Any], *, gpu: bool = False, repeats: int = 5, budget: float = 2.0
) -> Timing:
    """Time ``fn()``: first call, one warm-up, then the median of up to ``repeats`` runs.

    Stops repeating early once ``budget`` seconds have been spent, keeping at least
    one timed run, so slow peers do not stall a benchmark sweep.
    """
    measure = _gpu_seconds if gpu else _cpu_seconds
    first = measure(fn)
    spent = first
    if first < budget / 4:
        spent += measure(fn)  # warm-up: caches, allocator pools, clocks
    samples: list[float] = []
    while len(samples) < repeats and (not samples or spent < budget):
        samples.append(measure(fn))
        spent += samples[-1]
    return Timing(first=first, median=statistics.median(samples), repeats=len(samples))

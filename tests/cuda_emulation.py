"""Run a family's unmodified ``.cu`` kernels on the host: one C++ thread per CUDA thread.

CI has no GPU; a harness (C++ text written by each family's test after :data:`PRELUDE`, which
emulates ``threadIdx``/``blockIdx``/``__syncthreads``/warp shuffles with threads and C++20
barriers) includes the kernel source, runs checks and prints one ``ratio=<error / bound>``
line per check.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from structla._core.cuda import INCLUDE_DIR

CXX = shutil.which("g++") or shutil.which("clang++")

#: C++ that every harness starts with, before it includes a family's .cu file: the CUDA
#: keywords as plain C++, the grid variables, ``__syncthreads`` as a barrier, warp shuffles
#: through per-warp exchange slots, dynamic shared memory, the math intrinsics the kernels use,
#: and ``run_grid``, which runs a kernel block by block, one host thread per CUDA thread.
PRELUDE = r"""
#include <algorithm>
#include <barrier>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>
#define __global__
#define __device__
#define __host__
#define __noinline__
#define __shared__ static  // one block runs at a time, so "static" is per block
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define STRUCTLA_DYNAMIC_SHARED(name) unsigned char* name = g_shared
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
std::barrier<>* g_barrier;
unsigned char* g_shared;
inline void __syncthreads() { g_barrier->arrive_and_wait(); }

// Warp intrinsics: each warp has 32 exchange slots and its own barrier.
struct Warp { std::barrier<>* barrier; double slot[32]; };
std::vector<Warp>* g_warps;
inline Warp& my_warp() { return (*g_warps)[threadIdx.x >> 5]; }
inline void __syncwarp() { my_warp().barrier->arrive_and_wait(); }
template <class V> V exchange(V v, int source) {
    Warp& w = my_warp();
    w.slot[threadIdx.x & 31] = v;
    w.barrier->arrive_and_wait();
    const V r = V(w.slot[source]);
    w.barrier->arrive_and_wait();
    return r;
}
template <class V> V __shfl_sync(unsigned, V v, int lane) { return exchange(v, lane); }
template <class V> V __shfl_up_sync(unsigned, V v, int delta) {
    const int lane = threadIdx.x & 31;
    return exchange(v, lane >= delta ? lane - delta : lane);
}

using std::exp; using std::fabs; using std::fma; using std::fmax; using std::log1p;
using std::max; using std::min;
inline void sincos(double x, double* s, double* c) { *s = std::sin(x); *c = std::cos(x); }
inline void sincos(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
// CUDA's documented __fdividef: 0 for 2^126 < |y| < 2^128, subnormal y flushed to zero.
inline float __fdividef(float x, float y) {
    if (std::isfinite(y) && std::fabs(y) > 0x1p126f) return 0.0f;
    if (std::fpclassify(y) == FP_SUBNORMAL) y = std::copysign(0.0f, y);
    return x / y;
}

// Runs kernel() on a gx × gy grid of `threads`-thread blocks, one block at a time, with
// `shared` bytes of dynamic shared memory filled with NaN bit patterns (unwritten shared
// memory shows) and, where the block is whole warps, the warp exchange slots.
template <class F> void run_grid(unsigned gx, unsigned gy, int threads, size_t shared, F kernel) {
    gridDim.x = gx; gridDim.y = gy; blockDim.x = threads;
    for (unsigned by = 0; by < gy; ++by) {
        for (unsigned bx = 0; bx < gx; ++bx) {
            const size_t bytes = ((shared + 15) / 16) * 16 + 16;
            g_shared = static_cast<unsigned char*>(std::aligned_alloc(16, bytes));
            std::memset(g_shared, 0xff, bytes);
            std::barrier<> barrier(threads);
            g_barrier = &barrier;
            std::vector<Warp> warps(threads / 32);
            for (auto& w : warps) w.barrier = new std::barrier<>(32);
            g_warps = &warps;
            std::vector<std::thread> pool;
            for (int t = 0; t < threads; ++t) {
                pool.emplace_back([&, t] { threadIdx.x = t; blockIdx.x = bx; blockIdx.y = by; kernel(); });
            }
            for (auto& th : pool) th.join();
            for (auto& w : warps) delete w.barrier;
            std::free(g_shared);
        }
    }
}
"""


def build_and_run(work: Path, harness: str, define: str, source: Path, timeout: float) -> list[str]:
    """Compile ``harness`` with ``-D<define>="<source>"`` and return its output lines.

    Skips (not fails) where no C++20 host compiler exists; any build or run error fails.
    """
    if CXX is None:
        pytest.skip("no host C++ compiler")
    path = work / "harness.cpp"
    path.write_text(harness)
    binary = work / "harness"
    build = subprocess.run(
        [CXX, "-O1", "-std=c++20", "-w", f"-I{INCLUDE_DIR}", f'-D{define}="{source}"',
         "-o", str(binary), str(path), "-lpthread"], capture_output=True, text=True)
    if build.returncode != 0 and "barrier" in build.stderr:
        pytest.skip("host C++ compiler without C++20 <barrier>")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def assert_within_bounds(lines: list[str], expected_checks: int) -> None:
    """Every ``ratio=`` line is ≤ 1 (NaN, i.e. an unwritten entry, fails too)."""
    ratios = [(line, float(re.search(r"ratio=(\S+)", line).group(1))) for line in lines]
    assert len(ratios) == expected_checks
    bad = [line for line, ratio in ratios if not ratio <= 1.0]
    assert not bad, "error above the bound (or an unwritten NaN entry):\n" + "\n".join(bad)

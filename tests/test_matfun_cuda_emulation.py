"""matfun.cu run on the CPU: every CUDA thread of a block is a host thread (tests/cuda_emulation.py).

``msign_small_fused`` (the fused fixed-step float16 msign of small matrices) is compiled as host
C++ with the unmodified kernel; the harness supplies the three device primitives the kernel
takes from inline PTX: ``mma.sync.m16n8k16`` (gathering the warp's fragments through shared
slots in the register layout of the PTX ISA, so a wrong fragment index in the kernel shows)
and the float16 conversions (``_Float16``, round to nearest even). Wide, square and tall
matrices with sides 16 … 64, two matrices per launch, zero and NaN matrices; outputs are
poisoned with NaN. The result must match a NumPy model of the same float16 iteration (same
rounding points) to a few float16 units, and the float64 fixed-step iteration to float16
accuracy. The real-GPU tests (``-m gpu``) remain the final word.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cuda_emulation import PRELUDE, build_and_run

from structla import ns_coefficients

SOURCE = Path(__file__).resolve().parent.parent / "structla" / "matfun" / "matfun.cu"

HARNESS = PRELUDE + r"""
#define __forceinline__ inline
template <class V> V __shfl_down_sync(unsigned, V v, int delta) {
    const int lane = threadIdx.x & 31;
    return exchange(v, lane + delta < 32 ? lane + delta : lane);
}
inline unsigned short mf_f2h(float x) {
    const _Float16 h = static_cast<_Float16>(x);
    unsigned short bits;
    std::memcpy(&bits, &h, 2);
    return bits;
}
inline float mf_h2f(unsigned short bits) {
    _Float16 h;
    std::memcpy(&h, &bits, 2);
    return static_cast<float>(h);
}
// mma.sync.m16n8k16.row.col.f32.f16.f16.f32 for one warp: every lane posts its fragment
// registers, each lane then rebuilds A (16×16) and B (16×8) with the PTX ISA layout
// (group g = lane/4, t = lane%4; A register i: row g + 8(i&1), columns 2t + 8(i>>1) and +1;
// B register i: rows 2t + 8i and +1, column g; D: rows g, g + 8, columns 2t, 2t + 1).
unsigned g_mma_a[64][32][4], g_mma_b[64][32][2];
inline void mf_mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int i = 0; i < 4; ++i) g_mma_a[w][lane][i] = a[i];
    for (int i = 0; i < 2; ++i) g_mma_b[w][lane][i] = b[i];
    __syncwarp();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {
        const int g = l >> 2, t = l & 3;
        for (int i = 0; i < 4; ++i) {
            const int r = g + 8 * (i & 1), c = 2 * t + 8 * (i >> 1);
            A[r][c] = mf_h2f(g_mma_a[w][l][i] & 0xffffu);
            A[r][c + 1] = mf_h2f(g_mma_a[w][l][i] >> 16);
        }
        for (int i = 0; i < 2; ++i) {
            const int k = 2 * t + 8 * i;
            B[k][g] = mf_h2f(g_mma_b[w][l][i] & 0xffffu);
            B[k + 1][g] = mf_h2f(g_mma_b[w][l][i] >> 16);
        }
    }
    __syncwarp();
    const int g = lane >> 2, t = lane & 3;
    for (int e = 0; e < 4; ++e) {
        const int r = g + 8 * (e >> 1), c = 2 * t + (e & 1);
        float s = d[e];
        for (int k = 0; k < 16; ++k) s += A[r][k] * B[k][c];
        d[e] = s;
    }
}
#include MATFUN_CU

// One launch of `count` matrices stored rows_s × cols_s; kind 0: random, 1: the first
// matrix zero, 2: one NaN in the first matrix. Prints the input and output values.
void check(int count, int rows_s, int cols_s, int steps, int kind, const std::vector<float>& table) {
    const bool tall = rows_s > cols_s;
    const int rows = tall ? cols_s : rows_s, cols = tall ? rows_s : cols_s;
    const size_t size = size_t(rows_s) * cols_s;
    std::vector<float> M(count * size), out(count * size, std::numeric_limits<float>::quiet_NaN());
    std::mt19937 gen(rows_s * 1000 + cols_s * 10 + kind);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto& v : M) v = normal(gen) * 1e3f;
    if (kind == 1) std::fill(M.begin(), M.begin() + size, 0.0f);
    if (kind == 2) M[3] = std::numeric_limits<float>::quiet_NaN();
    const size_t shared = 3 * size_t(rows) * (cols + 8) * 2 + 32 * 4;
    run_grid(count, 1, 256, shared, [&] {
        msign_small_fused<float>(M.data(), out.data(), table.data(), steps, rows, cols, tall ? 1 : 0);
    });
    std::printf("case %d %d %d %d %d\n", count, rows_s, cols_s, steps, kind);
    for (size_t i = 0; i < M.size(); ++i) std::printf("%.9g %.9g\n", M[i], out[i]);
}

int main() {
    const std::vector<float> table = {TABLE};
    const int steps = int(table.size() / 3);
    check(2, 32, 32, steps, 0, table);
    check(2, 16, 48, steps, 0, table);
    check(1, 64, 32, steps, 0, table);
    check(2, 32, 64, 1, 0, table);
    check(2, 16, 16, steps, 1, table);
    check(1, 16, 32, steps, 2, table);
    check(1, 16, 16, 0, 0, table);
}
"""


def _f16(x):
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


def _model(M, table):
    """The kernel's arithmetic in NumPy: float16 X, Y, H; float32 products and combine."""
    tall = M.shape[0] > M.shape[1]
    A = (M.T if tall else M).astype(np.float32)
    top = np.abs(A).max()
    if top == 0:
        return np.zeros_like(M)
    norm = np.sqrt(np.sum((A / top) ** 2, dtype=np.float32))
    X = _f16(A / top / norm)
    if len(table) == 0:
        return X.T if tall else X
    for s, (a, b, c) in enumerate(np.asarray(table, np.float32)):
        Y = _f16(X @ X.T)
        H = _f16(c * (Y @ Y.T) + b * Y + a * np.eye(len(Y), dtype=np.float32))
        X = H @ X if s == len(table) - 1 else _f16(H @ X)
    return X.T if tall else X


def _exact(M, table):
    """The same fixed-step iteration in float64 (no float16 rounding)."""
    X = (M.T if M.shape[0] > M.shape[1] else M).astype(np.float64)
    X = X / np.linalg.norm(X)
    for a, b, c in table:
        Y = X @ X.T
        X = (a * np.eye(len(Y)) + b * Y + c * Y @ Y) @ X
    return X.T if M.shape[0] > M.shape[1] else X


def _cases(lines):
    cases, current = [], None
    for line in lines:
        if line.startswith("case"):
            count, rows, cols, steps, kind = (int(v) for v in line.split()[1:])
            current = {"shape": (count, rows, cols), "steps": steps, "kind": kind, "values": []}
            cases.append(current)
        else:
            current["values"].append([float(v) for v in line.split()])
    for case in cases:
        values = np.array(case["values"]).reshape(*case["shape"], 2)
        case["M"], case["out"] = values[..., 0], values[..., 1]
    return cases


def test_fused_small_msign_matches_float16_model(tmp_path):
    table = ns_coefficients("polar_express", 3)
    harness = HARNESS.replace("{TABLE}", "{" + ", ".join(f"{float(v)!r}f" for v in table.ravel()) + "}")
    cases = _cases(build_and_run(tmp_path, harness, "MATFUN_CU", SOURCE, timeout=240))
    assert len(cases) == 7
    for case in cases:
        rows_table = table[:case["steps"]]
        for M, out in zip(case["M"], case["out"]):
            label = f"{case['shape']} steps={case['steps']} kind={case['kind']}"
            if case["kind"] == 2 and np.isnan(M).any():
                assert np.isnan(out).all(), label
                continue
            assert np.isfinite(out).all(), label
            model = _model(M, rows_table)
            scale = max(np.abs(model).max(), 1e-30)
            assert np.abs(out - model).max() <= 8e-3 * scale, label
            if case["kind"] == 1 and not M.any():
                assert not out.any(), label
                continue
            exact = _exact(M, rows_table)
            assert np.abs(out - exact).max() <= 3e-2 * max(np.abs(exact).max(), 1e-30), label

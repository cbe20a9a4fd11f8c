"""models.cu run on the CPU: every CUDA thread of a block is a host thread, ``__syncthreads`` a barrier.

CI has no GPU; nvcc (test_cuda_sources.py) catches syntax and template errors only. Here the
unmodified ``delta_chunk_carry`` (32 value columns per block), ``delta_chunk_carry_narrow``
(16) and ``delta_chunk_carry_wide`` (64) are compiled as host C++ and launched block by block with the
grid, thread count and shared memory ``_cupy.py`` uses. The chunk-local inputs are prepared
on the host as ``_cupy.delta_chunked`` prepares them (T_c by forward substitution, Q Kᵀ, the
per-step gate factors), and the outputs and final state, poisoned with NaN
beforehand, are compared with the step-by-step float64 recurrence of MATH F3–F4 on the raw
inputs. Cases: several chunks with a partial last chunk, chunk sizes 16, 37 and 64, d_k from
5 to 128 (one to four key slabs), value tiles partial and several, gated and ungated, an
initial state, float32 and float64. The real-GPU tests (``-m gpu``) remain the final word.
"""

from __future__ import annotations

from pathlib import Path

from cuda_emulation import PRELUDE, assert_within_bounds, build_and_run

SOURCE = Path(__file__).resolve().parent.parent / "structla" / "models" / "models.cu"

HARNESS = PRELUDE + r"""
struct float4 { float x, y, z, w; };
#include MODELS_CU

// One problem: `count` sequences of `length` steps in chunks of C; prints the error ratio.
template <class T> void check(int count, int length, int C, int dk, int dv, bool gated, int tile,
                              unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> uni(0, 1);
    const int nc = (length + C - 1) / C, L = nc * C;
    // raw inputs (double, rounded to T so both sides see the same numbers)
    auto r = [](double x) { return double(T(x)); };
    std::vector<double> q(count * L * dk, 0.0), k(count * L * dk, 0.0), v(count * length * dv),
        beta(count * L, 0.0), la(count * L, 0.0), h0(count * dv * dk);
    for (int s = 0; s < count; ++s)
        for (int t = 0; t < length; ++t) {
            for (int l = 0; l < dk; ++l) {
                q[(s * L + t) * dk + l] = r(normal(rng) / std::sqrt(dk));
                k[(s * L + t) * dk + l] = r(normal(rng) / std::sqrt(dk));
            }
            beta[s * L + t] = r(uni(rng));
            if (gated) la[s * L + t] = r(std::log(0.5 + 0.5 * uni(rng)));
        }
    for (auto& a : v) a = r(normal(rng));
    for (auto& a : h0) a = r(normal(rng));
    // chunk-local inputs, as _cupy.delta_chunked prepares them
    const int nb = count * nc;
    std::vector<T> kt(nb * C * dk), qt(nb * C * dk), tc(nb * C * C), qk(nb * C * C), eg(nb * C), el(nb * C),
        last(nb), vt(v.size()), h0t(h0.size());
    std::vector<double> g(nb * C);
    for (int b = 0; b < nb; ++b) {
        double sum = 0;
        for (int t = 0; t < C; ++t) { sum += la[b * C + t]; g[b * C + t] = sum; }
        const double gl = g[b * C + C - 1];
        last[b] = T(std::exp(gl));
        std::vector<double> a(C * C, 0.0), y(C * C, 0.0);
        for (int t = 0; t < C; ++t) {
            eg[b * C + t] = T(std::exp(g[b * C + t]));
            el[b * C + t] = T(std::exp(gl - g[b * C + t]));
            for (int l = 0; l < dk; ++l) {
                kt[(b * C + t) * dk + l] = T(k[(b * C + t) * dk + l]);
                qt[(b * C + t) * dk + l] = T(q[(b * C + t) * dk + l]);
            }
            for (int u = 0; u < C; ++u) {
                double qkv = 0, kkv = 0;
                for (int l = 0; l < dk; ++l) {
                    qkv += q[(b * C + t) * dk + l] * k[(b * C + u) * dk + l];
                    kkv += k[(b * C + t) * dk + l] * k[(b * C + u) * dk + l];
                }
                qk[(b * C + t) * C + u] = T(qkv);
                if (u < t) a[t * C + u] = beta[b * C + t] * kkv * std::exp(g[b * C + t] - g[b * C + u]);
            }
        }
        for (int u = 0; u < C; ++u) {  // T_c = (I + A)⁻¹ diag(β), column by column
            for (int t = u; t < C; ++t) {
                double x = t == u ? 1.0 : 0.0;
                for (int l = u; l < t; ++l) x -= a[t * C + l] * y[l * C + u];
                y[t * C + u] = x;
            }
            for (int t = 0; t < C; ++t) tc[(b * C + t) * C + u] = T(y[t * C + u] * beta[b * C + u]);
        }
    }
    for (size_t i = 0; i < v.size(); ++i) vt[i] = T(v[i]);
    for (size_t i = 0; i < h0.size(); ++i) h0t[i] = T(h0[i]);
    std::vector<T> out(count * length * dv, T(NAN)), state(count * dv * dk, T(NAN));
    const int hrows = 32 * ((dk + 31) / 32);
    const size_t slab = DELTA_ROWS * delta_stride<T>::value;
    const size_t shared = (size_t(hrows) * tile + 2 * DELTA_CMAX * tile + 2 * slab) * sizeof(T);
    run_grid(count, (dv + tile - 1) / tile, DELTA_THREADS, shared, [&] {
        const T* gates[2] = {gated ? eg.data() : nullptr, gated ? el.data() : nullptr};
        const double* sums = gated ? g.data() : nullptr;
        const T* lasts = gated ? last.data() : nullptr;
        if (tile == DELTA_TILE / 2) {
            delta_chunk_carry_narrow<T>(count, length, nc, C, dk, dv, kt.data(), qt.data(), tc.data(),
                                        qk.data(), vt.data(), gates[0], gates[1], sums, lasts, h0t.data(),
                                        out.data(), state.data());
        } else if (tile == 2 * DELTA_TILE) {
            delta_chunk_carry_wide<T>(count, length, nc, C, dk, dv, kt.data(), qt.data(), tc.data(),
                                      qk.data(), vt.data(), gates[0], gates[1], sums, lasts, h0t.data(),
                                      out.data(), state.data());
        } else {
            delta_chunk_carry<T>(count, length, nc, C, dk, dv, kt.data(), qt.data(), tc.data(), qk.data(),
                                 vt.data(), gates[0], gates[1], sums, lasts, h0t.data(), out.data(),
                                 state.data());
        }
    });
    // float64 recurrence: S ← α S (I − β k kᵀ) + β v kᵀ, o = S q
    double worst_out = 0, worst_state = 0;
    for (int s = 0; s < count; ++s) {
        std::vector<double> S(h0.begin() + s * dv * dk, h0.begin() + (s + 1) * dv * dk), o(length * dv);
        double big = 1;
        for (int t = 0; t < length; ++t) {
            const double* kv = &k[(s * L + t) * dk];
            const double* qv = &q[(s * L + t) * dk];
            const double alpha = std::exp(la[s * L + t]), b = beta[s * L + t];
            for (auto& x : S) x *= alpha;
            for (int j = 0; j < dv; ++j) {
                double sk = 0;
                for (int l = 0; l < dk; ++l) sk += S[j * dk + l] * kv[l];
                const double u = b * (v[(s * length + t) * dv + j] - sk);
                double o_j = 0;
                for (int l = 0; l < dk; ++l) {
                    S[j * dk + l] += u * kv[l];
                    o_j += S[j * dk + l] * qv[l];
                }
                o[t * dv + j] = o_j;
                big = std::max(big, std::fabs(o_j));
            }
        }
        double big_s = 1;
        for (auto x : S) big_s = std::max(big_s, std::fabs(x));
        const double bound = 4.0 * (dk + C) * std::numeric_limits<T>::epsilon();
        for (int i = 0; i < length * dv; ++i) {
            const double e = std::fabs(double(out[s * length * dv + i]) - o[i]) / (bound * big);
            worst_out = std::max(worst_out, e == e ? e : 1e300);
        }
        for (int i = 0; i < dv * dk; ++i) {
            const double e = std::fabs(double(state[s * dv * dk + i]) - S[i]) / (bound * big_s);
            worst_state = std::max(worst_state, e == e ? e : 1e300);
        }
    }
    std::printf("carry size=%zu count=%d T=%d C=%d dk=%d dv=%d gated=%d tile=%d out ratio=%.3e\n",
                sizeof(T), count, length, C, dk, dv, gated, tile, worst_out);
    std::printf("carry size=%zu count=%d T=%d C=%d dk=%d dv=%d gated=%d tile=%d state ratio=%.3e\n",
                sizeof(T), count, length, C, dk, dv, gated, tile, worst_state);
}

template <class T> void all_checks() {
    for (int tile : {DELTA_TILE, DELTA_TILE / 2, 2 * DELTA_TILE}) {
        check<T>(2, 150, 64, 40, 40, false, tile, 1);  // partial last chunk, value tiles, two key slabs
        check<T>(1, 150, 64, 40, 3, true, tile, 2);
        check<T>(1, 40, 16, 5, 3, true, tile, 3);      // C < 32: one slab per C×C product
        check<T>(1, 80, 37, 33, 70, false, tile, 4);   // odd C, several value tiles, d_k past one slab
        check<T>(1, 70, 64, 128, 33, true, tile, 5);   // the largest d_k: four slabs, 128 staged rows
    }
}

int main() {
    all_checks<float>();
    all_checks<double>();
}
"""

CHECKS = 2 * 2 * 3 * 5


def test_emulated_carry_matches_float64_recurrence(tmp_path):
    lines = build_and_run(tmp_path, HARNESS, "MODELS_CU", SOURCE, timeout=600)
    assert_within_bounds(lines, CHECKS)

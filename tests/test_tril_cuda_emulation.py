"""tril.cu run on the CPU: every CUDA thread of a block is a host thread, ``__syncthreads`` a barrier.

CI has no GPU; nvcc (test_cuda_sources.py) catches syntax and template errors only. Here the
unmodified kernels are compiled as host C++ and launched block by block with the thread
counts and buffers ``_cupy.py`` uses: ``tril_block_inv`` in its three memory modes (shared,
half shared, global work buffer) for block sizes 1 … 200, ``tril_block_inv_small`` (the
tiled kernel for C ≤ 64: padded sizes 16, 32, 64 and odd C, several key tiles, the UT
transform with q and k one buffer), with and without λ, row/column scales and log-decays,
and ``tril_state_scan`` / ``tril_state_scan_tiled`` with several column tiles and state sizes;
``tril_chunk_solve`` (``tril_solve.cu``, the one-pass float32 solve) with partial chunks and
column tiles, d up to 128, with and without decays; and
float32 UT blocks of raw Gaussian keys (``examples/tril_raw_keys.py``) near and beyond the top of
float32's range: the blocks that fit must come out finite and accurate. Outputs are
poisoned with NaN and compared with a double-precision host computation. The real-GPU tests
(``-m gpu``) remain the final word.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cuda_emulation import PRELUDE, assert_within_bounds, build_and_run

SOURCE = Path(__file__).resolve().parent.parent / "structla" / "tril" / "tril.cu"
SOLVE_SOURCE = SOURCE.with_name("tril_solve.cu")

HARNESS = PRELUDE + r"""
struct float4 { float x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
#include TRIL_CU
#include TRIL_SOLVE_CU

typedef std::complex<double> C;
template <class T> C host(T a) { return C(a); }
template <class T> C host(sl::complex<T> a) { return C(a.re, a.im); }
template <class T> T make(double re, double im) { return T(re); }
template <> sl::complex<float> make(double re, double im) { return sl::complex<float>(re, im); }
template <> sl::complex<double> make(double re, double im) { return sl::complex<double>(re, im); }

template <class F> void launch(unsigned gx, unsigned gy, int threads, size_t shared, F kernel) {
    run_grid(gx, gy, threads, shared, kernel);
}

template <class T> double eps() {
    return std::numeric_limits<typename sl::real_of<T>::type>::epsilon();
}

// Dynamic shared memory of tril_block_inv_small, as _cupy._small_shared_bytes computes it.
template <class T> size_t small_shared(int c, bool same) {
    typedef typename wide_of<T>::type WT;
    const int padded = c <= 16 ? 16 : c <= 32 ? 32 : 64;
    const int stride = small_tile<WT>::stride;
    const size_t tiles = (same ? 1 : 2) * size_t(padded) * stride;
    const size_t matrix = size_t(padded) * padded + size_t(padded / 2) * (padded / 2);
    return 8 * padded + std::max(tiles, matrix) * sizeof(WT);
}

// One configuration of the block inverse in one memory mode (3: tril_block_inv_small, with
// q and k one buffer for the UT transform); prints the error ratio.
template <class T> void check_block_inv(int nb, int c, int d, int mode, bool has_diag, bool ut, bool decay) {
    typedef typename sl::real_of<T>::type R;
    std::mt19937 rng(nb * 131 + c * 7 + d + mode);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> uni(0, 1);
    const bool cplx = sizeof(T) == 2 * sizeof(R);
    std::vector<T> diag(nb * c), scale(nb * c), q(nb * c * d), k(nb * c * d);
    std::vector<R> logd(nb * c);
    for (auto& a : diag) {
        a = make<T>((1 + uni(rng)) * (uni(rng) < 0.5 ? -1 : 1), cplx ? 0.3 * normal(rng) : 0);
    }
    for (auto& a : scale) a = make<T>(2 * uni(rng), 0);
    const double sd = std::sqrt(d);
    for (auto& a : q) a = make<T>(0.5 * normal(rng) / sd, cplx ? 0.5 * normal(rng) / sd : 0);
    for (auto& a : k) a = make<T>(normal(rng) / std::sqrt(d), cplx ? normal(rng) / std::sqrt(d) : 0);
    for (auto& a : logd) a = -uni(rng);
    if (ut) {  // unit keys, q = k: the UT transform
        for (int b = 0; b < nb * c; ++b) {
            double norm = 0;
            for (int r = 0; r < d; ++r) norm += std::norm(host(k[b * d + r]));
            for (int r = 0; r < d; ++r) {
                k[b * d + r] = k[b * d + r] * R(1 / std::sqrt(norm));
                q[b * d + r] = k[b * d + r];
            }
        }
    }
    std::vector<T> out(nb * c * c, make<T>(NAN, NAN)), work(mode == 2 ? nb * c * c : 0, make<T>(NAN, NAN));
    if (mode == 3) {
        const T* qp = ut ? k.data() : q.data();
        launch(nb, 1, 256, small_shared<T>(c, ut), [&] {
            tril_block_inv_small<T>(nb, c, d, has_diag ? diag.data() : nullptr, ut ? scale.data() : nullptr,
                                    qp, k.data(), decay ? logd.data() : nullptr, out.data());
        });
    } else {
        const int threads = c <= 128 ? 128 : 256;
        const size_t cum = ((8 * c + 15) / 16) * 16;
        const size_t shared = cum + (mode == 0 ? 2 : mode == 1 ? 1 : 0) * size_t(c) * c * sizeof(T);
        launch(nb, 1, threads, shared, [&] {
            tril_block_inv<T>(nb, c, d, mode, has_diag ? diag.data() : nullptr, ut ? scale.data() : nullptr,
                              q.data(), k.data(), decay ? logd.data() : nullptr, out.data(),
                              mode == 2 ? work.data() : nullptr);
        });
    }
    double worst = 0;
    for (int b = 0; b < nb; ++b) {
        std::vector<double> cumd(c);
        double s = 0;
        for (int i = 0; i < c; ++i) { s += decay ? double(logd[b * c + i]) : 0.0; cumd[i] = s; }
        std::vector<C> a(c * c, 0.0), y(c * c, 0.0);
        for (int i = 0; i < c; ++i) {
            a[i * c + i] = has_diag ? host(diag[b * c + i]) : C(1);
            for (int j = 0; j < i; ++j) {
                C v = 0;
                for (int r = 0; r < d; ++r) v += host(q[(b * c + i) * d + r]) * host(k[(b * c + j) * d + r]);
                if (ut) v *= host(scale[b * c + i]);
                a[i * c + j] = v * std::exp(cumd[i] - cumd[j]);
            }
        }
        double big = 0;
        for (int j = 0; j < c; ++j) {
            y[j * c + j] = 1.0 / a[j * c + j];
            for (int i = j + 1; i < c; ++i) {
                C v = 0;
                for (int l = j; l < i; ++l) v += a[i * c + l] * y[l * c + j];
                y[i * c + j] = -v / a[i * c + i];
            }
            for (int i = 0; i < c; ++i) {
                if (ut) y[i * c + j] *= host(scale[b * c + j]);
                big = std::max(big, std::abs(y[i * c + j]));
            }
        }
        for (int idx = 0; idx < c * c; ++idx) {
            const double e = std::abs(host(out[b * c * c + idx]) - y[idx])
                             / (64.0 * (c + d) * eps<T>() * big);
            worst = std::max(worst, e == e ? e : 1e300);
        }
    }
    std::printf("block_inv size=%zu nb=%d C=%d d=%d mode=%d diag=%d ut=%d decay=%d ratio=%.3e\n",
                sizeof(T), nb, c, d, mode, has_diag, ut, decay, worst);
}

// UT blocks of raw keys (examples/tril_raw_keys.py: Gaussian K, C = d = 64, β ∈ [0, 2)), float32
// through tril_block_inv_small: exact entries up to ~1e51, so many blocks do not fit in float32.
// Picks blocks near the top of float32's range, some whose unscaled inverse T⁻¹ (before the
// column scale β) is beyond it, plus blocks beyond it, and checks that the blocks that fit come
// out finite and accurate and those that do not hold a non-finite entry.
// The reference: forward substitution in double on the float32 inputs.
void check_raw_keys(int fit_wanted, int unscaled_wanted, int over_wanted) {
    const int c = 64, d = 64;
    const double big = std::numeric_limits<float>::max();
    std::mt19937 rng(2026);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> uni(0, 2);
    std::vector<float> k, beta;
    std::vector<double> ref;
    std::vector<int> kind;  // 0: fits, 1: fits but T⁻¹ does not, 2: does not fit
    int counts[3] = {0, 0, 0};
    const int wanted[3] = {fit_wanted, unscaled_wanted, over_wanted};
    auto missing = [&] { return counts[0] < wanted[0] || counts[1] < wanted[1] || counts[2] < wanted[2]; };
    for (int tries = 0; tries < 4000 && missing(); ++tries) {
        std::vector<float> kb(c * d), bb(c);
        for (auto& a : kb) a = float(normal(rng));
        for (auto& a : bb) a = float(uni(rng));
        std::vector<double> g(c * c, 0.0), y(c * c, 0.0);
        for (int i = 0; i < c; ++i)
            for (int l = 0; l < i; ++l)
                for (int r = 0; r < d; ++r) g[i * c + l] += double(kb[i * d + r]) * double(kb[l * d + r]);
        double peak = 0, unscaled = 0;
        for (int j = 0; j < c; ++j) {
            std::vector<double> u(c, 0.0);  // column j of T⁻¹
            u[j] = 1;
            for (int i = j + 1; i < c; ++i) {
                double s = 0;
                for (int l = j; l < i; ++l) s += g[i * c + l] * u[l];
                u[i] = -double(bb[i]) * s;
            }
            for (int i = 0; i < c; ++i) {
                y[i * c + j] = u[i] * double(bb[j]);
                peak = std::max(peak, std::fabs(y[i * c + j]));
                unscaled = std::max(unscaled, std::fabs(u[i]));
            }
        }
        int kd = peak > 2 * big ? 2 : peak < big / 2 && peak > 1e36 ? (unscaled > big ? 1 : 0) : -1;
        if (kd < 0 || counts[kd] >= wanted[kd]) continue;
        ++counts[kd];
        kind.push_back(kd);
        k.insert(k.end(), kb.begin(), kb.end());
        beta.insert(beta.end(), bb.begin(), bb.end());
        ref.insert(ref.end(), y.begin(), y.end());
    }
    const int nb = int(kind.size());
    std::vector<float> out(size_t(nb) * c * c, NAN);
    launch(nb, 1, 256, small_shared<float>(c, true), [&] {
        tril_block_inv_small<float>(nb, c, d, nullptr, beta.data(), k.data(), k.data(), nullptr, out.data());
    });
    double worst = missing() ? 1e300 : 0;  // too few blocks of some kind found
    int wrong_overflow = 0;
    for (int b = 0; b < nb; ++b) {
        double peak = 0, error = 0;
        bool finite = true;
        for (int idx = 0; idx < c * c; ++idx) {
            const double o = out[size_t(b) * c * c + idx], r = ref[size_t(b) * c * c + idx];
            finite = finite && std::isfinite(o);
            peak = std::max(peak, std::fabs(r));
            error = std::max(error, std::fabs(o - r));
        }
        if (kind[b] == 2) {
            wrong_overflow += finite;
        } else {
            // about the float32 rounding of the answer
            const double e = error / (16 * std::numeric_limits<float>::epsilon() * peak);
            worst = std::max(worst, e == e ? e : 1e300);
        }
    }
    std::printf("raw_keys fits=%d unscaled_beyond=%d beyond=%d ratio=%.3e\n",
                counts[0], counts[1], counts[2], worst);
    std::printf("raw_keys beyond float32 but finite: %d of %d ratio=%d\n",
                wrong_overflow, counts[2], wrong_overflow);
}

// tril_chunk_solve (tril_solve.cu): the one-pass chunked solve in float32 (T_II⁻¹ formed on
// chip) against the row recursion in double.
void check_chunk_solve(int count, int n, int d, int m, bool decay) {
    const int c = FS_CHUNK, nc = (n + c - 1) / c, np = nc * c;
    std::mt19937 rng(count * 7 + n + d * 3 + m + decay);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> uni(0, 1);
    std::vector<float> diag(size_t(count) * np, 1.0f), g(size_t(count) * np, 0.0f);
    std::vector<float> q(size_t(count) * np * d, 0.0f), k(q);
    std::vector<float> b(size_t(count) * n * m), x(size_t(count) * n * m, NAN);
    for (int s = 0; s < count; ++s) {
        for (int i = 0; i < n; ++i) {
            const size_t row = size_t(s) * np + i;
            diag[row] = float((1 + uni(rng)) * (uni(rng) < 0.5 ? -1 : 1));
            g[row] = decay && i > 0 ? float(-0.5 * uni(rng)) : 0.0f;
            for (int r = 0; r < d; ++r) {
                q[row * d + r] = float(0.5 * normal(rng) / std::sqrt(d));
                k[row * d + r] = float(normal(rng) / std::sqrt(d));
            }
        }
    }
    for (auto& v : b) v = float(normal(rng));
    launch(count, (m + FS_TILE - 1) / FS_TILE, FS_THREADS, FS_SHARED_FLOATS * sizeof(float), [&] {
        tril_chunk_solve<float>(count, n, nc, d, m, q.data(), k.data(), decay ? g.data() : nullptr,
                                diag.data(), b.data(), x.data());
    });
    double worst = 0;
    for (int s = 0; s < count; ++s) {
        std::vector<double> cum(n), ref(size_t(n) * m);
        double t = 0;
        for (int i = 0; i < n; ++i) { t += g[size_t(s) * np + i]; cum[i] = t; }
        double big = 0;
        for (int i = 0; i < n; ++i) {
            const size_t ri = size_t(s) * np + i;
            for (int col = 0; col < m; ++col) {
                double v = b[(size_t(s) * n + i) * m + col];
                for (int j = 0; j < i; ++j) {
                    double dot = 0;
                    const size_t rj = size_t(s) * np + j;
                    for (int r = 0; r < d; ++r) dot += double(q[ri * d + r]) * double(k[rj * d + r]);
                    v -= dot * std::exp(cum[i] - cum[j]) * ref[size_t(j) * m + col];
                }
                ref[size_t(i) * m + col] = v / diag[ri];
                big = std::max(big, std::fabs(ref[size_t(i) * m + col]));
            }
        }
        for (size_t idx = 0; idx < ref.size(); ++idx) {
            const double e = std::fabs(x[size_t(s) * n * m + idx] - ref[idx])
                             / (64.0 * (c + d) * eps<float>() * big);
            worst = std::max(worst, e == e ? e : 1e300);
        }
    }
    std::printf("chunk_solve count=%d n=%d d=%d m=%d decay=%d ratio=%.3e\n", count, n, d, m, decay, worst);
}

template <class T> void check_state_scan(int nseq, int nc, int d, int m, bool tiled = false) {
    std::mt19937 rng(nseq + nc * 3 + d * 5 + m);
    std::normal_distribution<double> normal;
    const bool cplx = sizeof(T) == 2 * sizeof(typename sl::real_of<T>::type);
    std::vector<T> M(nseq * nc * d * d), V(nseq * nc * d * m), Z(nseq * nc * d * m, make<T>(NAN, NAN));
    const double sd = std::sqrt(d);
    for (auto& a : M) a = make<T>(0.5 * normal(rng) / sd, cplx ? 0.3 * normal(rng) / sd : 0);
    for (auto& a : V) a = make<T>(normal(rng), cplx ? normal(rng) : 0);
    if (tiled) {
        const size_t shared = size_t(d) * (SCAN_TILE + scan_slab<T>::width + 1) * sizeof(T);
        launch(nseq, (m + SCAN_TILE - 1) / SCAN_TILE, SCAN_THREADS, shared, [&] {
            tril_state_scan_tiled<T>(nseq, nc, d, m, M.data(), V.data(), Z.data());
        });
    } else {
        const int tile = std::min<long>(std::min(32, m), (48 * 1024) / (2 * d * long(sizeof(T))));
        launch(nseq, (m + tile - 1) / tile, 256, 2 * size_t(d) * tile * sizeof(T), [&] {
            tril_state_scan<T>(nseq, nc, d, m, tile, M.data(), V.data(), Z.data());
        });
    }
    double worst = 0;
    for (int s = 0; s < nseq; ++s) {
        std::vector<C> z(d * m, 0.0), zn(d * m);
        for (int I = 0; I < nc; ++I) {
            const long long ch = (long long)s * nc + I;
            double big = 0;
            for (int idx = 0; idx < d * m; ++idx) big = std::max(big, std::abs(z[idx]));
            for (int idx = 0; idx < d * m; ++idx) {
                const double e = std::abs(host(Z[ch * d * m + idx]) - z[idx])
                                 / (64.0 * (d + 1) * (I + 1) * eps<T>() * (big + 1));
                worst = std::max(worst, e == e ? e : 1e300);
            }
            for (int r = 0; r < d; ++r) {
                for (int col = 0; col < m; ++col) {
                    C v = host(V[ch * d * m + r * m + col]);
                    for (int l = 0; l < d; ++l) v += host(M[ch * d * d + r * d + l]) * z[l * m + col];
                    zn[r * m + col] = v;
                }
            }
            z.swap(zn);
        }
    }
    std::printf("state_scan size=%zu nseq=%d nc=%d d=%d m=%d tiled=%d ratio=%.3e\n",
                sizeof(T), nseq, nc, d, m, tiled, worst);
}

template <class T> void all_checks() {
    for (int mode = 0; mode < 3; ++mode) {
        check_block_inv<T>(2, 1, 1, mode, true, false, false);
        check_block_inv<T>(3, 7, 3, mode, true, false, true);
        check_block_inv<T>(2, 64, 8, mode, false, true, true);
        check_block_inv<T>(1, 65, 4, mode, true, false, false);
    }
    check_block_inv<T>(1, 200, 5, 2, false, true, true);  // 256 threads, columns beyond one pass
    check_block_inv<T>(1, 128, 8, 1, false, true, true);  // C = 128 takes the general kernel
    // tril_block_inv_small: padded sizes 16, 32, 64, odd C, d across several tiles and partial
    check_block_inv<T>(2, 16, 32, 3, false, true, true);
    check_block_inv<T>(1, 32, 64, 3, false, true, false);
    check_block_inv<T>(2, 64, 64, 3, false, true, true);
    check_block_inv<T>(1, 64, 45, 3, true, false, true);
    check_block_inv<T>(1, 37, 150, 3, true, false, false);
    check_block_inv<T>(1, 5, 3, 3, true, false, true);
    check_block_inv<T>(1, 1, 1, 3, false, true, false);
    check_state_scan<T>(2, 3, 4, 5);
    check_state_scan<T>(1, 4, 3, 70);  // three column tiles, the last partial
    check_state_scan<T>(2, 1, 1, 1);
    // tril_state_scan_tiled: d up to 128 (rows beyond d masked, slabs partial), m over tiles
    check_state_scan<T>(2, 3, 5, 7, true);
    check_state_scan<T>(1, 3, 40, 70, true);
    check_state_scan<T>(1, 3, 128, 33, true);
    check_state_scan<T>(1, 4, 1, 1, true);
}

int main() {
    check_raw_keys(4, 4, 3);
    check_chunk_solve(2, 150, 8, 4, true);     // last chunk partial, one partial column tile
    check_chunk_solve(1, 192, 128, 132, false);  // d at its largest, a second column tile
    check_chunk_solve(1, 130, 36, 64, true);
    all_checks<float>();
    all_checks<double>();
    all_checks<sl::complex<float>>();
    all_checks<sl::complex<double>>();
}
"""

CHECKS_PER_DTYPE = 28
RAW_KEYS_CHECKS = 2
CHUNK_SOLVE_CHECKS = 3


@pytest.fixture(scope="module")
def emulation_output(tmp_path_factory):
    harness = f'#define TRIL_SOLVE_CU "{SOLVE_SOURCE}"\n' + HARNESS
    return build_and_run(tmp_path_factory.mktemp("tril_cuda_emulation"), harness, "TRIL_CU", SOURCE,
                         timeout=600)


def test_emulated_kernels_match_double_precision(emulation_output):
    assert_within_bounds(emulation_output, 4 * CHECKS_PER_DTYPE + RAW_KEYS_CHECKS + CHUNK_SOLVE_CHECKS)

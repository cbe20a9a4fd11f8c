"""scan.cu's and selective.cu's selective scans run on the CPU: every CUDA thread is a host thread.

CI has no GPU. Compiling with nvcc (test_cuda_sources.py) catches syntax and template errors,
not wrong indexing, chunking, tile staging, carried states or warp scans. Here the unmodified
kernel source is compiled by the host C++ compiler with the CUDA keywords defined as plain
C++: ``__syncthreads`` is a block barrier, ``__shfl_sync``/``__shfl_up_sync``/``__syncwarp``
exchange through a per-warp slot array between per-warp barriers, and the asynchronous
copies and exp2 intrinsic fall back to plain C++. Each block is launched exactly as
``_cupy.py`` launches it (warps per block, shared memory, vector flags) and every output
(poisoned with NaN beforehand, shared memory with NaN bit patterns) is compared with a
double-precision loop, with a bound of 16 rounding errors of the magnitudes involved
(including the exponent's: exp(Δa) is off by |Δa|·eps relative). The real-GPU tests
(``-m gpu``) remain the final word.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cuda_emulation import PRELUDE, assert_within_bounds, build_and_run

FAMILY = Path(__file__).resolve().parent.parent / "structla" / "scan"
SOURCE = FAMILY / "scan.cu"
SEQUENTIAL_SOURCE = FAMILY / "selective.cu"


def _launch_constant(name: str) -> int:
    """A launch constant of _cupy.py (read from the source: importing it needs CuPy)."""
    text = (FAMILY / "_cupy.py").read_text(encoding="utf-8")
    return int(re.search(rf"^{name} = (\d+)", text, re.MULTILINE).group(1))


HARNESS = PRELUDE + r"""
#include SCAN_CU
#include SEQUENTIAL_CU

const int SHARED = SHARED_BYTES_PY;
// _cupy.py's _sequential_shared.
size_t sequential_shared(int warps, int itemsize) { return SEQUENTIAL_SHARED_PY; }

template <class F> void launch(unsigned gx, unsigned gy, int threads, F kernel) {
    run_grid(gx, gy, threads, SHARED, kernel);
}

typedef std::complex<double> Cx;
template <class T> Cx host(T a) { return Cx(a); }
template <class T> Cx host(sl::complex<T> a) { return Cx(a.re, a.im); }
template <class T> T make(double re, double im) { return T(re); }
template <> sl::complex<float> make(double re, double im) { return sl::complex<float>(re, im); }
template <> sl::complex<double> make(double re, double im) { return sl::complex<double>(re, im); }
template <class T> bool is_complex() { return sizeof(T) != sizeof(typename sl::real_of<T>::type); }

// B/C layouts: 0 selective (batch, N, L), 1 grouped (batch, G, N, L), 2 time-invariant (D, N).
struct Layout { long long sb, sg, sn, st; int per; size_t size; };
Layout layout(int kind, int batch, int dim, int groups, int n, long long L) {
    if (kind == 2) return {0, (long long)n, 1, 0, 1, (size_t)dim * n};
    const int g = kind == 1 ? groups : 1;
    return {(long long)g * n * L, (long long)n * L, L, 1, dim / g, (size_t)batch * g * n * L};
}

// _cupy.py's choice: ≤ 8 warps dividing D and every time-varying group size.
int warps_for(int dim, int per_b, bool var_b, int per_c, bool var_c) {
    for (int w : {8, 4, 2})
        if (dim % w == 0 && (!var_b || per_b % w == 0) && (!var_c || per_c % w == 0)) return w;
    return 1;
}

// _cupy.py's _sequential_warps: ≤ 4 warps of CHANNELS channels dividing D and both group sizes (0: none).
int sequential_warps(int dim, int per_b, int per_c) {
    const int channels = SEQUENTIAL_CHANNELS_PY;
    for (int w : {4, 2, 1})
        if (dim % (channels * w) == 0 && per_b % (channels * w) == 0 && per_c % (channels * w) == 0) return w;
    return 0;
}

// kernel 0: selective_scan_chunked (scan.cu), 1: selective_scan_sequential (selective.cu).
template <class T>
void check(const char* name, int batch, int dim, int n, long long L, int b_kind, int c_kind, int groups,
           bool options, bool misaligned, int kernel = 0) {
    typedef typename sl::real_of<T>::type R;
    const bool cplx = is_complex<T>();
    std::mt19937 rng(batch * 1000 + dim * 100 + n * 10 + L);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> uniform(-1, 1.5);
    const size_t rows = (size_t)batch * dim * L;
    // One spare element in front: the misaligned case starts the inputs one element later.
    std::vector<R> u_store(rows + 1), delta_store(rows + 1), z_store(rows + 1), y_store(rows + 1, NAN);
    const int off = misaligned ? 1 : 0;
    R *u = u_store.data() + off, *delta = delta_store.data() + off, *z = z_store.data() + off;
    R* y = y_store.data() + off;
    for (size_t i = 0; i < rows; ++i) {
        u[i] = normal(rng);
        delta[i] = options ? normal(rng) : 0.5 * std::fabs(normal(rng));
        z[i] = normal(rng);
    }
    std::vector<T> A(dim * n), state(batch * dim * n);
    for (auto& a : A) a = make<T>(-std::exp(uniform(rng)), 3 * normal(rng));
    // Without h0 the kernel must not read `state`: it starts as NaN there.
    for (auto& h : state) h = options ? make<T>(normal(rng), normal(rng)) : make<T>(NAN, NAN);
    std::vector<T> h0 = state;
    if (!options) std::fill(h0.begin(), h0.end(), T(0));
    const Layout lb = layout(b_kind, batch, dim, groups, n, L), lc = layout(c_kind, batch, dim, groups, n, L);
    std::vector<T> B(lb.size), C(lc.size);
    for (auto& v : B) v = make<T>(normal(rng), normal(rng));
    for (auto& v : C) v = make<T>(normal(rng), normal(rng));
    std::vector<R> D(dim), bias(dim);
    for (auto& v : D) v = normal(rng);
    for (auto& v : bias) v = normal(rng);
    const bool var_b = lb.st != 0, var_c = lc.st != 0;
    const int warps = warps_for(dim, lb.per, var_b, lc.per, var_c);
    const int vec_io = !misaligned && (L * sizeof(R)) % 16 == 0;
    const int vec_bc = (L * sizeof(T)) % 16 == 0;
    using namespace scan_detail;
    const int flags = (vec_io ? SEL_VEC_IO : 0) | (vec_bc ? SEL_VEC_BC : 0)
                      | (options ? SEL_HAS_D | SEL_HAS_Z | SEL_HAS_BIAS | SEL_SOFTPLUS | SEL_HAS_H0 : 0);
    bool overrun = false;
    int launched = warps;
    if (kernel == 0) {
        launch(dim / warps, batch, 32 * warps, [&] {
            selective_scan_chunked<T>(u, delta, A.data(), B.data(), C.data(), D.data(), z, bias.data(),
                                      state.data(), y, dim, L, n, lb.sb, lb.sg, lb.sn, lb.st, lb.per,
                                      lc.sb, lc.sg, lc.sn, lc.st, lc.per, flags);
        });
        const size_t need = 2 * 2 * scan_detail::SEL_STATES * 32 * scan_detail::Sel<T>::SEG * sizeof(T);
        overrun = need > (size_t)SHARED;
    } else if constexpr (std::is_same_v<T, R>) {
        // Real states, N ≤ 16, time-varying B and C only (the host sends the rest to kernel 0).
        launched = sequential_warps(dim, lb.per, lc.per);
        if (n > seq_detail::MAX_STATES || !var_b || !var_c || launched == 0) {
            std::printf("selective %s: not a sequential case ratio=1e300\n", name);
            return;
        }
        const size_t shared = sequential_shared(launched, sizeof(T));
        run_grid(dim / (SEQUENTIAL_CHANNELS_PY * launched), batch, 32 * launched, shared, [&] {
            selective_scan_sequential<T>(u, delta, A.data(), B.data(), C.data(), D.data(), z, bias.data(),
                                         state.data(), y, dim, L, n, lb.sb, lb.sg, lb.per,
                                         lc.sb, lc.sg, lc.per, flags);
        });
        using seq_detail::Smem;
        overrun = (size_t)(Smem<T>::BC + launched * Smem<T>::WARP) * sizeof(T) > shared;
    }
    const double eps = std::numeric_limits<R>::epsilon();
    const double factor = 16 * eps;
    double worst = 0;
    for (int b = 0; b < batch; ++b) {
        for (int d = 0; d < dim; ++d) {
            std::vector<Cx> h(n), hs(n);
            std::vector<double> habs(n), hexp(n, 0.0);
            for (int k = 0; k < n; ++k) {
                h[k] = host(h0[(b * dim + d) * n + k]);
                habs[k] = std::abs(h[k]);
            }
            for (long long t = 0; t < L; ++t) {
                const size_t i = ((size_t)b * dim + d) * L + t;
                double dt = delta[i] + (options ? bias[d] : 0.0);
                if (options) dt = dt > 20 ? dt : std::log1p(std::exp(dt));
                double out = options ? D[d] * u[i] : 0.0, scale = std::fabs(out);
                for (int k = 0; k < n; ++k) {
                    const Cx a = host(A[d * n + k]);
                    const Cx bb = host(B[b * lb.sb + (d / lb.per) * lb.sg + k * lb.sn + t * lb.st]);
                    const Cx cc = host(C[b * lc.sb + (d / lc.per) * lc.sg + k * lc.sn + t * lc.st]);
                    const Cx decay = std::exp(dt * (cplx ? a : Cx(a.real())));
                    h[k] = decay * h[k] + dt * bb * double(u[i]);
                    // Magnitudes the rounding errors scale with: of the terms, and of the error
                    // of exp(Δa) (relative |Δa|·eps, from the rounded exponent) carried on.
                    hexp[k] = std::abs(decay) * (hexp[k] + habs[k] * std::abs(dt * a));
                    habs[k] = std::abs(decay) * habs[k] + std::abs(dt * bb * double(u[i]));
                    const double m = cplx ? 2.0 : 1.0;
                    out += m * (cplx ? (cc * h[k]).real() : (cc.real() * h[k].real()));
                    scale += m * std::abs(cc) * (habs[k] + hexp[k]);
                }
                if (options) {
                    const double s = z[i] / (1 + std::exp(-double(z[i])));
                    out *= s;
                    scale *= std::fabs(s) + 1e-300;
                }
                const double e = std::fabs(y[i] - out) / (factor * scale + std::numeric_limits<R>::min());
                worst = std::max(worst, e == e ? e : 1e300);
            }
            for (int k = 0; k < n; ++k) {
                const Cx got = host(state[(b * dim + d) * n + k]);
                const double e = std::abs(got - h[k]) / (factor * (habs[k] + hexp[k])
                                                         + std::numeric_limits<R>::min());
                worst = std::max(worst, e == e ? e : 1e300);
            }
        }
    }
    if (overrun) worst = 1e300;  // the kernel would overrun what _cupy.py asks for
    std::printf("selective %s kernel=%d batch=%d D=%d N=%d L=%lld B=%d C=%d options=%d misaligned=%d "
                "warps=%d ratio=%.3e\n", name, kernel, batch, dim, n, L, b_kind, c_kind, (int)options,
                (int)misaligned, launched, worst);
}

int main() {
    typedef sl::complex<float> F;
    typedef sl::complex<double> D;
    // float32: 512 steps per chunk, 4 states per tile: every chunk boundary and a partial tile.
    for (long long L : {1LL, 2LL, 63LL, 64LL, 65LL, 511LL, 512LL, 513LL, 1000LL, 2049LL})
        check<float>("f32", 2, 2, 5, L, 0, 0, 1, true, false);
    check<float>("f32", 1, 2, 16, 2048, 0, 0, 1, false, false);
    check<float>("f32", 1, 8, 3, 700, 0, 0, 1, true, false);      // 8 warps stage the tiles
    check<float>("f32", 2, 4, 5, 600, 1, 1, 2, true, false);      // grouped B and C
    check<float>("f32", 2, 4, 4, 600, 2, 0, 1, true, false);      // time-invariant B
    check<float>("f32", 2, 4, 4, 600, 0, 2, 1, true, false);      // time-invariant C
    check<float>("f32", 1, 3, 2, 300, 1, 2, 3, true, false);      // one channel per group: 1 warp
    check<float>("f32", 1, 2, 6, 1024, 0, 0, 1, true, true);      // unaligned inputs: scalar loads
    check<float>("f32", 1, 2, 1, 1, 2, 2, 1, true, false);
    check<float>("f32", 1, 2, 0, 70, 0, 0, 1, true, false);       // N = 0: y = D·u·silu(z)
    // float64: 256 steps per chunk.
    for (long long L : {1LL, 255LL, 256LL, 257LL, 1000LL})
        check<double>("f64", 1, 2, 5, L, 0, 0, 1, true, false);
    check<double>("f64", 2, 4, 3, 300, 1, 2, 2, false, false);
    // complex models: 256 (complex64) and 128 (complex128) steps per chunk.
    for (long long L : {1LL, 255LL, 256LL, 257LL, 600LL})
        check<F>("c64", 1, 2, 5, L, 0, 0, 1, true, false);
    check<F>("c64", 2, 4, 3, 300, 1, 2, 2, false, true);
    for (long long L : {1LL, 127LL, 128LL, 129LL, 400LL})
        check<D>("c128", 1, 2, 5, L, 0, 0, 1, true, false);
    check<D>("c128", 2, 2, 2, 100, 2, 1, 1, true, false);
    // The sequential kernel, float32: 32 steps per chunk, partial sums added every 16 steps.
    for (long long L : {1LL, 2LL, 15LL, 16LL, 17LL, 31LL, 32LL, 33LL, 64LL, 65LL, 300LL})
        check<float>("f32", 2, 8, 16, L, 0, 0, 1, true, false, 1);
    check<float>("f32", 1, 8, 16, 256, 0, 0, 1, false, false, 1);   // no options: y = Σ C·h only
    check<float>("f32", 1, 8, 5, 100, 0, 0, 1, true, false, 1);     // padding states
    check<float>("f32", 1, 8, 1, 40, 0, 0, 1, false, false, 1);
    check<float>("f32", 1, 64, 16, 70, 0, 0, 1, true, false, 1);    // 4 warps, 2 blocks
    check<float>("f32", 2, 32, 12, 96, 1, 1, 2, true, false, 1);    // grouped B and C: 2 warps per block
    check<float>("f32", 1, 16, 16, 130, 0, 0, 1, true, true, 1);    // unaligned inputs: plain copies
    check<float>("f32", 1, 8, 16, 34, 0, 0, 1, true, false, 1);     // L not whole packs of 16 bytes
    // float64: 16 steps per chunk.
    for (long long L : {1LL, 15LL, 16LL, 17LL, 100LL})
        check<double>("f64", 1, 16, 16, L, 0, 0, 1, true, false, 1);
    check<double>("f64", 2, 8, 7, 50, 1, 1, 1, false, false, 1);
}
"""

# The check<...> calls of main(): chunked f32, f64, c64, c128; sequential f32, f64.
EXPECTED_CHECKS = (10 + 9) + (5 + 1) + (5 + 1) + (5 + 1) + (11 + 7) + (5 + 1)


@pytest.fixture(scope="module")
def emulation_output(tmp_path_factory):
    # _cupy.py: two buffers of the B and C tiles.
    shared = 2 * 2 * _launch_constant("_SELECTIVE_STATES") * 32 * _launch_constant("_SELECTIVE_LANE_BYTES")
    # _cupy.py's _sequential_shared(warps, itemsize) as a C++ expression.
    buffers, states, channels, row, group = (_launch_constant(f"_SEQUENTIAL_{name}") for name in
                                             ("BUFFERS", "STATES", "CHANNELS", "ROW_BYTES", "GROUP"))
    sequential = (f"{buffers * 2 * states * row} + warps * ({buffers * 3 * channels * row} + {channels * row}"
                  f" + 32 * ({group} * itemsize + 16))")
    harness = (HARNESS.replace("SHARED_BYTES_PY", str(shared)).replace("SEQUENTIAL_SHARED_PY", sequential)
               .replace("SEQUENTIAL_CHANNELS_PY", str(channels))
               .replace("SEQUENTIAL_CU", f'"{SEQUENTIAL_SOURCE}"'))
    return build_and_run(tmp_path_factory.mktemp("cuda_emulation"), harness, "SCAN_CU", SOURCE,
                         timeout=300)


def test_emulated_selective_scan_matches_double_precision_loop(emulation_output):
    assert_within_bounds(emulation_output, EXPECTED_CHECKS)

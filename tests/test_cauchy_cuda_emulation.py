"""cauchy.cu run on the CPU: every CUDA thread of a block is a host thread, ``__syncthreads`` a barrier.

CI has no GPU. Compiling the kernels with nvcc (test_cuda_sources.py) catches syntax and
template errors, not wrong indexing, tiling, pole chunking or grid-stride loops. Here the
unmodified kernel source is compiled by the host C++ compiler with the CUDA keywords defined
as plain C++, launched block by block exactly as ``_cupy.py`` launches it, and every output
(poisoned with NaN beforehand) is compared with a double-precision sum, with the same error
bound as tests/test_cauchy.py. The real-GPU tests (``-m gpu``) remain the final word.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cuda_emulation import PRELUDE, assert_within_bounds, build_and_run

FAMILY = Path(__file__).resolve().parent.parent / "structla" / "cauchy"
SOURCE = FAMILY / "cauchy.cu"


def _launch_constant(name: str) -> int:
    """A launch constant of _cupy.py (read from the source: importing it needs CuPy)."""
    text = (FAMILY / "_cupy.py").read_text(encoding="utf-8")
    return int(re.search(rf"^{name} = (\d+)$", text, re.MULTILINE).group(1))

HARNESS = PRELUDE + r"""
#include CAUCHY_CU

typedef std::complex<double> C;
const int THREADS = THREADS_PER_BLOCK, NODES = NODES_PER_THREAD_PY;

// Launch like _cupy.py: grid (ceil(L / tile), min(count, cap)), THREADS threads per block.
template <class F> void launch(int count, int length, int cap, F kernel) {
    run_grid((length + THREADS * NODES - 1) / (THREADS * NODES), std::min(count, cap), THREADS, 0,
             kernel);
}

template <class R> double bound(int terms, double scale) {
    return 4.0 * (terms + 4) * (std::numeric_limits<R>::epsilon() * scale
                                + std::numeric_limits<R>::min());
}

template <class T> C host(T a) { return C(a.re, a.im); }

// extreme = 1: every third node so large that |z - w|^2 (|(z - w)(z - conj w)|^2 with conj pairs)
// leaves the fast reciprocal's range: those nodes must take the kernel's exact fallback and stay
// accurate. extreme = 2: every third node equal to a pole: non-finite there, accurate elsewhere.
// imaginary: every node on the imaginary axis (S4's bilinear nodes; the kernel's hoisted path).
template <class T> void check_cauchy(int count, int n, int length, bool shared, int conj, int cap,
                                     int extreme = 0, bool imaginary = false) {
    typedef typename sl::real_of<T>::type R;
    std::mt19937 rng(count * 7 + n + length);
    std::normal_distribution<double> normal;
    std::vector<T> v(count * n), w(count * n), z((shared ? 1 : count) * length);
    std::vector<T> out(count * length, T(NAN, NAN));
    for (auto& a : v) a = T(normal(rng), normal(rng));
    for (auto& a : w) a = T(normal(rng), normal(rng));
    for (auto& a : z) a = T(2 * normal(rng), 2 * normal(rng));
    // |z|^2 = 1.7e38 (float: above 2^126, where __fdividef gives 0, and below the overflow of
    // the exact path's squares) and 1e200 (double; its conj-pair product overflows).
    const double huge = sizeof(R) == 4 ? 1.3e19 : 1e100;
    for (size_t l = 1; extreme && l < z.size(); l += 3) {
        const double angle = normal(rng);
        if (extreme == 1) z[l] = T(huge * std::cos(angle), huge * std::sin(angle));
        if (extreme == 2 && n > 0) z[l] = w[(l / length) * n + l % n];
    }
    for (auto& a : z) a = imaginary ? T(0, a.im) : a;
    const long long stride = shared ? 0 : length;
    launch(count, length, cap, [&] {
        cauchy_kernel<T>(v.data(), w.data(), z.data(), stride, out.data(), count, n, length, conj);
    });
    double worst = 0;
    for (int r = 0; r < count; ++r) {
        for (int l = 0; l < length; ++l) {
            const C zz = host(z[r * stride + l]);
            C k = 0;
            double scale = 0;
            bool pole = false;
            for (int i = 0; i < n; ++i) {
                const C vv = host(v[r * n + i]), ww = host(w[r * n + i]);
                for (int pair = 0; pair <= conj; ++pair) {
                    const C vp = pair ? std::conj(vv) : vv, wp = pair ? std::conj(ww) : ww;
                    pole = pole || zz == wp;
                    k += vp / (zz - wp);
                    scale += std::abs(vp) * (std::abs(zz) + std::abs(wp)) / std::norm(zz - wp);
                }
            }
            const C got = host(out[r * length + l]);
            if (pole) {  // documented: inf/nan at that node only
                worst = std::max(worst, std::isfinite(got.real()) && std::isfinite(got.imag()) ? 1e300 : 0.0);
                continue;
            }
            const double e = std::abs(got - k) / bound<R>((1 + conj) * n, scale);
            worst = std::max(worst, e == e ? e : 1e300);
        }
    }
    std::printf("cauchy %s count=%d n=%d L=%d shared=%d conj=%d extreme=%d imaginary=%d ratio=%.3e\n",
                sizeof(R) == 4 ? "c64" : "c128", count, n, length, shared, conj, extreme, imaginary,
                worst);
}

template <class T> void check_vandermonde(int count, int n, int length, bool log, int conj, int cap) {
    typedef typename sl::real_of<T>::type R;
    std::mt19937 rng(count * 5 + n + length);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> angle(-3.14, 3.14);
    std::vector<T> v(count * n), step(count * n), out(count * length, T(NAN, NAN));
    std::vector<R> out_real(count * length, NAN);
    std::vector<sl::complex<double>> s(count * n);
    std::vector<C> x(count * n);
    for (int k = 0; k < count * n; ++k) {
        v[k] = T(normal(rng), normal(rng));
        C sk = C(-0.01 * std::abs(normal(rng)), angle(rng));
        if (k % 5 == 3 && !log) sk = C(-INFINITY, 0);  // the node x = 0
        x[k] = log ? sk : (std::isinf(sk.real()) ? C(0) : std::exp(sk));
        s[k] = sl::complex<double>(sk.real(), sk.imag());
        const double m = std::exp(THREADS * sk.real());  // _cupy.py: step = exp(THREADS s)
        step[k] = T(m * std::cos(THREADS * sk.imag()), m * std::sin(THREADS * sk.imag()));
    }
    launch(count, length, cap, [&] {
        vandermonde_kernel<T>(v.data(), s.data(), step.data(), out.data(), out_real.data(),
                              count, n, length, conj);
    });
    double worst = 0;
    for (int r = 0; r < count; ++r) {
        for (int l = 0; l < length; ++l) {
            C k = 0;
            double scale = 0;
            for (int i = 0; i < n; ++i) {
                const C xi = x[r * n + i], term = host(v[r * n + i])
                    * (log ? std::exp(double(l) * xi) : (l == 0 ? C(1) : std::pow(xi, l)));
                const double sigma = log ? std::abs(xi)
                                         : (xi == C(0) ? 0.0 : std::abs(std::log(xi)) + 1);
                k += term;
                scale += std::abs(term) * (1 + l * sigma);
            }
            const double error = conj ? std::abs(out_real[r * length + l] - 2 * k.real())
                                      : std::abs(host(out[r * length + l]) - k);
            const double e = error / bound<R>(n, conj ? 2 * scale : scale);
            worst = std::max(worst, e == e ? e : 1e300);
        }
    }
    std::printf("vandermonde %s count=%d n=%d L=%d log=%d conj=%d ratio=%.3e\n",
                sizeof(R) == 4 ? "c64" : "c128", count, n, length, log, conj, worst);
}

int main() {
    typedef sl::complex<float> F;
    typedef sl::complex<double> D;
    for (int conj = 0; conj < 2; ++conj) {
        check_cauchy<F>(3, 1, 1, false, conj, 65535);
        check_cauchy<F>(3, 3, 7, true, conj, 65535);
        check_cauchy<D>(2, 31, 513, false, conj, 65535);
        check_cauchy<D>(2, 300, 1000, true, conj, 65535);  // two pole chunks
        check_cauchy<F>(5, 2, 3, false, conj, 2);          // grid-stride loop over rows
        check_cauchy<F>(1, 0, 9, false, conj, 65535);      // no poles: zeros
        for (int extreme = 0; extreme <= 2; ++extreme) {
            for (int imaginary = 0; imaginary < 2; ++imaginary) {
                if (extreme == 2 && imaginary) continue;  // poles are off the axis
                check_cauchy<F>(2, 40, 300, false, conj, 65535, extreme, imaginary);
                check_cauchy<D>(2, 300, 700, true, conj, 65535, extreme, imaginary);
            }
        }
    }
    for (int log = 0; log < 2; ++log) {
        for (int conj = 0; conj < 2; ++conj) {
            check_vandermonde<F>(3, 1, 1, log, conj, 65535);
            check_vandermonde<F>(2, 7, 1500, log, conj, 65535);
            check_vandermonde<D>(2, 300, 700, log, conj, 65535);
            check_vandermonde<D>(5, 2, 3, log, conj, 2);
        }
    }
}
"""


@pytest.fixture(scope="module")
def emulation_output(tmp_path_factory):
    harness = (HARNESS.replace("THREADS_PER_BLOCK", str(_launch_constant("THREADS")))
               .replace("NODES_PER_THREAD_PY", str(_launch_constant("NODES_PER_THREAD"))))
    return build_and_run(tmp_path_factory.mktemp("cuda_emulation"), harness, "CAUCHY_CU", SOURCE,
                         timeout=300)


def test_emulated_kernels_match_double_precision_sums(emulation_output):
    assert_within_bounds(emulation_output, 48)

"""hippo.cu run on the CPU: every CUDA thread of a block is a host thread, ``__syncthreads`` a barrier.

CI has no GPU. ``tests/test_cuda_sources.py`` catches syntax and template errors of the fused S4
spectrum kernels; here the unmodified source is compiled by the host C++ compiler with the CUDA
keywords defined as plain C++ (``tests/cuda_emulation.py``), launched block by block exactly as
``structla/hippo/_cupy.py`` launches it, and every spectrum entry (poisoned with NaN beforehand)
is compared with a long-double evaluation of the formula of MATH B2: the Cauchy sums over the
whole system (conjugate modes written out), an elimination for the Woodbury system, the factor
``2/(1+ω)`` and the Nyquist limit. The real-GPU tests (``-m gpu``) remain the final word.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cuda_emulation import PRELUDE, assert_within_bounds, build_and_run

FAMILY = Path(__file__).resolve().parent.parent / "structla" / "hippo"
SOURCE = FAMILY / "hippo.cu"


def _launch_constant(name: str) -> int:
    """A launch constant of _cupy.py (read from the source: importing it needs CuPy)."""
    text = (FAMILY / "_cupy.py").read_text(encoding="utf-8")
    return int(re.search(rf"^{name} = (\d+)$", text, re.MULTILINE).group(1))


HARNESS = PRELUDE + r"""
const long double PI_L = 3.141592653589793238462643383279502884L;
#include HIPPO_CU

typedef std::complex<long double> C;
const int THREADS = THREADS_PER_BLOCK, NODES = NODES_PER_THREAD_PY;

// Launch like _cupy.py: grid (ceil(regular / tile), min(count, cap)), THREADS threads per block,
// `regular` = the nodes less the Nyquist node when it is one of them (written apart).
template <class F> void launch(int count, int nodes, int length, int cap, F kernel) {
    const int regular = nodes - (length % 2 == 0 && length / 2 < nodes ? 1 : 0);
    run_grid((regular + THREADS * NODES - 1) / (THREADS * NODES), std::min(count, cap), THREADS, 0,
             kernel);
}

template <class T> C host(sl::complex<T> a) { return C(a.re, a.im); }

// x with (I + K) x = rhs, r <= 2, by elimination with partial pivoting (long double).
std::vector<C> solve(std::vector<std::vector<C>> K, std::vector<C> rhs) {
    const int r = rhs.size();
    for (int i = 0; i < r; ++i) K[i][i] += 1.0L;
    for (int i = 0; i < r; ++i) {
        int p = i;
        for (int j = i + 1; j < r; ++j) if (std::abs(K[j][i]) > std::abs(K[p][i])) p = j;
        std::swap(K[i], K[p]);
        std::swap(rhs[i], rhs[p]);
        for (int j = i + 1; j < r; ++j) {
            const C f = K[j][i] / K[i][i];
            for (int k = i; k < r; ++k) K[j][k] -= f * K[i][k];
            rhs[j] -= f * rhs[i];
        }
    }
    std::vector<C> x(r);
    for (int i = r - 1; i >= 0; --i) {
        C s = rhs[i];
        for (int k = i + 1; k < r; ++k) s -= K[i][k] * x[k];
        x[i] = s / K[i][i];
    }
    return x;
}

// Spectrum of one channel at node l by MATH B2, the conjugate modes written out.
C spectrum(const std::vector<C>& lam, const std::vector<std::vector<C>>& P, const std::vector<C>& B,
           const std::vector<C>& Ct, long double dt, long long l, int length, bool conj) {
    const int M = lam.size(), r = P.size();
    std::vector<C> Lf, Bf, Cf;
    std::vector<std::vector<C>> Pf(r);
    for (int pass = 0; pass <= (conj ? 1 : 0); ++pass) {
        for (int i = 0; i < M; ++i) {
            Lf.push_back(pass ? std::conj(lam[i]) : lam[i]);
            Bf.push_back(pass ? std::conj(B[i]) : B[i]);
            Cf.push_back(pass ? std::conj(Ct[i]) : Ct[i]);
            for (int s = 0; s < r; ++s) Pf[s].push_back(pass ? std::conj(P[s][i]) : P[s][i]);
        }
    }
    const int n = Lf.size();
    if (2 * l == length) {  // Nyquist: the limit (Δ/2)·C̃ᵀB
        C sum = 0;
        for (int i = 0; i < n; ++i) sum += Cf[i] * Bf[i];
        return dt / 2 * sum;
    }
    const C omega = std::polar(1.0L, -2 * PI_L * l / length);
    const C g = (2.0L / dt) * (1.0L - omega) / (1.0L + omega);
    auto sum = [&](int u, int v) {  // u: 0 -> C̃, s+1 -> conj(P_s); v: 0 -> B, s+1 -> P_s
        C k = 0;
        for (int i = 0; i < n; ++i) {
            const C left = u ? std::conj(Pf[u - 1][i]) : Cf[i], right = v ? Pf[v - 1][i] : Bf[i];
            k += left * right / (g - Lf[i]);
        }
        return k;
    };
    C value = sum(0, 0);
    if (r) {
        std::vector<std::vector<C>> K(r, std::vector<C>(r));
        std::vector<C> rhs(r);
        for (int a = 0; a < r; ++a) {
            rhs[a] = sum(a + 1, 0);
            for (int b = 0; b < r; ++b) K[a][b] = sum(a + 1, b + 1);
        }
        const std::vector<C> x = solve(K, rhs);
        for (int a = 0; a < r; ++a) value -= sum(0, a + 1) * x[a];
    }
    return 2.0L / (1.0L + omega) * value;
}

template <class T> void check(int rank, int count, int M, int length, bool conj, int cap) {
    // As _cupy.generating_kernel: the kernel applies the inverse DFT's 1/L.
    const T inverse_length = T(1) / T(length);
    typedef sl::complex<T> Z;
    std::mt19937 rng(rank * 131 + count * 7 + M * 3 + length + conj);
    std::normal_distribution<double> normal;
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const int nodes = conj ? length / 2 + 1 : length;
    std::vector<Z> lam(count * M), P(count * rank * M), B(count * M), Ct(count * M);
    std::vector<T> dt(count);
    std::vector<Z> out(count * nodes, Z(NAN, NAN));
    // The node table of _cupy.py (_reference.node_tangents): tan(πl/L), cot of the complementary
    // angle past L/4, here in long double; the Nyquist entry is NaN (the kernel must not read it).
    std::vector<T> tangents(nodes);
    for (int l = 0; l < nodes; ++l) {
        const long double k = 4LL * l >= 3LL * length ? l - length : l;
        tangents[l] = T(2 * l == length ? NAN
                        : 4LL * l > length && 4LL * l < 3LL * length
                            ? 1.0L / std::tan(PI_L * (length - 2 * l) / (2.0L * length))
                            : std::tan(PI_L * k / length));
    }
    for (int k = 0; k < count * M; ++k) {
        lam[k] = Z(-0.1 - 0.9 * uniform(rng), 40 * uniform(rng) - (conj ? 0 : 20));
        B[k] = Z(normal(rng), normal(rng));
        Ct[k] = Z(normal(rng), normal(rng));
    }
    for (auto& p : P) p = Z(0.5 * normal(rng), 0.5 * normal(rng));
    for (int c = 0; c < count; ++c) dt[c] = T(std::exp(std::log(1e-3) + uniform(rng) * std::log(300.0)));
    auto run = [&] {
        if (rank == 0) {
            dplr_spectrum_rank0<T>(lam.data(), P.data(), B.data(), Ct.data(), dt.data(),
                                   tangents.data(), out.data(),
                                   count, M, length, nodes, conj, inverse_length);
        } else if (rank == 1) {
            dplr_spectrum_rank1<T>(lam.data(), P.data(), B.data(), Ct.data(), dt.data(),
                                   tangents.data(), out.data(),
                                   count, M, length, nodes, conj, inverse_length);
        } else {
            dplr_spectrum_rank2<T>(lam.data(), P.data(), B.data(), Ct.data(), dt.data(),
                                   tangents.data(), out.data(),
                                   count, M, length, nodes, conj, inverse_length);
        }
    };
    launch(count, nodes, length, cap, run);
    // Error relative to the largest entry of the channel, bounded by a multiple of the terms times
    // the unit roundoff of T (the Woodbury system of random data is well conditioned).
    const double eps = std::numeric_limits<T>::epsilon();
    double worst = 0;
    for (int c = 0; c < count; ++c) {
        std::vector<C> lc(M), bc(M), cc(M);
        std::vector<std::vector<C>> pc(rank, std::vector<C>(M));
        for (int i = 0; i < M; ++i) {
            lc[i] = host(lam[c * M + i]);
            bc[i] = host(B[c * M + i]);
            cc[i] = host(Ct[c * M + i]);
            for (int s = 0; s < rank; ++s) pc[s][i] = host(P[(c * rank + s) * M + i]);
        }
        std::vector<C> expected(nodes);
        long double scale = std::numeric_limits<double>::min();
        for (int l = 0; l < nodes; ++l) {
            expected[l] = (long double)inverse_length * spectrum(lc, pc, bc, cc, dt[c], l, length, conj);
            scale = std::max(scale, std::abs(expected[l]));
        }
        const double bound = 4.0 * (2 * M + 8) * (rank + 1) * eps * double(scale);
        for (int l = 0; l < nodes; ++l) {
            const double e = double(std::abs(host(out[c * nodes + l]) - expected[l])) / bound;
            worst = std::max(worst, e == e ? e : 1e300);
        }
    }
    std::printf("dplr %s rank=%d count=%d M=%d L=%d conj=%d cap=%d ratio=%.3e\n",
                sizeof(T) == 4 ? "f32" : "f64", rank, count, M, length, conj, cap, worst);
}

int main() {
    for (int conj = 0; conj < 2; ++conj) {
        check<float>(1, 3, 5, 16, conj, 65535);      // Nyquist node, one tile
        check<double>(1, 2, 70, 1100, conj, 65535);  // two pole chunks, several tiles
        check<float>(1, 2, 33, 1023, conj, 65535);   // odd L: no Nyquist node
        check<float>(1, 2, 33, 1024, conj, 65535);   // regular nodes fill whole tiles
        check<double>(0, 2, 7, 40, conj, 65535);
        check<float>(2, 2, 9, 64, conj, 65535);
        check<double>(2, 3, 65, 20, conj, 65535);
        check<float>(1, 5, 4, 12, conj, 2);          // grid-stride loop over channels
        check<double>(1, 1, 0, 9, conj, 65535);      // no poles: zeros
    }
}
"""


@pytest.fixture(scope="module")
def emulation_output(tmp_path_factory):
    harness = (HARNESS.replace("THREADS_PER_BLOCK", str(_launch_constant("THREADS")))
               .replace("NODES_PER_THREAD_PY", str(_launch_constant("NODES_PER_THREAD"))))
    return build_and_run(tmp_path_factory.mktemp("cuda_emulation"), harness, "HIPPO_CU", SOURCE,
                         timeout=300)


def test_emulated_spectrum_matches_long_double_formula(emulation_output):
    assert_within_bounds(emulation_output, 18)

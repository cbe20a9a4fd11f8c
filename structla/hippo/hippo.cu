// The S4 (DPLR) spectrum on the GPU in one pass (MATH.md B2): Cauchy sums, Woodbury, bilinear factor.
//
// For channel `row` and frequency node l (ω_l = e^{-2πil/L}, τ_l = tan(πl/L), g_l = i·t_l with
// t_l = 2τ_l/Δ) the kernel writes
//     out[row, l] = (1 + iτ_l) · [k00 − k01 (I + k11)⁻¹ k10],   k_uv = Σ_i u_i v_i / (g_l − λ_i),
// u ∈ (C̃, P̄_0, ...), v ∈ (B, P_0, ...), i.e. the (r+1)² Cauchy sums sharing the denominator g − λ_i,
// and the Nyquist node (2l = L, g = ∞) by its limit (Δ/2)·C̃ᵀB. The caller applies one (i)rfft.
//
// With conj_pairs the stored modes stand for (λ, λ̄) pairs and a pair contributes
//     a/(g − λ) + ā/(g − λ̄) = (2Re(a)·g − 2Re(aλ̄)) / ((g − λ)(g − λ̄)),
// one reciprocal for two poles. The denominator grows like t²; it is scaled by σ² = 1/max(1, |t|)²
// so that |den|² never overflows in float.
//
// Layout as cauchy.cu: one block handles one channel and a tile of NODES_PER_THREAD * blockDim.x
// nodes; thread t owns nodes tile_start + t + q * blockDim.x (coalesced stores). The poles and the
// real numerator coefficients (c1, c2) are computed once per block into shared memory in chunks
// of POLE_CHUNK; every thread streams over them keeping its 2·(r+1)² partial sums per node in
// registers. Channels beyond gridDim.y are covered by a grid-stride loop. Rank ≤ MAX_RANK.
//
// structla-dtypes: float32 float64
#include <structla/complex.cuh>

namespace structla_hippo {
constexpr int NODES_PER_THREAD = 4;  // = NODES_PER_THREAD in _cupy.py
constexpr int POLE_CHUNK = 64;
constexpr int MAX_RANK = 2;          // = MAX_RANK in _cupy.py

__device__ inline float reciprocal(float x) { return __frcp_rn(x); }
__device__ inline double reciprocal(double x) { return 1.0 / x; }
__device__ inline void sin_cos_pi(float x, float* s, float* c) { sincospif(x, s, c); }
__device__ inline void sin_cos_pi(double x, double* s, double* c) { sincospi(x, s, c); }

// tan(πl/L) to a few ulps for every l: near l = L/2 the rounding of l/L would be amplified by the
// pole of tan, so there cot(π(L − 2l)/(2L)) is used, whose argument is small and exact to one
// rounding. Not called for the Nyquist node.
template <typename T>
__device__ inline T node_tangent(long long l, int length) {
    T s, c;
    if (4 * l <= length || 4 * l >= 3LL * length) {
        const long long k = 4 * l <= length ? l : l - length;
        sin_cos_pi(T(k) / T(length), &s, &c);
        return s / c;
    }
    sin_cos_pi(T(length - 2 * l) / T(2LL * length), &s, &c);
    return c / s;
}

template <typename T, int RANK>
__device__ void dplr_spectrum_rank(const sl::complex<T>* __restrict__ Lambda,
                                   const sl::complex<T>* __restrict__ P,
                                   const sl::complex<T>* __restrict__ B,
                                   const sl::complex<T>* __restrict__ Ct, const T* __restrict__ dt,
                                   sl::complex<T>* __restrict__ out, int count, int M, int length,
                                   int nodes, int conj_pairs, T* sh_re, T* sh_im, T* sh_c) {
    typedef sl::complex<T> C;
    constexpr int S = (RANK + 1) * (RANK + 1);
    const long long first = (long long)blockIdx.x * blockDim.x * NODES_PER_THREAD + threadIdx.x;
    for (int row = blockIdx.y; row < count; row += gridDim.y) {
        const T step = dt[row];
        T tau[NODES_PER_THREAD], t[NODES_PER_THREAD], sigma[NODES_PER_THREAD];
        T ar[NODES_PER_THREAD][S], ai[NODES_PER_THREAD][S];
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long l = first + (long long)q * blockDim.x;
            const bool regular = l < nodes && 2 * l != length;
            tau[q] = regular ? node_tangent<T>(l, length) : T(0);
            t[q] = T(2) * tau[q] / step;
            const T magnitude = t[q] < T(0) ? -t[q] : t[q];
            sigma[q] = T(1) / (magnitude > T(1) ? magnitude : T(1));
#pragma unroll
            for (int k = 0; k < S; ++k) {
                ar[q][k] = 0;
                ai[q][k] = 0;
            }
        }
        for (int c0 = 0; c0 < M; c0 += POLE_CHUNK) {
            const int m = min(POLE_CHUNK, M - c0);
            __syncthreads();  // the previous chunk (or channel) is no longer read
            for (int i = threadIdx.x; i < m; i += blockDim.x) {
                const long long at = (long long)row * M + c0 + i;
                const C lam = Lambda[at];
                C left[RANK + 1], right[RANK + 1];
                left[0] = Ct[at];
                right[0] = B[at];
#pragma unroll
                for (int r = 0; r < RANK; ++r) {
                    const C p = P[((long long)row * RANK + r) * M + c0 + i];
                    left[r + 1] = sl::conj(p);
                    right[r + 1] = p;
                }
#pragma unroll
                for (int u = 0; u <= RANK; ++u) {
#pragma unroll
                    for (int v = 0; v <= RANK; ++v) {
                        const C a = left[u] * right[v];
                        const int k = u * (RANK + 1) + v;
                        // conj_pairs: numerator 2Re(a)·g − 2Re(aλ̄); else a = c1 + i·c2.
                        sh_c[k * POLE_CHUNK + i] = conj_pairs ? T(2) * (a.re * lam.re + a.im * lam.im) : a.re;
                        sh_c[(S + k) * POLE_CHUNK + i] = conj_pairs ? T(2) * a.re : a.im;
                    }
                }
                sh_re[i] = lam.re;
                sh_im[i] = lam.im;
            }
            __syncthreads();
#pragma unroll 1
            for (int i = 0; i < m; ++i) {
                const T lr = sh_re[i], li = sh_im[i];
#pragma unroll
                for (int q = 0; q < NODES_PER_THREAD; ++q) {
                    // Each sum gains c1·x1 + c2·x2 (real part) and c1·y1 + c2·y2 (imaginary part).
                    T x1, x2, y1, y2;
                    if (conj_pairs) {
                        // σ²·(g − λ)(g − λ̄) = dr − i·di;  term = (−c1 + i·t·c2)/((g − λ)(g − λ̄)).
                        const T s = sigma[q], ts = t[q] * s;
                        const T d1 = fma(-li, s, ts), d2 = fma(li, s, ts), rs = lr * s;
                        const T dr = fma(rs, rs, -d1 * d2);
                        const T di = T(2) * lr * (ts * s);
                        const T w = reciprocal(fma(dr, dr, di * di));  // σ² applied at the end
                        const T er = dr * w, ei = di * w;
                        x1 = -er;
                        x2 = -t[q] * ei;
                        y1 = -ei;
                        y2 = t[q] * er;
                    } else {
                        // 1/(g − λ) = (dr − i·di)/(dr² + di²) with g − λ = dr + i·di.
                        const T dr = -lr, di = t[q] - li;
                        const T w = reciprocal(fma(dr, dr, di * di));
                        const T er = dr * w, ei = -di * w;
                        x1 = er;
                        x2 = -ei;
                        y1 = ei;
                        y2 = er;
                    }
#pragma unroll
                    for (int k = 0; k < S; ++k) {
                        const T c1 = sh_c[k * POLE_CHUNK + i], c2 = sh_c[(S + k) * POLE_CHUNK + i];
                        ar[q][k] = fma(c1, x1, fma(c2, x2, ar[q][k]));
                        ai[q][k] = fma(c1, y1, fma(c2, y2, ai[q][k]));
                    }
                }
            }
        }
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long l = first + (long long)q * blockDim.x;
            if (l >= nodes) continue;
            C value;
            if (2 * l == length) {
                // Nyquist node: the limit (Δ/2)·C̃ᵀB over the whole system.
                C sum(0);
                for (int i = 0; i < M; ++i) {
                    const C a = Ct[(long long)row * M + i] * B[(long long)row * M + i];
                    sum += conj_pairs ? C(T(2) * a.re) : a;
                }
                value = sum * (step / T(2));
            } else {
                const T scale = conj_pairs ? sigma[q] * sigma[q] : T(1);
                C k[S];
#pragma unroll
                for (int j = 0; j < S; ++j) k[j] = C(ar[q][j] * scale, ai[q][j] * scale);
                C resolvent;
                if (RANK == 0) {
                    resolvent = k[0];
                } else if (RANK == 1) {
                    resolvent = k[0] - k[1] * k[2] / (C(1) + k[3]);
                } else {
                    // (I + k11) x = k10 by Cramer's rule; sums k = u·3 + v.
                    const C m00 = C(1) + k[4], m01 = k[5], m10 = k[7], m11 = C(1) + k[8];
                    const C det = m00 * m11 - m01 * m10;
                    const C x0 = (m11 * k[3] - m01 * k[6]) / det;
                    const C x1 = (m00 * k[6] - m10 * k[3]) / det;
                    resolvent = k[0] - k[1] * x0 - k[2] * x1;
                }
                value = C(T(1), tau[q]) * resolvent;
            }
            out[(long long)row * nodes + l] = value;
        }
    }
}
}  // namespace structla_hippo

// out (count, nodes): the spectrum K̂(ω_l), l < nodes (L/2 + 1 for an irfft, L for an ifft).
// Lambda, B, Ct: (count, M); P: (count, rank, M); dt: (count,); all contiguous. One kernel per
// rank r ≤ MAX_RANK, so that each gets only the registers its (r+1)² sums need.
template <typename T>
__global__ void dplr_spectrum_rank0(const sl::complex<T>* __restrict__ Lambda,
                                    const sl::complex<T>* __restrict__ P,
                                    const sl::complex<T>* __restrict__ B,
                                    const sl::complex<T>* __restrict__ Ct,
                                    const T* __restrict__ dt, sl::complex<T>* __restrict__ out,
                                    int count, int M, int length, int nodes, int conj_pairs) {
    using namespace structla_hippo;
    constexpr int S = 1;
    __shared__ T sh_re[POLE_CHUNK], sh_im[POLE_CHUNK], sh_c[2 * S * POLE_CHUNK];
    dplr_spectrum_rank<T, 0>(Lambda, P, B, Ct, dt, out, count, M, length, nodes, conj_pairs,
                              sh_re, sh_im, sh_c);
}

template <typename T>
__global__ void dplr_spectrum_rank1(const sl::complex<T>* __restrict__ Lambda,
                                    const sl::complex<T>* __restrict__ P,
                                    const sl::complex<T>* __restrict__ B,
                                    const sl::complex<T>* __restrict__ Ct,
                                    const T* __restrict__ dt, sl::complex<T>* __restrict__ out,
                                    int count, int M, int length, int nodes, int conj_pairs) {
    using namespace structla_hippo;
    constexpr int S = 4;
    __shared__ T sh_re[POLE_CHUNK], sh_im[POLE_CHUNK], sh_c[2 * S * POLE_CHUNK];
    dplr_spectrum_rank<T, 1>(Lambda, P, B, Ct, dt, out, count, M, length, nodes, conj_pairs,
                              sh_re, sh_im, sh_c);
}

template <typename T>
__global__ void dplr_spectrum_rank2(const sl::complex<T>* __restrict__ Lambda,
                                    const sl::complex<T>* __restrict__ P,
                                    const sl::complex<T>* __restrict__ B,
                                    const sl::complex<T>* __restrict__ Ct,
                                    const T* __restrict__ dt, sl::complex<T>* __restrict__ out,
                                    int count, int M, int length, int nodes, int conj_pairs) {
    using namespace structla_hippo;
    constexpr int S = 9;
    __shared__ T sh_re[POLE_CHUNK], sh_im[POLE_CHUNK], sh_c[2 * S * POLE_CHUNK];
    dplr_spectrum_rank<T, 2>(Lambda, P, B, Ct, dt, out, count, M, length, nodes, conj_pairs,
                              sh_re, sh_im, sh_c);
}

// The S4 (DPLR) spectrum on the GPU in one pass (MATH.md B2): Cauchy sums, Woodbury, bilinear factor.
//
// For channel `row` and frequency node l (ω_l = e^{-2πil/L}, τ_l = tan(πl/L), g_l = i·t_l with
// t_l = 2τ_l/Δ) the kernel writes
//     out[row, l] = scale · (1 + iτ_l) · [k00 − k01 (I + k11)⁻¹ k10],   k_uv = Σ_i u_i v_i / (g_l − λ_i),
// u ∈ (C̃, P̄_0, ...), v ∈ (B, P_0, ...), i.e. the (r+1)² Cauchy sums sharing the denominator g − λ_i,
// and the Nyquist node (2l = L, g = ∞) by its limit scale·(Δ/2)·C̃ᵀB. The caller applies one
// unnormalised inverse (r)FFT and passes scale = 1/L, so no separate scaling pass is needed.
//
// Per pole λ = λr + iλi and node, with d1 = t − λi, d2 = t + λi:
//   |g − λ|² = λr² + d1²,  |g − λ̄|² = λr² + d2²,  (g − λ)(g − λ̄) = λr² − d1·d2 − 2iλr·t.
// Without conj_pairs a pole contributes a/(g − λ) = a·(−λr − i·d1)/|g − λ|². With conj_pairs the
// stored modes stand for (λ, λ̄) pairs and a pair contributes
//     a/(g − λ) + ā/(g − λ̄) = (2Re(a)·g − 2Re(aλ̄)) / ((g − λ)(g − λ̄)),
// whose inverse denominator is (λr² − d1·d2 + 2iλr·t)/(|g − λ|²·|g − λ̄|²): in float two
// approximate reciprocals (one SFU instruction each, applied one after the other so that the
// product never under- or overflows: |g − λ| up to 2^63), in double one division. With the pole's
// weight w (1/(g − λ), or the inverse pair denominator) each real coefficient c of a sum gathers
// Σ c·w (two FMAs per pole); a sum is c1 + i·c2 with (c1, c2) = (Re a, Im a), or −c1 + i·t·c2 with
// (c1, c2) = (2Re(aλ̄), 2Re(a)) for pairs, formed once per node at the end.
//
// Layout as cauchy.cu: one block handles one channel and a tile of NODES_PER_THREAD * blockDim.x
// regular nodes (the Nyquist node is not one of them: thread 0 of the first tile writes it), so
// the tiles divide the L/2 regular nodes of an rfft of power-of-two length exactly; thread t owns
// nodes tile_start + t + q * blockDim.x (coalesced stores). The poles (λr, λi, λr², 2λr) and the
// coefficients are computed once per block into shared memory in chunks of POLE_CHUNK, each
// pole's values contiguous (vector loads); every thread streams over them keeping its 4·(r+1)²
// real partial sums (2 per coefficient) per node in registers. Channels beyond gridDim.y are
// covered by a grid-stride loop. Rank ≤ MAX_RANK.
//
// structla-dtypes: float32 float64
#include <structla/complex.cuh>

namespace structla_hippo {
constexpr int NODES_PER_THREAD = 4;  // = NODES_PER_THREAD in _cupy.py
constexpr int THREADS = 128;         // = THREADS in _cupy.py (launch bounds)
constexpr int POLE_CHUNK = 64;
constexpr int MAX_RANK = 2;          // = MAX_RANK in _cupy.py

// 1/p for p > 0: in float the SFU's reciprocal (about one ulp, one instruction, subnormals
// flushed: p below 2^-126 means a node on a pole); the host emulation divides.
__device__ inline float inverse(float p) {
#ifdef __CUDA_ARCH__
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(p));
    return r;
#else
    return 1.0f / p;
#endif
}
__device__ inline double inverse(double p) { return 1.0 / p; }
// 1/(p·q) for p, q > 0 as two factors (a, b), to be applied as (x·a)·b.
__device__ inline void inverse_product(float p, float q, float* a, float* b) {
    *a = inverse(p);
    *b = inverse(q);
}
__device__ inline void inverse_product(double p, double q, double* a, double* b) {
    *a = 1.0 / (p * q);
    *b = 1.0;
}
// 1/z = z̄/|z|² with one correctly rounded division: the Woodbury denominators 1 + k11 are of
// moderate size (no need for Smith's scaling, which costs three divisions).
template <typename T>
__device__ inline sl::complex<T> reciprocal(sl::complex<T> z) {
    const T w = T(1) / (z.re * z.re + z.im * z.im);
    return sl::complex<T>(z.re * w, -z.im * w);
}
template <typename T, int RANK>
__device__ void dplr_spectrum_rank(const sl::complex<T>* __restrict__ Lambda,
                                   const sl::complex<T>* __restrict__ P,
                                   const sl::complex<T>* __restrict__ B,
                                   const sl::complex<T>* __restrict__ Ct, const T* __restrict__ dt,
                                   const T* __restrict__ tangents,
                                   sl::complex<T>* __restrict__ out, int count, int M, int length,
                                   int nodes, int conj_pairs, T scale, T* sh_pole, T* sh_c) {
    typedef sl::complex<T> C;
    constexpr int S = (RANK + 1) * (RANK + 1);
    // Even L with the Nyquist node among the outputs: regular node j is node j, or j + 1 past L/2.
    const bool nyquist = length % 2 == 0 && length / 2 < nodes;
    const long long regular = nodes - (nyquist ? 1 : 0);
    const long long first = (long long)blockIdx.x * blockDim.x * NODES_PER_THREAD + threadIdx.x;
    for (int row = blockIdx.y; row < count; row += gridDim.y) {
        const T step = dt[row];
        T tau[NODES_PER_THREAD], t[NODES_PER_THREAD];
        // Per node and coefficient j: Σ c_j·w over the poles, w the pole's weight er + i·ei.
        T xr[NODES_PER_THREAD][2 * S], xi[NODES_PER_THREAD][2 * S];
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long j = first + (long long)q * blockDim.x;
            const long long l = j + (nyquist && 2 * j >= length ? 1 : 0);
            tau[q] = j < regular ? tangents[l] : T(0);
            t[q] = T(2) * tau[q] / step;
#pragma unroll
            for (int k = 0; k < 2 * S; ++k) {
                xr[q][k] = 0;
                xi[q][k] = 0;
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
                        sh_c[i * 2 * S + 2 * k] = conj_pairs ? T(2) * (a.re * lam.re + a.im * lam.im) : a.re;
                        sh_c[i * 2 * S + 2 * k + 1] = conj_pairs ? T(2) * a.re : a.im;
                    }
                }
                sh_pole[4 * i] = lam.re;
                sh_pole[4 * i + 1] = lam.im;
                sh_pole[4 * i + 2] = lam.re * lam.re;
                sh_pole[4 * i + 3] = T(2) * lam.re;
            }
            __syncthreads();
            if (conj_pairs) {
#pragma unroll 2
                for (int i = 0; i < m; ++i) {
                    const T li = sh_pole[4 * i + 1], lr2 = sh_pole[4 * i + 2];
                    const T lr_twice = sh_pole[4 * i + 3];
                    T c[2 * S];
#pragma unroll
                    for (int k = 0; k < 2 * S; ++k) c[k] = sh_c[i * 2 * S + k];
#pragma unroll
                    for (int q = 0; q < NODES_PER_THREAD; ++q) {
                        // w = 1/((g − λ)(g − λ̄)) = (λr² − d1·d2 + 2iλr·t)/(|g − λ|²·|g − λ̄|²).
                        const T d1 = t[q] - li, d2 = t[q] + li;
                        T a, b;
                        inverse_product(fma(d1, d1, lr2), fma(d2, d2, lr2), &a, &b);
                        const T er = (fma(-d1, d2, lr2) * a) * b;
                        const T ei = ((lr_twice * t[q]) * a) * b;
#pragma unroll
                        for (int k = 0; k < 2 * S; ++k) {
                            xr[q][k] = fma(c[k], er, xr[q][k]);
                            xi[q][k] = fma(c[k], ei, xi[q][k]);
                        }
                    }
                }
            } else {
#pragma unroll 2
                for (int i = 0; i < m; ++i) {
                    const T lr = sh_pole[4 * i], li = sh_pole[4 * i + 1];
                    const T lr2 = sh_pole[4 * i + 2];
                    T c[2 * S];
#pragma unroll
                    for (int k = 0; k < 2 * S; ++k) c[k] = sh_c[i * 2 * S + k];
#pragma unroll
                    for (int q = 0; q < NODES_PER_THREAD; ++q) {
                        // w = 1/(g − λ) = (−λr − i·d1)/(λr² + d1²).
                        const T d1 = t[q] - li;
                        const T v = inverse(fma(d1, d1, lr2));
                        const T er = -lr * v, ei = -d1 * v;
#pragma unroll
                        for (int k = 0; k < 2 * S; ++k) {
                            xr[q][k] = fma(c[k], er, xr[q][k]);
                            xi[q][k] = fma(c[k], ei, xi[q][k]);
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long j = first + (long long)q * blockDim.x;
            if (j >= regular) continue;
            const long long l = j + (nyquist && 2 * j >= length ? 1 : 0);
            // Sum s from its two coefficient sums: c1 + i·c2 (single poles) or −c1 + i·t·c2 (pairs).
            const T imag_factor = conj_pairs ? t[q] : T(1), real_sign = conj_pairs ? T(-1) : T(1);
            C k[S];
#pragma unroll
            for (int s = 0; s < S; ++s) {
                k[s] = C(fma(real_sign, xr[q][2 * s], -imag_factor * xi[q][2 * s + 1]),
                         fma(real_sign, xi[q][2 * s], imag_factor * xr[q][2 * s + 1]));
            }
            C resolvent;
            if (RANK == 0) {
                resolvent = k[0];
            } else if (RANK == 1) {
                resolvent = k[0] - k[1] * k[2] * reciprocal(C(1) + k[3]);
            } else {
                // (I + k11) x = k10 by Cramer's rule; sums k = u·3 + v.
                const C m00 = C(1) + k[4], m01 = k[5], m10 = k[7], m11 = C(1) + k[8];
                const C inverse_det = reciprocal(m00 * m11 - m01 * m10);
                const C x0 = (m11 * k[3] - m01 * k[6]) * inverse_det;
                const C x1 = (m00 * k[6] - m10 * k[3]) * inverse_det;
                resolvent = k[0] - k[1] * x0 - k[2] * x1;
            }
            out[(long long)row * nodes + l] = C(scale, scale * tau[q]) * resolvent;
        }
        if (nyquist && blockIdx.x == 0 && threadIdx.x == 0) {
            // Nyquist node: the limit (Δ/2)·C̃ᵀB over the whole system.
            C sum(0);
            for (int i = 0; i < M; ++i) {
                const C a = Ct[(long long)row * M + i] * B[(long long)row * M + i];
                sum += conj_pairs ? C(T(2) * a.re) : a;
            }
            out[(long long)row * nodes + length / 2] = sum * (scale * step / T(2));
        }
    }
}
}  // namespace structla_hippo

// out (count, nodes): scale·K̂(ω_l), l < nodes (L/2 + 1 for an irfft, L for an ifft).
// Lambda, B, Ct: (count, M); P: (count, rank, M); dt: (count,); tangents: (nodes,) τ_l = tan(πl/L)
// (computed once per length on the host in float64, accurate to a few ulps up to the Nyquist
// node: cot of the complementary angle past L/4; the Nyquist entry is not read); all contiguous. Grid: x covers
// the regular nodes (nodes minus the Nyquist node when it is one of them) in tiles of
// NODES_PER_THREAD·blockDim.x, y the channels. One kernel per rank r ≤ MAX_RANK, so that each
// gets only the registers its (r+1)² sums need. Launch bounds on these declarations (the
// definitions below keep the form the loader looks for).
template <class T>
__global__ void __launch_bounds__(structla_hippo::THREADS) dplr_spectrum_rank0(
    const sl::complex<T>* __restrict__, const sl::complex<T>* __restrict__,
    const sl::complex<T>* __restrict__, const sl::complex<T>* __restrict__, const T* __restrict__,
    const T* __restrict__, sl::complex<T>* __restrict__, int, int, int, int, int, T);
template <class T>
__global__ void __launch_bounds__(structla_hippo::THREADS) dplr_spectrum_rank1(
    const sl::complex<T>* __restrict__, const sl::complex<T>* __restrict__,
    const sl::complex<T>* __restrict__, const sl::complex<T>* __restrict__, const T* __restrict__,
    const T* __restrict__, sl::complex<T>* __restrict__, int, int, int, int, int, T);
template <class T>
__global__ void __launch_bounds__(structla_hippo::THREADS) dplr_spectrum_rank2(
    const sl::complex<T>* __restrict__, const sl::complex<T>* __restrict__,
    const sl::complex<T>* __restrict__, const sl::complex<T>* __restrict__, const T* __restrict__,
    const T* __restrict__, sl::complex<T>* __restrict__, int, int, int, int, int, T);

template <typename T>
__global__ void dplr_spectrum_rank0(const sl::complex<T>* __restrict__ Lambda,
                                    const sl::complex<T>* __restrict__ P,
                                    const sl::complex<T>* __restrict__ B,
                                    const sl::complex<T>* __restrict__ Ct,
                                    const T* __restrict__ dt, const T* __restrict__ tangents,
                                    sl::complex<T>* __restrict__ out,
                                    int count, int M, int length, int nodes, int conj_pairs,
                                    T scale) {
    using namespace structla_hippo;
    constexpr int S = 1;
    __shared__ __align__(16) T sh_pole[4 * POLE_CHUNK];
    __shared__ __align__(16) T sh_c[2 * S * POLE_CHUNK];
    dplr_spectrum_rank<T, 0>(Lambda, P, B, Ct, dt, tangents, out, count, M, length, nodes, conj_pairs, scale,
                              sh_pole, sh_c);
}

template <typename T>
__global__ void dplr_spectrum_rank1(const sl::complex<T>* __restrict__ Lambda,
                                    const sl::complex<T>* __restrict__ P,
                                    const sl::complex<T>* __restrict__ B,
                                    const sl::complex<T>* __restrict__ Ct,
                                    const T* __restrict__ dt, const T* __restrict__ tangents,
                                    sl::complex<T>* __restrict__ out,
                                    int count, int M, int length, int nodes, int conj_pairs,
                                    T scale) {
    using namespace structla_hippo;
    constexpr int S = 4;
    __shared__ __align__(16) T sh_pole[4 * POLE_CHUNK];
    __shared__ __align__(16) T sh_c[2 * S * POLE_CHUNK];
    dplr_spectrum_rank<T, 1>(Lambda, P, B, Ct, dt, tangents, out, count, M, length, nodes, conj_pairs, scale,
                              sh_pole, sh_c);
}

template <typename T>
__global__ void dplr_spectrum_rank2(const sl::complex<T>* __restrict__ Lambda,
                                    const sl::complex<T>* __restrict__ P,
                                    const sl::complex<T>* __restrict__ B,
                                    const sl::complex<T>* __restrict__ Ct,
                                    const T* __restrict__ dt, const T* __restrict__ tangents,
                                    sl::complex<T>* __restrict__ out,
                                    int count, int M, int length, int nodes, int conj_pairs,
                                    T scale) {
    using namespace structla_hippo;
    constexpr int S = 9;
    __shared__ __align__(16) T sh_pole[4 * POLE_CHUNK];
    __shared__ __align__(16) T sh_c[2 * S * POLE_CHUNK];
    dplr_spectrum_rank<T, 2>(Lambda, P, B, Ct, dt, tangents, out, count, M, length, nodes, conj_pairs, scale,
                              sh_pole, sh_c);
}

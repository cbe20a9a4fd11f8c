// Cauchy and Vandermonde sums on the GPU (MATH.md B1, B3).
//
// One block handles one batch row and a tile of NODES_PER_THREAD * blockDim.x nodes; thread t
// owns nodes tile_start + t + q * blockDim.x (q < NODES_PER_THREAD), so loads and stores are
// coalesced. The poles of the row are staged through shared memory in chunks of POLE_CHUNK and
// every thread streams over them, keeping its partial sums in registers: no N x L temporary.
// Rows beyond gridDim.y are covered by a grid-stride loop.
//
// structla-dtypes: complex64 complex128
#include <structla/complex.cuh>

namespace structla_cauchy {
constexpr int NODES_PER_THREAD = 8;  // = NODES_PER_THREAD in _cupy.py
constexpr int POLE_CHUNK = 256;

// 1/x for a squared modulus x. In single precision an IEEE reciprocal is a multi-instruction
// sequence; the approximate one (one MUFU op, under 2 ulp) is exact enough for a sum whose
// error bound is already eps * (number of terms), but it returns 0 above 2^126 and flushes
// subnormal inputs. The kernel therefore tracks the range of every x it inverts and recomputes
// the (rare) nodes whose x left [SAFE_LO, SAFE_HI] with IEEE division.
template <typename R> struct reciprocal;
template <> struct reciprocal<float> {
    static constexpr float SAFE_LO = 1e-36f, SAFE_HI = 1e36f;
    __device__ static float fast(float x) { return __fdividef(1.0f, x); }
};
template <> struct reciprocal<double> {
    static constexpr double SAFE_LO = 1e-300, SAFE_HI = 1e300;
    __device__ static double fast(double x) { return 1.0 / x; }
};

// The row's whole sum at one node with one IEEE division per fraction: the slow, safe path.
template <typename T>
__device__ __noinline__ T cauchy_node_exact(const T* v, const T* w, T node, int n, int conj_pairs) {
    typedef typename sl::real_of<T>::type R;
    R ar = 0, ai = 0;
    for (int i = 0; i < n; ++i) {
        const R vr = v[i].re, vi = v[i].im, wr = w[i].re, wi = w[i].im;
        const R dr = node.re - wr, d1 = node.im - wi;
        const R s1 = R(1) / (dr * dr + d1 * d1);
        ar += (vr * dr + vi * d1) * s1;
        ai += (vi * dr - vr * d1) * s1;
        if (conj_pairs) {
            const R d2 = node.im + wi;
            const R s2 = R(1) / (dr * dr + d2 * d2);
            ar += (vr * dr - vi * d2) * s2;
            ai -= (vi * dr + vr * d2) * s2;
        }
    }
    return T(ar, ai);
}
}  // namespace structla_cauchy

// k[row, l] = sum_i v[row, i] / (z[row, l] - w[row, i])  (+ conj(v)/(z - conj(w)) if conj_pairs).
// v, w: (count, n) contiguous; z: rows of `length` nodes, row r at z + r * z_row_stride
// (stride 0 when one node set serves the whole batch); out: (count, length) contiguous.
template <typename T>
__global__ void cauchy_kernel(const T* __restrict__ v, const T* __restrict__ w,
                              const T* __restrict__ z, long long z_row_stride,
                              T* __restrict__ out, int count, int n, int length, int conj_pairs) {
    using namespace structla_cauchy;
    typedef typename sl::real_of<T>::type R;
    typedef reciprocal<R> rcp;
    __shared__ R sh_vr[POLE_CHUNK], sh_vi[POLE_CHUNK], sh_wr[POLE_CHUNK], sh_wi[POLE_CHUNK];
    // Per-pole parts of the imaginary-axis path: |w|^2, -2 wr and -Re(v conj(w)).
    __shared__ R sh_modulus2[POLE_CHUNK], sh_minus_2wr[POLE_CHUNK], sh_nr[POLE_CHUNK];
    const long long first = (long long)blockIdx.x * blockDim.x * NODES_PER_THREAD + threadIdx.x;
    for (int row = blockIdx.y; row < count; row += gridDim.y) {
        const T* zrow = z + row * z_row_stride;
        R zr[NODES_PER_THREAD], zi[NODES_PER_THREAD], ar[NODES_PER_THREAD], ai[NODES_PER_THREAD];
        R lo[NODES_PER_THREAD], hi[NODES_PER_THREAD];  // range of the inverted squared moduli
        R zi2[NODES_PER_THREAD];
        bool imaginary = true;  // all of this thread's nodes on the imaginary axis
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long l = first + (long long)q * blockDim.x;
            const T node = l < length ? zrow[l] : T(0);
            zr[q] = node.re;
            zi[q] = node.im;
            ar[q] = 0;
            ai[q] = 0;
            lo[q] = rcp::SAFE_HI;
            hi[q] = rcp::SAFE_LO;
            zi2[q] = node.im * node.im;
            imaginary = imaginary && node.re == R(0);
        }
        for (int c0 = 0; c0 < n; c0 += POLE_CHUNK) {
            const int m = min(POLE_CHUNK, n - c0);
            __syncthreads();  // the previous chunk (or row) is no longer read
            for (int i = threadIdx.x; i < m; i += blockDim.x) {
                const T vi = v[(long long)row * n + c0 + i];
                const T wi = w[(long long)row * n + c0 + i];
                sh_vr[i] = vi.re;
                sh_vi[i] = vi.im;
                sh_wr[i] = wi.re;
                sh_wi[i] = wi.im;
                sh_modulus2[i] = wi.re * wi.re + wi.im * wi.im;
                sh_minus_2wr[i] = -2 * wi.re;
                sh_nr[i] = -(vi.re * wi.re + vi.im * wi.im);
            }
            __syncthreads();
            if (conj_pairs && imaginary) {
                // S4's nodes z = i zi: with zr = 0 the pair's denominator is
                // (|w|^2 - zi^2) - 2i wr zi and its numerator 2[-Re(v conj(w)) + i vr zi], so
                // the per-pole parts are staged once per block and a pair-node costs about a
                // dozen operations.
                for (int i = 0; i < m; ++i) {
                    const R vr = sh_vr[i], modulus2 = sh_modulus2[i], minus_2wr = sh_minus_2wr[i];
                    const R nr = sh_nr[i];
#pragma unroll
                    for (int q = 0; q < NODES_PER_THREAD; ++q) {
                        const R er = modulus2 - zi2[q], ei = minus_2wr * zi[q];
                        const R den2 = er * er + ei * ei;
                        lo[q] = min(lo[q], den2);
                        hi[q] = max(hi[q], den2);
                        const R s = rcp::fast(den2);
                        const R ni = vr * zi[q];
                        ar[q] += (nr * er + ni * ei) * s;
                        ai[q] += (ni * er - nr * ei) * s;
                    }
                }
            } else if (conj_pairs) {
                // v/(z - w) + conj(v)/(z - conj(w)) as one fraction: the denominator
                // (z - w)(z - conj(w)) = (dr^2 - d1 d2) + i dr (d1 + d2) costs one reciprocal
                // per pair; the numerator is 2[(vr dr - vi wi) + i vr zi] (the factor 2 is
                // applied at the store).
                for (int i = 0; i < m; ++i) {
                    const R vr = sh_vr[i], vi = sh_vi[i], wr = sh_wr[i], wi = sh_wi[i];
                    const R vw = vi * wi;
#pragma unroll
                    for (int q = 0; q < NODES_PER_THREAD; ++q) {
                        const R dr = zr[q] - wr, d1 = zi[q] - wi, d2 = zi[q] + wi;
                        const R er = dr * dr - d1 * d2, ei = dr * (d1 + d2);
                        const R den2 = er * er + ei * ei;
                        lo[q] = min(lo[q], den2);
                        hi[q] = max(hi[q], den2);
                        const R s = rcp::fast(den2);
                        const R nr = vr * dr - vw, ni = vr * zi[q];
                        ar[q] += (nr * er + ni * ei) * s;
                        ai[q] += (ni * er - nr * ei) * s;
                    }
                }
            } else {
                for (int i = 0; i < m; ++i) {
                    const R vr = sh_vr[i], vi = sh_vi[i], wr = sh_wr[i], wi = sh_wi[i];
#pragma unroll
                    for (int q = 0; q < NODES_PER_THREAD; ++q) {
                        const R dr = zr[q] - wr, di = zi[q] - wi;
                        const R den2 = dr * dr + di * di;
                        lo[q] = min(lo[q], den2);
                        hi[q] = max(hi[q], den2);
                        const R s = rcp::fast(den2);
                        ar[q] += (vr * dr + vi * di) * s;
                        ai[q] += (vi * dr - vr * di) * s;
                    }
                }
            }
        }
        const R factor = conj_pairs ? R(2) : R(1);
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long l = first + (long long)q * blockDim.x;
            if (l >= length) continue;
            T k(factor * ar[q], factor * ai[q]);
            if (!(lo[q] >= rcp::SAFE_LO && hi[q] <= rcp::SAFE_HI)) {
                k = cauchy_node_exact(v + (long long)row * n, w + (long long)row * n,
                                      T(zr[q], zi[q]), n, conj_pairs);
            }
            out[(long long)row * length + l] = k;
        }
    }
}

// exp(l * s) in double precision, with exp(0 * s) = 1 also for Re s = -inf (x = 0, log mode off).
__device__ inline sl::complex<double> structla_exp_l(long long l, sl::complex<double> s) {
    if (l == 0) return sl::complex<double>(1.0, 0.0);
    const double magnitude = exp((double)l * s.re);
    double sn, cs;
    sincos((double)l * s.im, &sn, &cs);
    return sl::complex<double>(magnitude * cs, magnitude * sn);
}

// k[row, l] = sum_i v[row, i] exp(l s[row, i]), l < length (s = x, or log x for powers).
// Each thread re-anchors at its first node with a direct double-precision exp(l s) per pole and
// reaches its other NODES_PER_THREAD - 1 nodes (blockDim.x apart) by multiplying with
// step[row, i] = exp(blockDim.x s) (rounded once), so errors never accumulate over more than
// NODES_PER_THREAD factors, whatever l. With conj_pairs, out_real gets 2 Re(k), else out gets k.
template <typename T>
__global__ void vandermonde_kernel(const T* __restrict__ v, const sl::complex<double>* __restrict__ s,
                                   const T* __restrict__ step, T* __restrict__ out,
                                   typename sl::real_of<T>::type* __restrict__ out_real,
                                   int count, int n, int length, int conj_pairs) {
    using namespace structla_cauchy;
    typedef typename sl::real_of<T>::type R;
    // Component arrays: a __shared__ array of a class type with a constructor is not allowed.
    __shared__ R sh_vr[POLE_CHUNK], sh_vi[POLE_CHUNK], sh_stepr[POLE_CHUNK], sh_stepi[POLE_CHUNK];
    __shared__ double sh_sr[POLE_CHUNK], sh_si[POLE_CHUNK];
    const long long first = (long long)blockIdx.x * blockDim.x * NODES_PER_THREAD + threadIdx.x;
    const bool active = first < length;
    for (int row = blockIdx.y; row < count; row += gridDim.y) {
        T acc[NODES_PER_THREAD];
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) acc[q] = T(0);
        for (int c0 = 0; c0 < n; c0 += POLE_CHUNK) {
            const int m = min(POLE_CHUNK, n - c0);
            __syncthreads();
            for (int i = threadIdx.x; i < m; i += blockDim.x) {
                const long long k = (long long)row * n + c0 + i;
                const T vk = v[k], stepk = step[k];
                const sl::complex<double> sk = s[k];
                sh_vr[i] = vk.re;
                sh_vi[i] = vk.im;
                sh_sr[i] = sk.re;
                sh_si[i] = sk.im;
                sh_stepr[i] = stepk.re;
                sh_stepi[i] = stepk.im;
            }
            __syncthreads();
            if (!active) continue;
            for (int i = 0; i < m; ++i) {
                const sl::complex<double> e =
                    structla_exp_l(first, sl::complex<double>(sh_sr[i], sh_si[i]));
                const R vr = sh_vr[i], vi = sh_vi[i];
                T term = T(R(vr * e.re - vi * e.im), R(vr * e.im + vi * e.re));
                const T r = T(sh_stepr[i], sh_stepi[i]);
#pragma unroll
                for (int q = 0; q < NODES_PER_THREAD; ++q) {
                    acc[q] += term;
                    term = term * r;
                }
            }
        }
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long l = first + (long long)q * blockDim.x;
            if (l >= length) continue;
            if (conj_pairs) {
                out_real[(long long)row * length + l] = acc[q].re + acc[q].re;
            } else {
                out[(long long)row * length + l] = acc[q];
            }
        }
    }
}

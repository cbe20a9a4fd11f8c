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
constexpr int NODES_PER_THREAD = 4;  // = NODES_PER_THREAD in _cupy.py
constexpr int POLE_CHUNK = 256;
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
    __shared__ R sh_vr[POLE_CHUNK], sh_vi[POLE_CHUNK], sh_wr[POLE_CHUNK], sh_wi[POLE_CHUNK];
    const long long first = (long long)blockIdx.x * blockDim.x * NODES_PER_THREAD + threadIdx.x;
    for (int row = blockIdx.y; row < count; row += gridDim.y) {
        const T* zrow = z + row * z_row_stride;
        R zr[NODES_PER_THREAD], zi[NODES_PER_THREAD], ar[NODES_PER_THREAD], ai[NODES_PER_THREAD];
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long l = first + (long long)q * blockDim.x;
            const T node = l < length ? zrow[l] : T(0);
            zr[q] = node.re;
            zi[q] = node.im;
            ar[q] = 0;
            ai[q] = 0;
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
            }
            __syncthreads();
            for (int i = 0; i < m; ++i) {
                const R vr = sh_vr[i], vi = sh_vi[i], wr = sh_wr[i], wi = sh_wi[i];
                if (conj_pairs) {
                    // v/(z - w) + conj(v)/(z - conj(w)): both differences share Re(z - w).
#pragma unroll
                    for (int q = 0; q < NODES_PER_THREAD; ++q) {
                        const R dr = zr[q] - wr, d1 = zi[q] - wi, d2 = zi[q] + wi;
                        const R dr2 = dr * dr;
                        const R s1 = R(1) / (dr2 + d1 * d1);
                        const R s2 = R(1) / (dr2 + d2 * d2);
                        ar[q] += (vr * dr + vi * d1) * s1 + (vr * dr - vi * d2) * s2;
                        ai[q] += (vi * dr - vr * d1) * s1 - (vi * dr + vr * d2) * s2;
                    }
                } else {
#pragma unroll
                    for (int q = 0; q < NODES_PER_THREAD; ++q) {
                        const R dr = zr[q] - wr, di = zi[q] - wi;
                        const R s = R(1) / (dr * dr + di * di);
                        ar[q] += (vr * dr + vi * di) * s;
                        ai[q] += (vi * dr - vr * di) * s;
                    }
                }
            }
        }
#pragma unroll
        for (int q = 0; q < NODES_PER_THREAD; ++q) {
            const long long l = first + (long long)q * blockDim.x;
            if (l < length) out[(long long)row * length + l] = T(ar[q], ai[q]);
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

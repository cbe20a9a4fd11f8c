// Diagonal + low-rank triangular matrices on the GPU (MATH A2, A5, F3-F4).
//
// tril_block_inv: one thread block per small block T_b = diag(λ) + tril((diag(s) Q Kᵀ) ⊙ Γ, -1),
//   writes T_b⁻¹ diag(c) (the UT transform when λ = 1, s = c = β, Q = K). Any block size C;
//   the matrix and its inverse live in shared memory when they fit, else in global memory.
// tril_state_scan: the sequential part of the chunked solve, Z_{I+1} = M_I Z_I + V_I, one
//   thread block per (sequence, tile of right-hand-side columns), the state in shared memory.
#include <structla/complex.cuh>

// structla-dtypes: float32 float64 complex64 complex128

// Dynamic shared memory of the block (a macro so that tests/test_tril_cuda_emulation.py can
// run these kernels as host C++ with one host thread per CUDA thread).
#ifndef STRUCTLA_DYNAMIC_SHARED
#define STRUCTLA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

// Sums of the substitution are carried in double precision for single-precision data: the
// partial sums of a float32 UT block can leave float32's range although its answer fits.
template <typename T> struct wide_of { typedef T type; };
template <> struct wide_of<float> { typedef double type; };
template <> struct wide_of<sl::complex<float>> { typedef sl::complex<double> type; };
__host__ __device__ inline double widen(float x) { return x; }
__host__ __device__ inline double widen(double x) { return x; }
__host__ __device__ inline sl::complex<double> widen(sl::complex<float> x) { return {x.re, x.im}; }
__host__ __device__ inline sl::complex<double> widen(sl::complex<double> x) { return x; }
template <typename T> struct narrow_to;
template <> struct narrow_to<float> { __host__ __device__ static float from(double x) { return (float)x; } };
template <> struct narrow_to<double> { __host__ __device__ static double from(double x) { return x; } };
template <> struct narrow_to<sl::complex<float>> {
    __host__ __device__ static sl::complex<float> from(sl::complex<double> x) { return {(float)x.re, (float)x.im}; }
};
template <> struct narrow_to<sl::complex<double>> {
    __host__ __device__ static sl::complex<double> from(sl::complex<double> x) { return x; }
};

template <typename T>
__global__ void tril_block_inv(long long nblocks, int C, int d, int mode,
                               const T* __restrict__ diag,      // (nblocks, C) or null: ones
                               const T* __restrict__ rowscale,  // (nblocks, C) or null: ones
                               const T* __restrict__ q,         // (nblocks, C, d)
                               const T* __restrict__ k,         // (nblocks, C, d)
                               const typename sl::real_of<T>::type* __restrict__ logd,  // (nblocks, C) or null
                               const T* __restrict__ colscale,  // (nblocks, C) or null: ones
                               T* __restrict__ out,             // (nblocks, C, C)
                               T* __restrict__ work) {          // (nblocks, C, C) when mode == 2
    // mode 0: A and Y in shared memory; 1: A in shared, Y in out; 2: A in work, Y in out.
    typedef typename sl::real_of<T>::type R;
    STRUCTLA_DYNAMIC_SHARED(smem);
    const long long b = blockIdx.x;
    if (b >= nblocks) return;
    const long long CC = (long long)C * C;
    // Chunk-local cumulative log-decays in double: differences of nearby entries stay exact
    // even after a step of -1e4, and only differences (<= 0 for decays) are exponentiated.
    double* cum = reinterpret_cast<double*>(smem);
    const int cum_bytes = ((C * (int)sizeof(double) + 15) / 16) * 16;
    T* shared_t = reinterpret_cast<T*>(smem + cum_bytes);
    T* A = mode == 2 ? work + b * CC : shared_t;
    T* Y = mode == 0 ? shared_t + CC : out + b * CC;
    const T* qb = q + b * (long long)C * d;
    const T* kb = k + b * (long long)C * d;
    const int tid = threadIdx.x, nt = blockDim.x;

    if (logd != nullptr && tid == 0) {
        double s = 0.0;
        for (int i = 0; i < C; ++i) {
            s += (double)logd[b * C + i];
            cum[i] = s;
        }
    }
    __syncthreads();
    for (long long idx = tid; idx < CC; idx += nt) {
        const int i = (int)(idx / C), j = (int)(idx - (long long)i * C);
        T v = T(0);
        if (i > j) {
            for (int r = 0; r < d; ++r) v = sl::fma_acc(v, qb[(long long)i * d + r], kb[(long long)j * d + r]);
            if (rowscale != nullptr) v = v * rowscale[b * C + i];
            if (logd != nullptr) v = v * (R)exp((R)(cum[i] - cum[j]));
        } else if (i == j) {
            v = diag != nullptr ? diag[b * C + i] : T(1);
        }
        A[idx] = v;
    }
    __syncthreads();
    // Forward substitution, one column of the inverse per thread (columns are independent).
    typedef typename wide_of<T>::type W;
    for (int j = tid; j < C; j += nt) {
        for (int i = 0; i < j; ++i) Y[(long long)i * C + j] = T(0);
        Y[(long long)j * C + j] = narrow_to<T>::from(W(1) / widen(A[(long long)j * C + j]));
        for (int i = j + 1; i < C; ++i) {
            W s = W(0);
            const T* Ai = A + (long long)i * C;
            for (int l = j; l < i; ++l) s = sl::fma_acc(s, widen(Ai[l]), widen(Y[(long long)l * C + j]));
            Y[(long long)i * C + j] = narrow_to<T>::from(-s / widen(Ai[i]));
        }
    }
    __syncthreads();
    if (mode == 0 || colscale != nullptr) {
        T* ob = out + b * CC;
        for (long long idx = tid; idx < CC; idx += nt) {
            const int j = (int)(idx % C);
            T v = Y[idx];
            if (colscale != nullptr) v = v * colscale[b * C + j];
            ob[idx] = v;
        }
    }
}

template <typename T>
__global__ void tril_state_scan(long long nseq, int nc, int d, int m, int tile,
                                const T* __restrict__ M,   // (nseq, nc, d, d)
                                const T* __restrict__ V,   // (nseq, nc, d, m)
                                T* __restrict__ Zs) {      // (nseq, nc, d, m): state entering chunk I
    STRUCTLA_DYNAMIC_SHARED(smem);
    T* Z = reinterpret_cast<T*>(smem);
    T* Zn = Z + (long long)d * tile;
    const long long s = blockIdx.x;
    if (s >= nseq) return;
    const int c0 = blockIdx.y * tile;
    const int w = min(tile, m - c0);
    if (w <= 0) return;
    for (int idx = threadIdx.x; idx < d * tile; idx += blockDim.x) Z[idx] = T(0);
    __syncthreads();
    for (int I = 0; I < nc; ++I) {
        const long long chunk = s * nc + I;
        const T* MI = M + chunk * d * d;
        const T* VI = V + chunk * d * m;
        T* ZI = Zs + chunk * d * m;
        for (int idx = threadIdx.x; idx < d * w; idx += blockDim.x) {
            const int r = idx / w, c = idx - r * w;
            ZI[(long long)r * m + c0 + c] = Z[r * tile + c];
            T acc = VI[(long long)r * m + c0 + c];
            const T* Mr = MI + (long long)r * d;
            for (int l = 0; l < d; ++l) acc = sl::fma_acc(acc, Mr[l], Z[l * tile + c]);
            Zn[r * tile + c] = acc;
        }
        __syncthreads();
        T* t = Z;
        Z = Zn;
        Zn = t;
    }
}

// Diagonal + low-rank triangular matrices on the GPU (MATH A2, A5, F3-F4).
//
// tril_block_inv: one thread block per small block T_b = diag(λ) + diag(s) tril(Q Kᵀ ⊙ Γ, -1),
//   writes T_b⁻¹ diag(s) (the UT transform when λ = 1, s = β, Q = K). Any block size C;
//   the matrix and its inverse live in shared memory when they fit, else in global memory.
// tril_block_inv_small: the same for C ≤ 64, tiled (Gram matrix in registers, inverse by
//   merging 16×16 diagonal blocks); the fast path of the UT transform and the chunked solve.
// tril_state_scan: the sequential part of the chunked solve, Z_{I+1} = M_I Z_I + V_I, one
//   thread block per (sequence, tile of right-hand-side columns), the state in shared memory;
//   tril_state_scan_tiled: the same for d ≤ 128 with register tiles (the fast path).
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
                               const T* __restrict__ scale,     // (nblocks, C) or null: ones
                               const T* __restrict__ q,         // (nblocks, C, d)
                               const T* __restrict__ k,         // (nblocks, C, d)
                               const typename sl::real_of<T>::type* __restrict__ logd,  // (nblocks, C) or null
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
    // A = tril(Q Kᵀ ⊙ Γ, -1) + diag(λ), without the scale s (see the substitution); the Gram
    // sums in wide_of<T>, as in tril_block_inv_small
    typedef typename wide_of<T>::type W;
    for (long long idx = tid; idx < CC; idx += nt) {
        const int i = (int)(idx / C), j = (int)(idx - (long long)i * C);
        T v = T(0);
        if (i > j) {
            W g = W(0);
            for (int r = 0; r < d; ++r) g = sl::fma_acc(g, widen(qb[(long long)i * d + r]), widen(kb[(long long)j * d + r]));
            v = narrow_to<T>::from(g);
            if (logd != nullptr) v = v * (R)exp((R)(cum[i] - cum[j]));
        } else if (i == j) {
            v = diag != nullptr ? diag[b * C + i] : T(1);
        }
        A[idx] = v;
    }
    __syncthreads();
    // Forward substitution for Y = (diag(λ) + diag(s) A)⁻¹ diag(s), one column per thread
    // (columns are independent): y_ij = s_i (δ_ij − Σ_{l<i} A_il y_lj) / λ_i. Every stored
    // entry is an entry of the answer, so a small s_i leaves no unscaled entry out of range.
    for (int j = tid; j < C; j += nt) {
        for (int i = 0; i < j; ++i) Y[(long long)i * C + j] = T(0);
        for (int i = j; i < C; ++i) {
            W s = i == j ? W(1) : W(0);
            const T* Ai = A + (long long)i * C;
            for (int l = j; l < i; ++l) s = sl::fma_acc(s, -widen(Ai[l]), widen(Y[(long long)l * C + j]));
            if (diag != nullptr) s = s / widen(Ai[i]);
            if (scale != nullptr) s = s * widen(scale[b * C + i]);
            Y[(long long)i * C + j] = narrow_to<T>::from(s);
        }
    }
    if (mode == 0) {
        __syncthreads();
        T* ob = out + b * CC;
        for (long long idx = tid; idx < CC; idx += nt) ob[idx] = Y[idx];
    }
}

// ---------------------------------------------------------------------------------------------
// tril_block_inv_small: the same blocks as tril_block_inv for C ≤ 64, one thread block of 256
// threads per block, padded to CP ∈ {16, 32, 64} with identity rows (the inverse of
// diag(T_b, I) is diag(T_b⁻¹, I)):
//   1. the Gram matrix Q Kᵀ from tiles of Q and K columns in shared memory, each thread holding
//      a register tile of rows ty + 16a and columns tx + 16c (conflict-free reads; the tiles
//      with c > a lie above the diagonal and are skipped);
//   2. decays (exponent differences of chunk-local sums, never exp of a sum), the unscaled
//      L = tril(Q Kᵀ ⊙ Γ, -1) + diag(s / λ) written once into shared memory over the dead tiles;
//   3. the 16×16 diagonal blocks of X = T_b⁻¹ diag(s) by forward substitution in registers,
//      y_i = s_i (δ_ic − Σ_{l<i} L_il y_l) / λ_i;
//   4. merges X₂₁ = −X₂₂ (L₂₁ X₁₁) of neighbouring diagonal blocks of 16, 32 (with T₂₁ = S₂L₂₁,
//      X₂₁ S₁ = −(X₂₂S₂) L₂₁ (X₁₁S₁): every stored block is a block of the scaled answer, so a
//      small s never leaves an unscaled block beyond the range), two small products per level
//      over explicit zeros above the diagonal;
//   5. coalesced stores of X.
// Everything runs in wide_of<T> (double for single-precision data): with raw keys a UT block's
// Gram entries lose about log2(d) bits to float32 sums, which its conditioning then multiplies,
// and the merge products' partial sums can leave float32's range although the answer fits.
// The data is widened once on its way into shared memory (a conversion is slower than an FMA).
// ---------------------------------------------------------------------------------------------

// Columns of Q and K per shared-memory tile (64 rows) and the tiles' row stride: an odd stride
// of 8-byte entries (and 17 of 16-byte ones) spreads 16 consecutive rows over all banks.
// Mirrored by _cupy._small_shared_bytes.
template <typename WT> struct small_tile { static constexpr int width = 32, stride = 33; };
template <> struct small_tile<sl::complex<double>> { static constexpr int width = 16, stride = 17; };

constexpr int SMALL_THREADS = 256;

template <typename T, int CP>
__device__ void small_block_inv(long long b, int C, int d,
                                const T* __restrict__ diag, const T* __restrict__ scale,
                                const T* __restrict__ q, const T* __restrict__ k,
                                const typename sl::real_of<T>::type* __restrict__ logd,
                                T* __restrict__ out, unsigned char* smem) {
    typedef typename sl::real_of<T>::type R;
    typedef typename wide_of<T>::type WT;
    constexpr int NT = CP / 16;  // register tile edge
    constexpr int W = small_tile<WT>::width, S = small_tile<WT>::stride;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    double* cum = reinterpret_cast<double*>(smem);
    WT* Qs = reinterpret_cast<WT*>(smem + CP * sizeof(double));
    const bool same = q == k;
    WT* Ks = same ? Qs : Qs + CP * S;
    WT* X = Qs;                 // CP×CP, over the tiles once the Gram matrix is in registers
    WT* tmp = X + CP * CP;      // CP/2 × CP/2 scratch of the merges
    const T* qb = q + b * (long long)C * d;
    const T* kb = k + b * (long long)C * d;

    if (logd != nullptr && tid < 64) {
        // inclusive sums by two warps' shuffles: entries 0-31 and 32-63 (zeros past C)
        const int lane = tid % 32;
        double lo = lane < C ? (double)logd[b * C + lane] : 0.0;
        double hi = 32 + lane < C ? (double)logd[b * C + 32 + lane] : 0.0;
#pragma unroll
        for (int o = 1; o < 32; o *= 2) {
            const double x = __shfl_up_sync(0xffffffffu, lo, o);
            const double y = __shfl_up_sync(0xffffffffu, hi, o);
            if (lane >= o) {
                lo += x;
                hi += y;
            }
        }
        const double total_lo = __shfl_sync(0xffffffffu, lo, 31);
        if (tid < CP) cum[tid] = tid < 32 ? lo : total_lo + hi;
    }
    WT acc[NT][NT];
#pragma unroll
    for (int a = 0; a < NT; ++a)
#pragma unroll
        for (int c = 0; c < NT; ++c) acc[a][c] = WT(0);
    for (int r0 = 0; r0 < d; r0 += W) {
        __syncthreads();  // previous tile consumed
#pragma unroll 4
        for (int e = 0; e < CP * W / SMALL_THREADS; ++e) {
            const int idx = tid + e * SMALL_THREADS;
            const int row = idx / W, col = idx % W;
            const bool inside = row < C && r0 + col < d;
            const long long at = (long long)row * d + r0 + col;
            Qs[row * S + col] = inside ? widen(qb[at]) : WT(0);
            if (!same) Ks[row * S + col] = inside ? widen(kb[at]) : WT(0);
        }
        __syncthreads();
        const int width = min(W, d - r0);
#pragma unroll 1
        for (int r = 0; r < width; r += 4) {  // columns past d are zeros in the tile
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                WT qa[NT], kc[NT];
#pragma unroll
                for (int a = 0; a < NT; ++a) qa[a] = Qs[(ty + 16 * a) * S + r + u];
#pragma unroll
                for (int c = 0; c < NT; ++c) kc[c] = Ks[(tx + 16 * c) * S + r + u];
#pragma unroll
                for (int a = 0; a < NT; ++a)
#pragma unroll
                    for (int c = 0; c <= a; ++c) acc[a][c] = sl::fma_acc(acc[a][c], qa[a], kc[c]);
            }
        }
    }
    __syncthreads();  // tiles dead: X may overwrite them
#pragma unroll
    for (int a = 0; a < NT; ++a) {
        const int i = ty + 16 * a;
#pragma unroll
        for (int c = 0; c < NT; ++c) {
            const int j = tx + 16 * c;
            WT v = WT(0);
            if (i >= C || j >= C) {
                if (i == j) v = WT(1);
            } else if (i > j) {
                v = acc[a][c];
                // the decay factor in R (an exp per entry; its rounding is that of storing T)
                if (logd != nullptr) v = v * (double)(R)exp((R)(cum[i] - cum[j]));
            } else if (i == j) {
                // the diagonal holds the factor s_i / λ_i of the substitution (the merges read
                // only blocks below the diagonal blocks)
                if (scale != nullptr) v = widen(scale[b * C + i]);
                else v = WT(1);
                if (diag != nullptr) v = v / widen(diag[b * C + i]);
            }
            X[i * CP + j] = v;
        }
    }
    __syncthreads();
    // Diagonal blocks of 16: thread (block p, column c) solves (Λ + S L)_pp y = s_c e_c in registers.
    {
        WT y[16];
        const int p = tid / 16, c = tid % 16;
        if (p < NT) {
            const WT* L = X + (16 * p) * CP + 16 * p;
#pragma unroll
            for (int i = 0; i < 16; ++i) {
                WT s = i == c ? WT(1) : WT(0);
#pragma unroll
                for (int l = 0; l < i; ++l) s = s - L[i * CP + l] * y[l];
                y[i] = s * L[i * CP + i];
            }
        }
        __syncthreads();
        if (p < NT) {
            WT* Y = X + (16 * p) * CP + 16 * p;
#pragma unroll
            for (int i = 0; i < 16; ++i) Y[i * CP + c] = y[i];
        }
        __syncthreads();
    }
    // Merges: at level s, CP/(2s) pairs side by side make CP/2 columns; thread column J, rows
    // i0, i0 + ISTEP, … of the s rows. Entries above the diagonals are stored zeros.
    constexpr int HALF = CP / 2;
    constexpr int ISTEP = SMALL_THREADS / HALF;
    constexpr int MAXR = CP * CP / 1024 > 0 ? CP * CP / 1024 : 1;  // rows per thread at s = CP/2
    const int J = tid % HALF, i0 = tid / HALF;
#pragma unroll
    for (int s = 16; s < CP; s *= 2) {
        const int g = J / s, j = J % s;
        const int c0 = 2 * g * s, r0 = c0 + s;
        const int rows = s / ISTEP;
        WT part[MAXR];
        // tmp = L₂₁ X₁₁
#pragma unroll
        for (int t = 0; t < MAXR; ++t) part[t] = WT(0);
#pragma unroll 4
        for (int l = 0; l < s; ++l) {
            const WT x = X[(c0 + l) * CP + c0 + j];
#pragma unroll
            for (int t = 0; t < MAXR; ++t)
                if (t < rows) part[t] = sl::fma_acc(part[t], X[(r0 + i0 + t * ISTEP) * CP + c0 + l], x);
        }
#pragma unroll
        for (int t = 0; t < MAXR; ++t)
            if (t < rows) tmp[(i0 + t * ISTEP) * HALF + J] = part[t];
        __syncthreads();
        // X₂₁ = −X₂₂ tmp
#pragma unroll
        for (int t = 0; t < MAXR; ++t) part[t] = WT(0);
#pragma unroll 4
        for (int l = 0; l < s; ++l) {
            const WT x = tmp[l * HALF + J];
#pragma unroll
            for (int t = 0; t < MAXR; ++t)
                if (t < rows) part[t] = sl::fma_acc(part[t], X[(r0 + i0 + t * ISTEP) * CP + r0 + l], x);
        }
#pragma unroll
        for (int t = 0; t < MAXR; ++t)
            if (t < rows) X[(r0 + i0 + t * ISTEP) * CP + c0 + j] = -part[t];
        __syncthreads();
    }
    T* ob = out + b * (long long)C * C;
    for (int idx = tid; idx < C * C; idx += SMALL_THREADS) {
        const int i = idx / C, j = idx - i * C;
        ob[idx] = narrow_to<T>::from(X[i * CP + j]);
    }
}

// Declared with its launch bounds (≤ 64 registers: four blocks per SM); the definition below
// is the one the loader instantiates.
template <class T>
__global__ void __launch_bounds__(256, 4) tril_block_inv_small(
    long long, int, int, const T* __restrict__, const T* __restrict__, const T* __restrict__,
    const T* __restrict__, const typename sl::real_of<T>::type* __restrict__, T* __restrict__);

template <typename T>
__global__ void tril_block_inv_small(long long nblocks, int C, int d,
                                     const T* __restrict__ diag,   // (nblocks, C) or null: ones
                                     const T* __restrict__ scale,  // (nblocks, C) or null: ones
                                     const T* __restrict__ q,      // (nblocks, C, d)
                                     const T* __restrict__ k,      // (nblocks, C, d)
                                     const typename sl::real_of<T>::type* __restrict__ logd,
                                     T* __restrict__ out) {        // (nblocks, C, C)
    STRUCTLA_DYNAMIC_SHARED(smem);
    const long long b = blockIdx.x;
    if (b >= nblocks) return;
    if (C <= 16) {
        small_block_inv<T, 16>(b, C, d, diag, scale, q, k, logd, out, smem);
    } else if (C <= 32) {
        small_block_inv<T, 32>(b, C, d, diag, scale, q, k, logd, out, smem);
    } else {
        small_block_inv<T, 64>(b, C, d, diag, scale, q, k, logd, out, smem);
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

template <typename T> __device__ inline void load4(const T* p, T (&v)[4]) {
    v[0] = p[0]; v[1] = p[1]; v[2] = p[2]; v[3] = p[3];
}
template <> __device__ inline void load4<float>(const float* p, float (&v)[4]) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w;
}

// tril_state_scan_tiled: tril_state_scan for d ≤ 128 with the work in registers. One thread
// block per (sequence, 32 columns of Z); thread (rg, cg) holds rows rg + 32a (a < 4) and
// columns 4cg … 4cg + 3 of the state. Per chunk: Z_{I+1} = M_I Z_I + V_I with M_I staged in
// shared memory a slab of columns at a time and Z_I in shared memory, so that each step of
// the product reads one row of 4 state entries and 4 entries of M for 16 multiply-adds; each
// slab is fetched into registers while the previous one is in use.
template <typename T> struct scan_slab { static constexpr int width = 8; };
template <> struct scan_slab<float> { static constexpr int width = 16; };
constexpr int SCAN_THREADS = 256;
constexpr int SCAN_TILE = 32;
constexpr int SCAN_ROWS = 4;  // rows per thread: d ≤ 32·SCAN_ROWS

// Declared with its launch bounds (≤ 128 registers: two blocks per SM, so that 64 sequences ×
// 4 column tiles are all resident at once on an H100).
template <class T>
__global__ void __launch_bounds__(256, 2) tril_state_scan_tiled(
    long long, int, int, int, const T* __restrict__, const T* __restrict__, T* __restrict__);

template <typename T>
__global__ void tril_state_scan_tiled(long long nseq, int nc, int d, int m,
                                      const T* __restrict__ M,   // (nseq, nc, d, d)
                                      const T* __restrict__ V,   // (nseq, nc, d, m)
                                      T* __restrict__ Zs) {      // (nseq, nc, d, m): state entering chunk I
    constexpr int SL = scan_slab<T>::width, SS = SL + 1;
    STRUCTLA_DYNAMIC_SHARED(smem);
    T* Z = reinterpret_cast<T*>(smem);  // d × SCAN_TILE
    T* Ms = Z + d * SCAN_TILE;          // d × SS: columns l0 … l0 + SL of M_I
    const long long s = blockIdx.x;
    if (s >= nseq) return;
    const int c0 = blockIdx.y * SCAN_TILE;
    const int tid = threadIdx.x, cg = tid % 8, rg = tid / 8;
    T z[SCAN_ROWS][4];
#pragma unroll
    for (int a = 0; a < SCAN_ROWS; ++a)
#pragma unroll
        for (int u = 0; u < 4; ++u) z[a][u] = T(0);
    for (int idx = tid; idx < d * SCAN_TILE; idx += SCAN_THREADS) Z[idx] = T(0);
    // This thread's share of the next slab of M, loaded one slab ahead of its use.
    constexpr int PRE = 32 * SCAN_ROWS * SL / SCAN_THREADS;
    T next[PRE];
    auto fetch = [&](const T* Mc, int l0) {
#pragma unroll
        for (int e = 0; e < PRE; ++e) {
            const int idx = tid + e * SCAN_THREADS;
            const int row = idx / SL, col = idx % SL;
            next[e] = idx < d * SL && l0 + col < d ? Mc[(long long)row * d + l0 + col] : T(0);
        }
    };
    fetch(M + s * nc * d * d, 0);
    for (int I = 0; I < nc; ++I) {
        const long long chunk = s * nc + I;
        const T* MI = M + chunk * d * d;
        const T* VI = V + chunk * d * m;
        T* ZI = Zs + chunk * d * m;
        T acc[SCAN_ROWS][4];
#pragma unroll
        for (int a = 0; a < SCAN_ROWS; ++a) {
            const int r = rg + 32 * a;
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int c = c0 + 4 * cg + u;
                const bool inside = r < d && c < m;
                if (inside) ZI[(long long)r * m + c] = z[a][u];
                acc[a][u] = inside ? VI[(long long)r * m + c] : T(0);
            }
        }
        for (int l0 = 0; l0 < d; l0 += SL) {
            __syncthreads();  // the previous slab consumed (and, at l0 = 0, Z written)
#pragma unroll
            for (int e = 0; e < PRE; ++e) {
                const int idx = tid + e * SCAN_THREADS;
                if (idx < d * SL) Ms[(idx / SL) * SS + idx % SL] = next[e];
            }
            __syncthreads();
            // fetch the following slab (of this chunk or the next) while this one is used
            if (l0 + SL < d) {
                fetch(MI, l0 + SL);
            } else if (I + 1 < nc) {
                fetch(MI + (long long)d * d, 0);
            }
            const int width = min(SL, d - l0);
            for (int l = 0; l < width; ++l) {
                T zl[4];
                load4(Z + (l0 + l) * SCAN_TILE + 4 * cg, zl);
#pragma unroll
                for (int a = 0; a < SCAN_ROWS; ++a) {
                    const int r = rg + 32 * a;
                    if (r < d) {
                        const T mv = Ms[r * SS + l];
#pragma unroll
                        for (int u = 0; u < 4; ++u) acc[a][u] = sl::fma_acc(acc[a][u], mv, zl[u]);
                    }
                }
            }
        }
        __syncthreads();  // every thread done reading Z_I
#pragma unroll
        for (int a = 0; a < SCAN_ROWS; ++a) {
            const int r = rg + 32 * a;
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                z[a][u] = acc[a][u];
                if (r < d) Z[r * SCAN_TILE + 4 * cg + u] = acc[a][u];
            }
        }
    }
}

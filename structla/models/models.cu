// DeltaNet's chunkwise (WY/UT) form on the GPU: the sequential carry over chunks (MATH F3-F4).
//
// delta_chunk_carry: one thread block per (sequence, tile of 32 value columns) runs every chunk
// of its sequence in order, keeping its columns of the state H = Sᵀ (d_k × 32) in shared memory;
// delta_chunk_carry_narrow / _wide: the same with tiles of 16 / 64 columns (twice / half the blocks).
// With T_c (the UT transform, diag(β) folded in) and the unmasked scores Q Kᵀ prepared for all
// chunks at once (_cupy.py), and K̂ = diag(e^g) K, Q̂ = diag(e^g) Q, K̃ = diag(e^{g_last−g}) K
// formed while their slabs are staged, each chunk does
//   1. [K̂; Q̂] H                      (2C × d_k by d_k × 32; the Q̂ half starts the output)
//   2. V_new = T_c (V − K̂ H)          (no W = T_c K̂ is formed: W H = T_c (K̂ H))
//   3. O = Q̂ H + (Q Kᵀ ⊙ Γ) V_new     (the scores masked to t ≥ s and decayed while staged)
//   4. H ← e^{g_last} H + K̃ᵀ V_new.
// All four are products of a staged slab (≤ 128 rows × 32 reduction columns) with rows of a
// shared-memory operand (K̃ᵀ is staged from rows of K, transposed on the way); thread (rg, cg)
// holds rows rg + 32a (64a narrow, 16a wide) and columns 4cg … 4cg + 3, so each step of
// a product reads one row segment of 4 from each operand for 16 multiply-adds. The next
// slab (of this chunk or the next one) is fetched into registers while the current one is used,
// and stored into the other of two slab buffers: one barrier per slab.
#include <structla/complex.cuh>

// structla-dtypes: float32 float64

// Dynamic shared memory of the block (a macro so that tests/test_models_cuda_emulation.py can
// run the kernel as host C++ with one host thread per CUDA thread).
#ifndef STRUCTLA_DYNAMIC_SHARED
#define STRUCTLA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

// Mirrored by models/_cupy.py.
constexpr int DELTA_THREADS = 256;
constexpr int DELTA_TILE = 32;   // value columns per block
constexpr int DELTA_CMAX = 64;   // longest chunk
constexpr int DELTA_ROWS = 128;  // staged rows: K̂ over Q̂ (2 × 64), or the d_k ≤ 128 rows of K̃ᵀ
constexpr int DELTA_SLAB = 32;   // reduction columns per staged slab
constexpr int DELTA_PER = DELTA_ROWS * DELTA_SLAB / DELTA_THREADS;  // staged entries per thread

// Row stride of the staged slab: float rows stay 16-byte aligned for vector reads and 4 rows
// read together fall into 4 different bank quads (stride ≡ 4 mod 32); doubles are read one by one.
template <typename T> struct delta_stride { static constexpr int value = DELTA_SLAB + 1; };
template <> struct delta_stride<float> { static constexpr int value = DELTA_SLAB + 4; };

template <typename T> __device__ inline void delta_load4(const T* p, T (&v)[4]) {
    v[0] = p[0]; v[1] = p[1]; v[2] = p[2]; v[3] = p[3];
}
template <> __device__ inline void delta_load4<float>(const float* p, float (&v)[4]) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w;
}

// acc[a][w] += Σ_l X[rg + RG·a][l] B[l][4cg + w] over one slab (l < 32); X has row stride SP,
// B (shared, TW columns) starts at the slab's first row.
template <typename T, int SP, int TW, int RG, int NA>
__device__ inline void delta_slab_product(const T* __restrict__ X, const T* __restrict__ B, int rg, int cg,
                                          T (*acc)[4]) {
#pragma unroll 1
    for (int l = 0; l < DELTA_SLAB; l += 4) {
        T b[4][4];
#pragma unroll
        for (int u = 0; u < 4; ++u) delta_load4(B + (l + u) * TW + 4 * cg, b[u]);
#pragma unroll
        for (int a = 0; a < NA; ++a) {
            T x[4];
            delta_load4(X + (rg + RG * a) * SP + l, x);
#pragma unroll
            for (int u = 0; u < 4; ++u)
#pragma unroll
                for (int w = 0; w < 4; ++w) acc[a][w] = sl::fma_acc(acc[a][w], x[u], b[u][w]);
        }
    }
}

// Slab `slab` of a product by a lower-triangular C × C matrix (T_c, the scores) into the HR row
// accumulators `acc`: rows < 32 of the second slab are zeros and skipped (whole warps when RG = 64).
template <typename T, int SP, int TW, int RG, int HR>
__device__ inline void delta_lower_slab(const T* __restrict__ X, const T* __restrict__ Y, int slab, int rg,
                                        int cg, T (*acc)[4]) {
    const T* B = Y + DELTA_SLAB * slab * TW;
    if (slab == 0) {
        delta_slab_product<T, SP, TW, RG, HR>(X, B, rg, cg, acc);
    } else if constexpr (RG <= 32) {  // the first 32 / RG row accumulators hold rows < 32
        constexpr int Z = 32 / RG;
        delta_slab_product<T, SP, TW, RG, HR - Z>(X + 32 * SP, B, rg, cg, acc + Z);
    } else if (rg >= 32) {
        delta_slab_product<T, SP, TW, RG, HR>(X, B, rg, cg, acc);
    }
}

// The carry with TW value columns per block: thread (rg, cg) holds columns 4cg … 4cg + 3 and rows
// rg + RG·a of every product (RG = 256 / (TW / 4) row groups; NR = 128 / RG rows of the 128-row
// products, the first half K̂ (or T_c, the scores), the second half Q̂).
template <typename T, int TW>
__device__ void delta_carry(long long count, int length, int nc, int C, int dk, int dv,
                            const T* __restrict__ k, const T* __restrict__ q, const T* __restrict__ tc,
                            const T* __restrict__ qk, const T* __restrict__ v, const T* __restrict__ eg,
                            const T* __restrict__ el, const double* __restrict__ g, const T* __restrict__ last,
                            const T* __restrict__ h0, T* __restrict__ out, T* __restrict__ state,
                            unsigned char* smem) {
    constexpr int SP = delta_stride<T>::value;
    constexpr int CG = TW / 4, RG = DELTA_THREADS / CG, NR = DELTA_ROWS / RG, HR = NR / 2;
    const long long s = blockIdx.x;
    if (s >= count) return;
    const int j0 = blockIdx.y * TW;
    const int tid = threadIdx.x, cg = tid % CG, rg = tid / CG;
    const int lane = tid % 32, row0 = tid / 32;
    const int n1 = (dk + DELTA_SLAB - 1) / DELTA_SLAB, n2 = (C + DELTA_SLAB - 1) / DELTA_SLAB;
    const int nst = n1 + 3 * n2;  // slabs per chunk: [K̂; Q̂] H, T_c R, scores V_new, K̃ᵀ V_new
    const int hrows = DELTA_SLAB * n1;
    T* Hs = reinterpret_cast<T*>(smem);  // hrows × TW (rows ≥ d_k stay 0)
    T* Rs = Hs + hrows * TW;             // DELTA_CMAX × TW: R = V − K̂H
    T* Vs = Rs + DELTA_CMAX * TW;        // DELTA_CMAX × TW: V_new
    T* Xb = Vs + DELTA_CMAX * TW;        // 2 × DELTA_ROWS × SP: staged slabs, used alternately

    for (int idx = tid; idx < hrows * TW; idx += DELTA_THREADS) {
        const int l = idx / TW, j = j0 + idx % TW;
        Hs[idx] = l < dk && j < dv ? h0[(s * dv + j) * dk + l] : T(0);
    }
    T next[DELTA_PER];
    // Entry (row0 + 8e, lane) of slab st of chunk c, zero outside the matrices. The loops over e
    // are unrolled by 4 within the 128-register bound (fully, the 16 hoisted addresses spill) and
    // fully in the wide kernel, whose bound is 255 (by 4 there, `next` went to local memory).
    auto fetch = [&](int c, int st) {
        const long long ch = s * nc + c;
        if (st < n1) {
            const int l = DELTA_SLAB * st + lane;
#pragma unroll (TW == 2 * DELTA_TILE ? DELTA_PER : 4)
            for (int e = 0; e < DELTA_PER; ++e) {
                const int row = row0 + 8 * e, t = row % DELTA_CMAX;
                const T* src = row < DELTA_CMAX ? k : q;
                T x = T(0);
                if (t < C && l < dk) {
                    x = src[(ch * C + t) * dk + l];
                    if (eg != nullptr) x = x * eg[ch * C + t];
                }
                next[e] = x;
            }
        } else if (st < n1 + n2) {
            const int col = DELTA_SLAB * (st - n1) + lane;
#pragma unroll (TW == 2 * DELTA_TILE ? DELTA_PER : 4)
            for (int e = 0; e < DELTA_PER; ++e) {
                const int t = row0 + 8 * e;
                next[e] = t < C && col <= t ? tc[(ch * C + t) * C + col] : T(0);  // lower triangular
            }
        } else if (st < n1 + 2 * n2) {
            const int col = DELTA_SLAB * (st - n1 - n2) + lane;
#pragma unroll (TW == 2 * DELTA_TILE ? DELTA_PER : 4)
            for (int e = 0; e < DELTA_PER; ++e) {
                const int t = row0 + 8 * e;
                T x = T(0);
                if (t < C && col <= t) {
                    x = qk[(ch * C + t) * C + col];
                    // exponent difference of in-chunk sums: ≤ 0 for decays, never e^{g} alone
                    if (g != nullptr) x = x * (T)exp((T)(g[ch * C + t] - g[ch * C + col]));
                }
                next[e] = x;
            }
        } else {  // K̃ᵀ: read along rows of K (coalesced), stored transposed
            const int l = tid % DELTA_ROWS;
#pragma unroll (TW == 2 * DELTA_TILE ? DELTA_PER : 4)
            for (int e = 0; e < DELTA_PER; ++e) {
                const int t = DELTA_SLAB * (st - n1 - 2 * n2) + tid / DELTA_ROWS + 2 * e;
                T x = T(0);
                if (l < dk && t < C) {
                    x = k[(ch * C + t) * dk + l];
                    if (el != nullptr) x = x * el[ch * C + t];
                }
                next[e] = x;
            }
        }
    };
    fetch(0, 0);
    T acc[NR][4];
    int parity = 0;
    for (int c = 0; c < nc; ++c) {
        const long long ch = s * nc + c;
        const T decay = last != nullptr ? last[ch] : T(1);
#pragma unroll
        for (int a = 0; a < NR; ++a)
#pragma unroll
            for (int w = 0; w < 4; ++w) acc[a][w] = T(0);
        for (int st = 0; st < nst; ++st) {
            // One barrier per slab: a slab buffer is rewritten two slabs after its use, and R,
            // V_new and H are each written once per chunk, after their readers' last barrier.
            T* Xs = Xb + parity * DELTA_ROWS * SP;
            parity ^= 1;
            if (st == 0) {  // V of this chunk into Rs, unread since the last chunk's T_c R
#pragma unroll
                for (int a = 0; a < HR; ++a) {
                    const int t = rg + RG * a;
                    const long long gt = (long long)c * C + t;
#pragma unroll
                    for (int w = 0; w < 4; ++w) {
                        const int j = j0 + 4 * cg + w;
                        Rs[t * TW + 4 * cg + w] = t < C && gt < length && j < dv ? v[(s * length + gt) * dv + j] : T(0);
                    }
                }
            }
            if (st < n1 + 2 * n2) {
#pragma unroll
                for (int e = 0; e < DELTA_PER; ++e) Xs[(row0 + 8 * e) * SP + lane] = next[e];
            } else {
#pragma unroll
                for (int e = 0; e < DELTA_PER; ++e)
                    Xs[(tid % DELTA_ROWS) * SP + tid / DELTA_ROWS + 2 * e] = next[e];
            }
            __syncthreads();
            if (st + 1 < nst) {
                fetch(c, st + 1);
            } else if (c + 1 < nc) {
                fetch(c + 1, 0);
            }
            if (st < n1) {
                delta_slab_product<T, SP, TW, RG, NR>(Xs, Hs + DELTA_SLAB * st * TW, rg, cg, acc);
                if (st == n1 - 1) {  // R = V − K̂ H (rows ≥ C are zeros); acc[0 … HR) then gathers V_new
#pragma unroll
                    for (int a = 0; a < HR; ++a)
#pragma unroll
                        for (int w = 0; w < 4; ++w) {
                            Rs[(rg + RG * a) * TW + 4 * cg + w] -= acc[a][w];
                            acc[a][w] = T(0);
                        }
                }
            } else if (st < n1 + n2) {
                delta_lower_slab<T, SP, TW, RG, HR>(Xs, Rs, st - n1, rg, cg, acc);
                if (st == n1 + n2 - 1) {
#pragma unroll
                    for (int a = 0; a < HR; ++a)
#pragma unroll
                        for (int w = 0; w < 4; ++w) Vs[(rg + RG * a) * TW + 4 * cg + w] = acc[a][w];
                }
            } else if (st < n1 + 2 * n2) {
                delta_lower_slab<T, SP, TW, RG, HR>(Xs, Vs, st - n1 - n2, rg, cg, acc + HR);
                if (st == n1 + 2 * n2 - 1) {  // outputs done; acc then gathers the next H
#pragma unroll
                    for (int a = 0; a < HR; ++a) {
                        const int t = rg + RG * a;
                        const long long gt = (long long)c * C + t;
#pragma unroll
                        for (int w = 0; w < 4; ++w) {
                            const int j = j0 + 4 * cg + w;
                            if (t < C && gt < length && j < dv) out[(s * length + gt) * dv + j] = acc[HR + a][w];
                        }
                    }
#pragma unroll
                    for (int a = 0; a < NR; ++a) {
                        const int l = rg + RG * a;
#pragma unroll
                        for (int w = 0; w < 4; ++w) acc[a][w] = l < dk ? decay * Hs[l * TW + 4 * cg + w] : T(0);
                    }
                }
            } else {
                delta_slab_product<T, SP, TW, RG, NR>(Xs, Vs + DELTA_SLAB * (st - n1 - 2 * n2) * TW, rg, cg, acc);
                if (st == nst - 1) {  // nobody reads H between its use in [K̂; Q̂] H and here
#pragma unroll
                    for (int a = 0; a < NR; ++a) {
                        const int l = rg + RG * a;
#pragma unroll
                        for (int w = 0; w < 4; ++w)
                            if (l < dk) Hs[l * TW + 4 * cg + w] = acc[a][w];
                    }
                }
            }
        }
    }
#pragma unroll
    for (int a = 0; a < NR; ++a) {
        const int l = rg + RG * a;
#pragma unroll
        for (int w = 0; w < 4; ++w) {
            const int j = j0 + 4 * cg + w;
            if (l < dk && j < dv) state[(s * dv + j) * dk + l] = acc[a][w];
        }
    }
}

// Declared with their launch bounds (≤ 128 registers: two blocks per SM, so that 64 sequences ×
// 4 value tiles are resident at once on an H100; the wide kernel, 8 rows × 4 columns per thread,
// one block per SM); the definitions below are the ones the loader instantiates.
// delta_chunk_carry takes 32 value columns per block, delta_chunk_carry_narrow 16 (twice the
// blocks, for batches too small to fill the GPU), delta_chunk_carry_wide 64.
#define DELTA_CARRY_PARAMS(T)                                                                              \
    long long count, int length, int nc, int C, int dk, int dv,                                            \
    const T* __restrict__ k,      /* (count, nc, C, dk): keys, zero-padded */                              \
    const T* __restrict__ q,      /* (count, nc, C, dk): queries, zero-padded */                           \
    const T* __restrict__ tc,     /* (count, nc, C, C): T_c */                                             \
    const T* __restrict__ qk,     /* (count, nc, C, C): Q Kᵀ, unmasked */                                  \
    const T* __restrict__ v,      /* (count, length, dv) */                                                \
    const T* __restrict__ eg,     /* (count, nc, C): e^{g}, or null (ungated) */                           \
    const T* __restrict__ el,     /* (count, nc, C): e^{g_last − g}, or null */                            \
    const double* __restrict__ g, /* (count, nc, C): in-chunk cumsum of log α, or null */                  \
    const T* __restrict__ last,   /* (count, nc): e^{g_last}, or null */                                   \
    const T* __restrict__ h0,     /* (count, dv, dk) */                                                    \
    T* __restrict__ out,          /* (count, length, dv) */                                                \
    T* __restrict__ state         /* (count, dv, dk) */
template <class T> __global__ void __launch_bounds__(256, 2) delta_chunk_carry(DELTA_CARRY_PARAMS(T));
template <class T> __global__ void __launch_bounds__(256, 2) delta_chunk_carry_narrow(DELTA_CARRY_PARAMS(T));
template <class T> __global__ void __launch_bounds__(256, 1) delta_chunk_carry_wide(DELTA_CARRY_PARAMS(T));

template <typename T>
__global__ void delta_chunk_carry(DELTA_CARRY_PARAMS(T)) {
    STRUCTLA_DYNAMIC_SHARED(smem);
    delta_carry<T, DELTA_TILE>(count, length, nc, C, dk, dv, k, q, tc, qk, v, eg, el, g, last, h0, out, state, smem);
}

template <typename T>
__global__ void delta_chunk_carry_narrow(DELTA_CARRY_PARAMS(T)) {
    STRUCTLA_DYNAMIC_SHARED(smem);
    delta_carry<T, DELTA_TILE / 2>(count, length, nc, C, dk, dv, k, q, tc, qk, v, eg, el, g, last, h0, out, state,
                                   smem);
}

template <typename T>
__global__ void delta_chunk_carry_wide(DELTA_CARRY_PARAMS(T)) {
    STRUCTLA_DYNAMIC_SHARED(smem);
    delta_carry<T, DELTA_TILE * 2>(count, length, nc, C, dk, dv, k, q, tc, qk, v, eg, el, g, last, h0, out, state,
                                   smem);
}

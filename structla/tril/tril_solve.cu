// The chunked solve T x = b in one pass (MATH A2), float32, chunks of 64, d ≤ 128: one thread
// block per (sequence, 64 columns of b) walks the chunks in order with the d×64 state in
// registers (and a copy in shared memory):
//   r   = B_I − diag(a) Q_I Z        (a_i = Γ from the previous chunk's end to row i)
//   X_I = T_II⁻¹ r                   (T_II formed from Q_I, K_I on chip and inverted there)
//   Z  ← last·Z + K_Iᵀ diag(f) X_I   (f_i = Γ from row i to the chunk's end, last = Γ across it)
// 4·C·d·64 + C²·64 flops per chunk and tile for the products, C²·d + C³/3 for T_II⁻¹; no d×d
// step matrix. T_II⁻¹ as in tril_block_inv_small (16×16 diagonal blocks by substitution, then
// merges X₂₁ = −X₂₂(L₂₁X₁₁)), in float32: each thread block needs its chunks' inverses once, so
// forming them here costs less than reading them back from a separate batched kernel. Operands
// are fetched into registers during a long product before their use (K_I and B_I during the
// first, Q_{I+1} during the last), so the loads hide behind arithmetic; log-decays are summed in
// double (chunk-local, exponents ≤ 0).

// structla-dtypes: float32

#ifndef STRUCTLA_DYNAMIC_SHARED
#define STRUCTLA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

constexpr int FS_CHUNK = 64;    // chunk length
constexpr int FS_D = 128;       // largest state dimension d
constexpr int FS_TILE = 64;     // columns of b per thread block
constexpr int FS_THREADS = 256;
// Row strides (floats) of the shared arrays: multiples of 4 (16-byte rows for float4) that are
// not multiples of 32, so the rows a warp reads at once fall on different banks.
constexpr int FS_QS = FS_D + 4;      // Q_I and K_I: C × d
constexpr int FS_ZS = FS_TILE + 4;   // Z: d × tile; T_II⁻¹: C × C; r and X: C × tile
// Shared memory in floats (mirrored by _cupy._SOLVE_SHARED_BYTES): Z, Q, K, T⁻¹, X, the decay
// factors a, f (C each) and last (padded to 4), then the chunk-local sums (C doubles).
constexpr int FS_SHARED_FLOATS =
    FS_D * FS_ZS + 2 * FS_CHUNK * FS_QS + 2 * FS_CHUNK * FS_ZS + 2 * FS_CHUNK + 4 + 2 * FS_CHUNK;

__device__ inline float4 fs_load(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ inline void fs_store(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ inline float fs_at(const float4& v, int u) {
    return u == 0 ? v.x : u == 1 ? v.y : u == 2 ? v.z : v.w;
}

// Declared with its launch bounds (one block per SM: its shared memory is 135 KiB).
template <class T>
__global__ void __launch_bounds__(256, 1) tril_chunk_solve(
    long long, int, int, int, int, const T* __restrict__, const T* __restrict__,
    const T* __restrict__, const T* __restrict__, const T* __restrict__, T* __restrict__);

template <typename T>
__global__ void tril_chunk_solve(long long count, int n, int nc, int d, int m,
                                 const T* __restrict__ q,     // (count, nc·C, d), zero rows past n
                                 const T* __restrict__ k,     // (count, nc·C, d), zero rows past n
                                 const T* __restrict__ logd,  // (count, nc·C) or null, zeros past n
                                 const T* __restrict__ diag,  // (count, nc·C): λ, ones past n
                                 const T* __restrict__ b,     // (count, n, m)
                                 T* __restrict__ out) {       // (count, n, m)
    STRUCTLA_DYNAMIC_SHARED(smem);
    float* Zs = reinterpret_cast<float*>(smem);
    float* Qs = Zs + FS_D * FS_ZS;
    float* Ks = Qs + FS_CHUNK * FS_QS;
    float* Ts = Ks + FS_CHUNK * FS_QS;
    float* Xs = Ts + FS_CHUNK * FS_ZS;
    float* fa = Xs + FS_CHUNK * FS_ZS;
    float* ff = fa + FS_CHUNK;
    float* flast = ff + FS_CHUNK;
    double* cum = reinterpret_cast<double*>(flast + 4);  // chunk-local log-decay sums (C)
    float* tmp = Zs;  // merge scratch (32 × 32): Z lives in registers while T_II is inverted
    const long long s = blockIdx.x;
    if (s >= count) return;
    const int c0 = blockIdx.y * FS_TILE;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int col = c0 + 4 * tx;         // this thread's 4 columns of b
    const bool col_in = col < m;         // m is a multiple of 4
    const T* qs = q + s * (long long)nc * FS_CHUNK * d;
    const T* ks = k + s * (long long)nc * FS_CHUNK * d;
    const T* gs = logd == nullptr ? nullptr : logd + s * (long long)nc * FS_CHUNK;
    const T* bs = b + s * (long long)n * m;
    const T* ds = diag + s * (long long)nc * FS_CHUNK;
    T* os = out + s * (long long)n * m;

    // A C × d operand (Q_I or K_I) as 8 float4 per thread, zero columns past d.
    constexpr int OPS = FS_CHUNK * FS_D / 4 / FS_THREADS;
    auto fetch_op = [&](const T* base, int I, float4 (&v)[OPS]) {
#pragma unroll
        for (int e = 0; e < OPS; ++e) {
            const int idx = tid + e * FS_THREADS, row = idx / (FS_D / 4), c4 = 4 * (idx % (FS_D / 4));
            v[e] = c4 < d ? fs_load(base + ((long long)I * FS_CHUNK + row) * d + c4)
                          : make_float4(0, 0, 0, 0);
        }
    };
    auto store_op = [&](float* dst, const float4 (&v)[OPS]) {
#pragma unroll
        for (int e = 0; e < OPS; ++e) {
            const int idx = tid + e * FS_THREADS;
            fs_store(dst + (idx / (FS_D / 4)) * FS_QS + 4 * (idx % (FS_D / 4)), v[e]);
        }
    };
    // Decay factors of chunk I from its log-decays (threads < 64: g_lo = g[lane], g_hi = g[32 + lane]).
    auto factors = [&](float g_lo, float g_hi) {
        if (tid < 64) {
            const int lane = tid % 32;
            double lo = g_lo, hi = g_hi;
#pragma unroll
            for (int o = 1; o < 32; o *= 2) {
                const double a = __shfl_up_sync(0xffffffffu, lo, o);
                const double c = __shfl_up_sync(0xffffffffu, hi, o);
                if (lane >= o) { lo += a; hi += c; }
            }
            const double total_lo = __shfl_sync(0xffffffffu, lo, 31);
            const double end = total_lo + __shfl_sync(0xffffffffu, hi, 31);
            const double c_ = tid < 32 ? lo : total_lo + hi;
            fa[tid] = exp((float)c_);
            ff[tid] = exp((float)(end - c_));
            cum[tid] = c_;
            if (tid == 0) *flast = exp((float)end);
        }
    };
    float g_lo = 0, g_hi = 0;
    auto fetch_g = [&](int I) {
        if (gs != nullptr && tid < 64 && I < nc) {
            g_lo = gs[(long long)I * FS_CHUNK + tid % 32];
            g_hi = gs[(long long)I * FS_CHUNK + 32 + tid % 32];
        }
    };

    // Z = 0 (in registers; the first product is skipped); Q_0 and chunk 0's factors in shared memory.
    float z[8][4];
#pragma unroll
    for (int a = 0; a < 8; ++a)
#pragma unroll
        for (int u = 0; u < 4; ++u) z[a][u] = 0.0f;
    {
        float4 v[OPS];
        fetch_op(qs, 0, v);
        store_op(Qs, v);
    }
    if (gs != nullptr) {
        fetch_g(0);
        factors(g_lo, g_hi);
    } else if (tid < 64) {
        fa[tid] = 1.0f;
        ff[tid] = 1.0f;
        cum[tid] = 0.0;
        if (tid == 0) *flast = 1.0f;
    }
    __syncthreads();

    for (int I = 0; I < nc; ++I) {
        const int row0 = I * FS_CHUNK;
        const float last = *flast;  // chunk I + 1's factors overwrite it after the last product
        // ---- r = B_I − diag(a) Q_I Z (rows ty + 16a, columns col … col + 3) ----
        float4 kv[OPS], bv[4];
        fetch_op(ks, I, kv);
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int row = row0 + ty + 16 * a;
            bv[a] = col_in && row < n ? fs_load(bs + (long long)row * m + col) : make_float4(0, 0, 0, 0);
        }
        fetch_g(I + 1);
        float acc[4][4];
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int u = 0; u < 4; ++u) acc[a][u] = 0.0f;
        if (I > 0) {
#pragma unroll 2
            for (int r = 0; r < d; r += 4) {
                float4 qa[4], zv[4];
#pragma unroll
                for (int a = 0; a < 4; ++a) qa[a] = fs_load(Qs + (ty + 16 * a) * FS_QS + r);
#pragma unroll
                for (int v = 0; v < 4; ++v) zv[v] = fs_load(Zs + (r + v) * FS_ZS + 4 * tx);
#pragma unroll
                for (int v = 0; v < 4; ++v)
#pragma unroll
                    for (int a = 0; a < 4; ++a)
#pragma unroll
                        for (int u = 0; u < 4; ++u)
                            acc[a][u] = fmaf(fs_at(qa[a], v), fs_at(zv[v], u), acc[a][u]);
            }
        }
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const float f = fa[ty + 16 * a];
            fs_store(Xs + (ty + 16 * a) * FS_ZS + 4 * tx,
                     make_float4(bv[a].x - f * acc[a][0], bv[a].y - f * acc[a][1],
                                 bv[a].z - f * acc[a][2], bv[a].w - f * acc[a][3]));
        }
        store_op(Ks, kv);
        __syncthreads();
        // ---- T_II = diag(λ) + tril(Q_I K_Iᵀ ⊙ Γ, -1) into Ts (diagonal 1/λ), then inverted ----
        {
            float g4[4][4];
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int c = 0; c < 4; ++c) g4[a][c] = 0.0f;
#pragma unroll 2
            for (int r = 0; r < d; r += 4) {
                float4 qa[4], kc[4];
#pragma unroll
                for (int a = 0; a < 4; ++a) qa[a] = fs_load(Qs + (ty + 16 * a) * FS_QS + r);
#pragma unroll
                for (int c = 0; c < 4; ++c) kc[c] = fs_load(Ks + (tx + 16 * c) * FS_QS + r);
#pragma unroll
                for (int v = 0; v < 4; ++v)
#pragma unroll
                    for (int a = 0; a < 4; ++a)
#pragma unroll
                        for (int c = 0; c <= a; ++c)
                            g4[a][c] = fmaf(fs_at(qa[a], v), fs_at(kc[c], v), g4[a][c]);
            }
#pragma unroll
            for (int a = 0; a < 4; ++a) {
                const int i = ty + 16 * a;
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    const int j = tx + 16 * c;
                    float v = 0.0f;
                    if (i > j) v = g4[a][c] * exp((float)(cum[i] - cum[j]));
                    else if (i == j) v = 1.0f / ds[row0 + i];
                    Ts[i * FS_ZS + j] = v;
                }
            }
        }
        __syncthreads();
        {
            float y[16];
            const int p = tid / 16, c = tid % 16;
            if (p < 4) {
                const float* L = Ts + (16 * p) * FS_ZS + 16 * p;
#pragma unroll
                for (int i = 0; i < 16; ++i) {
                    float v = i == c ? 1.0f : 0.0f;
#pragma unroll
                    for (int l = 0; l < i; ++l) v = v - L[i * FS_ZS + l] * y[l];
                    y[i] = v * L[i * FS_ZS + i];
                }
            }
            __syncthreads();
            if (p < 4) {
                float* Y = Ts + (16 * p) * FS_ZS + 16 * p;
#pragma unroll
                for (int i = 0; i < 16; ++i) Y[i * FS_ZS + c] = y[i];
            }
            __syncthreads();
        }
        {
            // merges X₂₁ = −X₂₂ (L₂₁ X₁₁) at s = 16 (two pairs) and 32: thread column J of 32,
            // rows i0 + 8t of the s rows
            const int J = tid % 32, i0 = tid / 32;
#pragma unroll
            for (int sz = 16; sz < 64; sz *= 2) {
                const int g = J / sz, j = J % sz;
                const int c0 = 2 * g * sz, r0 = c0 + sz;
                const int rows = sz / 8;
                float part[4];
#pragma unroll
                for (int t = 0; t < 4; ++t) part[t] = 0.0f;
#pragma unroll 4
                for (int l = 0; l < sz; ++l) {
                    const float x = Ts[(c0 + l) * FS_ZS + c0 + j];
#pragma unroll
                    for (int t = 0; t < 4; ++t)
                        if (t < rows) part[t] = fmaf(Ts[(r0 + i0 + 8 * t) * FS_ZS + c0 + l], x, part[t]);
                }
#pragma unroll
                for (int t = 0; t < 4; ++t)
                    if (t < rows) tmp[(i0 + 8 * t) * 32 + J] = part[t];
                __syncthreads();
#pragma unroll
                for (int t = 0; t < 4; ++t) part[t] = 0.0f;
#pragma unroll 4
                for (int l = 0; l < sz; ++l) {
                    const float x = tmp[l * 32 + J];
#pragma unroll
                    for (int t = 0; t < 4; ++t)
                        if (t < rows) part[t] = fmaf(Ts[(r0 + i0 + 8 * t) * FS_ZS + r0 + l], x, part[t]);
                }
#pragma unroll
                for (int t = 0; t < 4; ++t)
                    if (t < rows) Ts[(r0 + i0 + 8 * t) * FS_ZS + c0 + j] = -part[t];
                __syncthreads();
            }
        }
        // ---- X_I = T_II⁻¹ r (lower triangular: column block kb meets rows of blocks a ≥ kb) ----
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int u = 0; u < 4; ++u) acc[a][u] = 0.0f;
#pragma unroll
        for (int kb = 0; kb < 4; ++kb) {
#pragma unroll 2
            for (int l = 16 * kb; l < 16 * kb + 16; l += 4) {
                float4 xv[4];
#pragma unroll
                for (int v = 0; v < 4; ++v) xv[v] = fs_load(Xs + (l + v) * FS_ZS + 4 * tx);
#pragma unroll
                for (int a = kb; a < 4; ++a) {
                    const float4 t4 = fs_load(Ts + (ty + 16 * a) * FS_ZS + l);
#pragma unroll
                    for (int v = 0; v < 4; ++v)
#pragma unroll
                        for (int u = 0; u < 4; ++u)
                            acc[a][u] = fmaf(fs_at(t4, v), fs_at(xv[v], u), acc[a][u]);
                }
            }
        }
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int row = row0 + ty + 16 * a;
            if (col_in && row < n)
                fs_store(os + (long long)row * m + col,
                         make_float4(acc[a][0], acc[a][1], acc[a][2], acc[a][3]));
        }
        __syncthreads();  // every thread done reading r
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const float f = ff[ty + 16 * a];
            fs_store(Xs + (ty + 16 * a) * FS_ZS + 4 * tx,
                     make_float4(f * acc[a][0], f * acc[a][1], f * acc[a][2], f * acc[a][3]));
        }
        __syncthreads();
        // ---- Z ← last·Z + K_Iᵀ diag(f) X_I (rows 8ty … 8ty + 7 of Z) ----
        float4 qv[OPS];
        if (I + 1 < nc) fetch_op(qs, I + 1, qv);
#pragma unroll
        for (int a = 0; a < 8; ++a)
#pragma unroll
            for (int u = 0; u < 4; ++u) z[a][u] *= last;
#pragma unroll 4
        for (int i = 0; i < FS_CHUNK; ++i) {
            const float4 k0 = fs_load(Ks + i * FS_QS + 8 * ty);
            const float4 k1 = fs_load(Ks + i * FS_QS + 8 * ty + 4);
            const float4 xv = fs_load(Xs + i * FS_ZS + 4 * tx);
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    z[a][u] = fmaf(fs_at(k0, a), fs_at(xv, u), z[a][u]);
                    z[4 + a][u] = fmaf(fs_at(k1, a), fs_at(xv, u), z[4 + a][u]);
                }
        }
        if (I + 1 == nc) break;
        // Z, Q_I and the factors were last read before the barriers above
#pragma unroll
        for (int a = 0; a < 8; ++a)
            fs_store(Zs + (8 * ty + a) * FS_ZS + 4 * tx, make_float4(z[a][0], z[a][1], z[a][2], z[a][3]));
        store_op(Qs, qv);
        if (gs != nullptr) factors(g_lo, g_hi);
        __syncthreads();
    }
}

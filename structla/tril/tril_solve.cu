// The chunked solve T x = b in one pass (MATH A2), float32, chunks of 64, d ≤ 128: one thread
// block per (sequence, 64 columns of b) walks the chunks in order with the d×64 state in
// registers (and a copy in shared memory):
//   r   = B_I − diag(a) Q_I Z        (a_i = Γ from the previous chunk's end to row i)
//   X_I = T_II⁻¹ r                   (T_II⁻¹ from tril_block_inv_small, lower triangular)
//   Z  ← last·Z + K_Iᵀ diag(f) X_I   (f_i = Γ from row i to the chunk's end, last = Γ across it)
// 4·C·d·64 + C²·64 flops per chunk and tile, no d×d step matrix. Operands are fetched into
// registers during a long product before their use (K_I and B_I during the first, Q_{I+1} and
// T⁻¹_{I+1,I+1} during the third), so the loads hide behind arithmetic; log-decays are summed
// in double (chunk-local, exponents ≤ 0).

// structla-dtypes: float32

#ifndef STRUCTLA_DYNAMIC_SHARED
#define STRUCTLA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

constexpr int FS_CHUNK = 64;    // chunk length (the block inverses' size)
constexpr int FS_D = 128;       // largest state dimension d
constexpr int FS_TILE = 64;     // columns of b per thread block
constexpr int FS_THREADS = 256;
// Row strides (floats) of the shared arrays: multiples of 4 (16-byte rows for float4) that are
// not multiples of 32, so the rows a warp reads at once fall on different banks.
constexpr int FS_QS = FS_D + 4;      // Q_I and K_I: C × d
constexpr int FS_ZS = FS_TILE + 4;   // Z: d × tile; T_II⁻¹: C × C; r and X: C × tile
// Shared memory in floats (mirrored by _cupy._SOLVE_SHARED_BYTES): Z, Q, K, T⁻¹, X, then the
// decay factors a, f (C each) and last.
constexpr int FS_SHARED_FLOATS =
    FS_D * FS_ZS + 2 * FS_CHUNK * FS_QS + 2 * FS_CHUNK * FS_ZS + 2 * FS_CHUNK + 4;

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
                                 const T* __restrict__ inv,   // (count, nc, C, C): T_II⁻¹
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
    // T_II⁻¹ (C × C) as 4 float4 per thread.
    auto fetch_inv = [&](int I, float4 (&v)[4]) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int idx = tid + e * FS_THREADS;
            v[e] = fs_load(inv + ((s * nc + I) * FS_CHUNK + idx / 16) * FS_CHUNK + 4 * (idx % 16));
        }
    };
    auto store_inv = [&](const float4 (&v)[4]) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int idx = tid + e * FS_THREADS;
            fs_store(Ts + (idx / 16) * FS_ZS + 4 * (idx % 16), v[e]);
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
            const double cum = tid < 32 ? lo : total_lo + hi;
            fa[tid] = exp((float)cum);
            ff[tid] = exp((float)(end - cum));
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
        float4 v[OPS], t[4];
        fetch_op(qs, 0, v);
        fetch_inv(0, t);
        store_op(Qs, v);
        store_inv(t);
    }
    if (gs != nullptr) {
        fetch_g(0);
        factors(g_lo, g_hi);
    } else if (tid < 64) {
        fa[tid] = 1.0f;
        ff[tid] = 1.0f;
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
        float4 qv[OPS], tv[4];
        if (I + 1 < nc) {
            fetch_op(qs, I + 1, qv);
            fetch_inv(I + 1, tv);
        }
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
        // Z, Q_I, T⁻¹_II and the factors were last read before the barriers above
#pragma unroll
        for (int a = 0; a < 8; ++a)
            fs_store(Zs + (8 * ty + a) * FS_ZS + 4 * tx, make_float4(z[a][0], z[a][1], z[a][2], z[a][3]));
        store_op(Qs, qv);
        store_inv(tv);
        if (gs != nullptr) factors(g_lo, g_hi);
        __syncthreads();
    }
}

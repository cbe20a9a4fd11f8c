// Mamba's selective scan for real states, N ≤ 16, time-varying B and C (MATH E2): the
// sequential form, with enough channels that every lane can walk the whole sequence.
//
// Four lanes share a channel, lane q holding the states q, q + 4, q + 8, q + 12 in registers
// and stepping through time: h = exp(Δa)·h + Δu·B, and its part of C·h per step. No scan over
// lanes is needed (that costs scan.cu's chunked kernel about a third of its instructions):
// one exponential, two multiplies and two multiply-adds per (step, state), the exponential
// on the MUFU pipe being the bound. Every 16 steps the four partial sums of a step are added
// through shared memory (a transpose: each lane ends with 4 whole steps of its channel) and
// written with D·u and the silu(z) gate.
//
// Inputs arrive in chunks of 128 bytes of steps per row: Δ, u (and z) rows of the warp's 8
// channels and the B, C rows of the block, copied asynchronously into shared memory one
// chunk ahead of the computation. The block's channels share one group of B and C (the host
// guarantees it).
// structla-dtypes: float32 float64

#ifndef STRUCTLA_DYNAMIC_SHARED
#define STRUCTLA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace seq_detail {

constexpr int MAX_STATES = 16;
constexpr int QUARTERS = 4;                 // lanes per channel (4 or 8; _cupy.py's channels: 32 / QUARTERS)
constexpr int PER_LANE = MAX_STATES / QUARTERS;  // states per lane
constexpr int CHANNELS = 32 / QUARTERS;     // channels per warp
constexpr int GROUP = 16;                   // steps whose partial sums are added at a time
constexpr int ROW_BYTES = 128 + 16;         // a row of one chunk, padded so that rows fall on distinct banks
constexpr int BUFFERS = 2;                  // chunks in shared memory: chunk s + 1 loads while s computes
constexpr int IO_ARRAYS = 3;                // Δ, u, z rows
// Blocks of ≤ 4 warps resident per SM (the register cap of __launch_bounds__) so that a grid of
// 8 × 1536 channels runs in one wave: 384 blocks, 3 an SM (≤ 168 registers) with 4 lanes a
// channel; 768 blocks, 6 an SM (≤ 80 registers, 35.6 KB of shared memory each) with 8.
constexpr int BLOCKS_PER_SM = QUARTERS == 8 ? 6 : 3;

// Bits of `flags` (as the chunked kernel's: _SEL_VEC_IO … _SEL_HAS_H0 in _cupy.py).
enum SeqFlag {
    SEQ_VEC_IO = 1,     // u, delta, z, y allow 16-byte access
    SEQ_VEC_BC = 2,     // so do B and C
    SEQ_HAS_D = 4,
    SEQ_HAS_Z = 8,
    SEQ_HAS_BIAS = 16,
    SEQ_SOFTPLUS = 32,
    SEQ_HAS_H0 = 64,
};

template <typename R> struct Lay {
    static constexpr int STEPS = 128 / sizeof(R);      // steps per chunk
    static constexpr int ROW = ROW_BYTES / sizeof(R);  // elements per padded row
    static constexpr int PACK = 16 / sizeof(R);        // elements per 16 bytes
    static constexpr int SCRATCH = GROUP + PACK;       // a lane's padded row of partial sums
    static constexpr int OWN = GROUP / QUARTERS;       // steps of a group whose sum a lane writes
    static constexpr int OUT = OWN < PACK ? OWN : PACK;  // elements per access of those steps
};

template <typename R, int W> struct alignas(W * sizeof(R)) Vec {
    R v[W];
};
template <typename R> using Pack = Vec<R, 16 / sizeof(R)>;

// Shared memory of a block of `warps` warps, in elements of R (the host's _sequential_shared).
template <typename R> struct Smem {
    static constexpr int BC = BUFFERS * 2 * MAX_STATES * Lay<R>::ROW;  // [buffer][B, C][state][step]
    static constexpr int IO = BUFFERS * IO_ARRAYS * CHANNELS * Lay<R>::ROW;  // [buffer][Δ, u, z][channel][step]
    static constexpr int DU = CHANNELS * Lay<R>::ROW;                  // Δ·u of the current chunk
    static constexpr int PARTIAL = 32 * Lay<R>::SCRATCH;                // [lane][step of the group]
    static constexpr int WARP = IO + DU + PARTIAL;
};

// 2^x in one MUFU instruction for float (results below the normal range flush to 0, so
// exp(Δa) underflows cleanly); double: the accurate library exp of x·ln 2 is avoided by
// keeping the rate unscaled.
__device__ inline float rate_of(float a) { return a * 1.4426950408889634f; }
__device__ inline double rate_of(double a) { return a; }
__device__ inline float step_exp(float x) {
#ifdef __CUDA_ARCH__
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
#else
    return exp2f(x);
#endif
}
__device__ inline double step_exp(double x) { return exp(x); }

__device__ inline float mad(float a, float b, float c) { return fmaf(a, b, c); }
__device__ inline double mad(double a, double b, double c) { return fma(a, b, c); }

template <typename R> __device__ inline R softplus(R x) { return x > R(20) ? x : log1p(exp(x)); }
template <typename R> __device__ inline R silu(R x) { return x / (R(1) + exp(-x)); }

// 16 bytes global → shared without passing through registers (cp.async, sm_80+); a thread's
// copies form one group per commit() and are complete after wait<k>() but for the last k groups.
__device__ inline void copy16(void* shared_dst, const void* global_src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned dst;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(dst) : "l"(shared_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(global_src) : "memory");
#else
    *static_cast<Pack<float>*>(shared_dst) = *static_cast<const Pack<float>*>(global_src);
#endif
}
__device__ inline void commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
template <int LEFT> __device__ inline void wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" ::"n"(LEFT) : "memory");
#endif
}

// The 16 bytes of a row from step t: an asynchronous copy where allowed, else element by
// element; steps at or past L are 0 (Δ = 0 and Δu = 0 leave the state unchanged).
template <typename R>
__device__ inline void stage_pack(R* dst, const R* src, long long t, long long L, int vec) {
    constexpr int P = Lay<R>::PACK;
    if (vec && t < L) {
        copy16(dst, src);
    } else {
#pragma unroll
        for (int e = 0; e < P; ++e) dst[e] = t + e < L ? src[e] : R(0);
    }
}

}  // namespace seq_detail

// Grid (D / (CHANNELS·warps), batch), blocks of `warps` warps; warp w of block x owns the
// channels CHANNELS·(x·warps + w) … + CHANNELS − 1 of batch blockIdx.y, lane i the channel
// CHANNELS·(…) + i / QUARTERS and the states i % QUARTERS + QUARTERS·j (j < PER_LANE; states
// ≥ N are padding: rate 0, B = C = 0). With 4 lanes a channel: 8 channels a warp, lane i the
// states i % 4, + 4, + 8, + 12. B/C element (b, d, n, t) is
// at b·sb + (d / per)·sg + n·L + t (sb = 0: shared across the batch). `state` (batch, D, N)
// holds h0 on entry (with SEQ_HAS_H0) and the last state on exit. Dskip, z, bias are not read
// unless their flag is set (any pointer will do then).
template <typename T>
__launch_bounds__(128, seq_detail::BLOCKS_PER_SM) __global__ void selective_scan_sequential(
    const T* __restrict__ u, const T* __restrict__ delta, const T* __restrict__ A,
    const T* __restrict__ B, const T* __restrict__ C, const T* __restrict__ Dskip,
    const T* __restrict__ z, const T* __restrict__ bias, T* __restrict__ state, T* __restrict__ y,
    int dim, long long L, int N, long long sbB, long long sgB, int perB, long long sbC, long long sgC,
    int perC, int flags);

template <typename T>
__global__ void selective_scan_sequential(
    const T* __restrict__ u, const T* __restrict__ delta, const T* __restrict__ A,
    const T* __restrict__ B, const T* __restrict__ C, const T* __restrict__ Dskip,
    const T* __restrict__ z, const T* __restrict__ bias, T* __restrict__ state, T* __restrict__ y,
    int dim, long long L, int N, long long sbB, long long sgB, int perB, long long sbC, long long sgC,
    int perC, int flags) {
    using namespace seq_detail;
    constexpr int STEPS = Lay<T>::STEPS, ROW = Lay<T>::ROW, PACK = Lay<T>::PACK, SCRATCH = Lay<T>::SCRATCH;
    STRUCTLA_DYNAMIC_SHARED(smem);
    T* bc = reinterpret_cast<T*>(smem);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int c = lane / QUARTERS, q = lane % QUARTERS;
    T* io = bc + Smem<T>::BC + warp * Smem<T>::WARP;  // this warp's rows
    T* du = io + Smem<T>::IO;
    T* partial = du + Smem<T>::DU;

    const long long b = blockIdx.y;
    const int first_channel = (blockIdx.x * warps + warp) * CHANNELS;  // of this warp
    const int d = first_channel + c;
    const long long row = (b * dim + d) * L;
    const int block_channel = blockIdx.x * warps * CHANNELS;
    const T* Bb = B + b * sbB + (long long)(block_channel / perB) * sgB;
    const T* Cb = C + b * sbC + (long long)(block_channel / perC) * sgC;
    const int vec_io = flags & SEQ_VEC_IO, vec_bc = flags & SEQ_VEC_BC;
    const bool has_z = flags & SEQ_HAS_Z;
    const T bias_d = flags & SEQ_HAS_BIAS ? bias[d] : T(0);
    const T D_d = flags & SEQ_HAS_D ? Dskip[d] : T(0);

    T h[PER_LANE], rate[PER_LANE];
#pragma unroll
    for (int j = 0; j < PER_LANE; ++j) {
        const int n = q + QUARTERS * j;
        rate[j] = n < N ? rate_of(A[(long long)d * N + n]) : T(0);
        h[j] = n < N && flags & SEQ_HAS_H0 ? state[(b * dim + d) * N + n] : T(0);
    }
    // The B and C rows of the padding states stay 0 in every buffer.
    for (int i = threadIdx.x; i < BUFFERS * 2 * (MAX_STATES - N) * ROW; i += blockDim.x) {
        const int per_buffer = (MAX_STATES - N) * ROW;
        const int slab = i / per_buffer, k = i % per_buffer;  // slab = buffer·2 + array
        bc[(slab * MAX_STATES + N) * ROW + k] = T(0);
    }

    // Chunk s into buffer `buffer`: the block's B/C rows (all threads), this warp's Δ, u, z rows.
    // A row of a chunk is 8 packs of 16 bytes; thread i copies pack i % 8 of the rows i / 8,
    // i / 8 + threads / 8, … (of the warp's rows: 4 per pass, CHANNELS / 4 passes per array). Only the start
    // time moves from chunk to chunk.
    constexpr int PACKS = STEPS / PACK;
    constexpr int PASSES = CHANNELS / (32 / PACKS);  // of the warp over its rows, per array
    static_assert(PACKS == 8 && PASSES * (32 / PACKS) == CHANNELS, "whole passes of a warp cover its rows");
    const int pack = (threadIdx.x % PACKS) * PACK;  // first step of this thread's pack in the row
    const int arrays = has_z ? 3 : 2;
    const T* io_src[IO_ARRAYS][PASSES];
    int io_dst[PASSES];
#pragma unroll
    for (int half = 0; half < PASSES; ++half) {
        const int ch = lane / PACKS + half * (32 / PACKS);
        const long long offset = (b * dim + first_channel + ch) * L + pack;
        io_src[0][half] = delta + offset;
        io_src[1][half] = u + offset;
        io_src[2][half] = z + offset;  // read only with SEQ_HAS_Z
        io_dst[half] = ch * ROW + pack;
    }
    auto stage = [&](long long s, int buffer) {
        const long long t0 = s * STEPS, t = t0 + pack;
        const bool whole = t0 + STEPS <= L;  // every pack of the chunk lies before L
        for (int row = threadIdx.x / PACKS; row < 2 * N; row += blockDim.x / PACKS) {  // N of B, N of C
            const int arr = row >= N, n = row - arr * N;
            T* dst = bc + ((buffer * 2 + arr) * MAX_STATES + n) * ROW + pack;
            const T* src = (arr ? Cb : Bb) + n * L + t;
            if (vec_bc && whole) copy16(dst, src);
            else stage_pack(dst, src, t, L, vec_bc);
        }
        T* rows = io + buffer * IO_ARRAYS * CHANNELS * ROW;
#pragma unroll
        for (int arr = 0; arr < IO_ARRAYS; ++arr) {
            if (arr >= arrays) break;
#pragma unroll
            for (int half = 0; half < PASSES; ++half) {
                T* dst = rows + arr * CHANNELS * ROW + io_dst[half];
                if (vec_io && whole) copy16(dst, io_src[arr][half] + t0);
                else stage_pack(dst, io_src[arr][half] + t0, t, L, vec_io);
            }
        }
    };

    // Chunk s + BUFFERS − 1 is requested before chunk s is computed; a thread's copies form one
    // group per chunk (empty past the end, so that the count of groups in flight is uniform).
    const long long chunks = (L + STEPS - 1) / STEPS;
    for (int s = 0; s < BUFFERS - 1; ++s) {
        if (s < chunks) stage(s, s);
        commit();
    }
    for (long long s = 0; s < chunks; ++s) {
        const int buffer = s % BUFFERS;
        if (s + BUFFERS - 1 < chunks) stage(s + BUFFERS - 1, (s + BUFFERS - 1) % BUFFERS);
        commit();
        wait<BUFFERS - 1>();
        __syncthreads();  // chunk s is in place for the whole block
        const long long t0 = s * STEPS;
        T* dt = io + (buffer * IO_ARRAYS + 0) * CHANNELS * ROW + c * ROW;
        const T* uu = io + (buffer * IO_ARRAYS + 1) * CHANNELS * ROW + c * ROW;
        const T* zz = io + (buffer * IO_ARRAYS + 2) * CHANNELS * ROW + c * ROW;
        T* duc = du + c * ROW;
        // Δ (bias, softplus) and Δ·u, once per element: lane q of a channel takes a quarter of the steps.
        constexpr int QUARTER = STEPS / QUARTERS;
        static_assert(QUARTER % PACK == 0 && STEPS % GROUP == 0, "whole packs per lane, whole groups per chunk");
#pragma unroll
        for (int k0 = q * QUARTER; k0 < (q + 1) * QUARTER; k0 += PACK) {
            Pack<T> dv = *reinterpret_cast<const Pack<T>*>(dt + k0);
            const Pack<T> uv = *reinterpret_cast<const Pack<T>*>(uu + k0);
            Pack<T> w;
#pragma unroll
            for (int r = 0; r < PACK; ++r) {
                T step = dv.v[r] + bias_d;
                if (flags & SEQ_SOFTPLUS) step = softplus(step);
                if (t0 + k0 + r >= L) step = T(0);
                dv.v[r] = step;
                w.v[r] = step * uv.v[r];
            }
            *reinterpret_cast<Pack<T>*>(dt + k0) = dv;
            *reinterpret_cast<Pack<T>*>(duc + k0) = w;
        }
        __syncwarp();
        const T* tB = bc + (buffer * 2 * MAX_STATES + q) * ROW;
        const T* tC = tB + MAX_STATES * ROW;
#pragma unroll 1
        for (int g = 0; g < STEPS; g += GROUP) {
            // The group's exponentials, independent of the recurrence (the compiler interleaves
            // them with it; up to 168 registers leave it room to run them well ahead).
            T da[PER_LANE][GROUP];
#pragma unroll
            for (int k0 = 0; k0 < GROUP; k0 += PACK) {
                const Pack<T> dtp = *reinterpret_cast<const Pack<T>*>(dt + g + k0);
#pragma unroll
                for (int j = 0; j < PER_LANE; ++j)
#pragma unroll
                    for (int r = 0; r < PACK; ++r) da[j][k0 + r] = step_exp(dtp.v[r] * rate[j]);
            }
            T part[GROUP];
#pragma unroll
            for (int k0 = 0; k0 < GROUP; k0 += PACK) {
                const Pack<T> dup = *reinterpret_cast<const Pack<T>*>(duc + g + k0);
#pragma unroll
                for (int j = 0; j < PER_LANE; ++j) {
                    const Pack<T> bp = *reinterpret_cast<const Pack<T>*>(tB + QUARTERS * j * ROW + g + k0);
                    const Pack<T> cp = *reinterpret_cast<const Pack<T>*>(tC + QUARTERS * j * ROW + g + k0);
#pragma unroll
                    for (int r = 0; r < PACK; ++r) {
                        const int k = k0 + r;
                        h[j] = mad(da[j][k], h[j], dup.v[r] * bp.v[r]);
                        part[k] = j == 0 ? cp.v[r] * h[j] : mad(cp.v[r], h[j], part[k]);
                    }
                }
            }
            // The four lanes of a channel add their partial sums: lane q gets steps 4q … 4q + 3.
            T* mine = partial + lane * SCRATCH;
#pragma unroll
            for (int k0 = 0; k0 < GROUP; k0 += PACK) {
                Pack<T> v;
#pragma unroll
                for (int r = 0; r < PACK; ++r) v.v[r] = part[k0 + r];
                *reinterpret_cast<Pack<T>*>(mine + k0) = v;
            }
            __syncwarp();
            constexpr int OWN = Lay<T>::OWN, W = Lay<T>::OUT;
            using Out = Vec<T, W>;
            T out[OWN];
#pragma unroll
            for (int e = 0; e < OWN; ++e) out[e] = T(0);
#pragma unroll
            for (int from = 0; from < QUARTERS; ++from) {
                const T* theirs = partial + (c * QUARTERS + from) * SCRATCH + q * OWN;
#pragma unroll
                for (int e0 = 0; e0 < OWN; e0 += W) {
                    const Out v = *reinterpret_cast<const Out*>(theirs + e0);
#pragma unroll
                    for (int r = 0; r < W; ++r) out[e0 + r] += v.v[r];
                }
            }
            __syncwarp();  // the partial sums are overwritten by the next group
            const int k = g + q * OWN;  // chunk step of out[0]
            if (flags & SEQ_HAS_D) {
#pragma unroll
                for (int e0 = 0; e0 < OWN; e0 += W) {
                    const Out v = *reinterpret_cast<const Out*>(uu + k + e0);
#pragma unroll
                    for (int r = 0; r < W; ++r) out[e0 + r] = mad(D_d, v.v[r], out[e0 + r]);
                }
            }
            if (has_z) {
#pragma unroll
                for (int e0 = 0; e0 < OWN; e0 += W) {
                    const Out v = *reinterpret_cast<const Out*>(zz + k + e0);
#pragma unroll
                    for (int r = 0; r < W; ++r) out[e0 + r] *= silu(v.v[r]);
                }
            }
            const long long t = t0 + k;
            if (vec_io) {
#pragma unroll
                for (int e0 = 0; e0 < OWN; e0 += W) {
                    if (t + e0 >= L) break;  // L is whole packs here
                    Out v;
#pragma unroll
                    for (int r = 0; r < W; ++r) v.v[r] = out[e0 + r];
                    *reinterpret_cast<Out*>(y + row + t + e0) = v;
                }
            } else {
#pragma unroll
                for (int e = 0; e < OWN; ++e)
                    if (t + e < L) y[row + t + e] = out[e];
            }
        }
        __syncthreads();  // everyone is done with this buffer before the next chunk is staged into it
    }
#pragma unroll
    for (int j = 0; j < PER_LANE; ++j) {
        const int n = q + QUARTERS * j;
        if (n < N) state[(b * dim + d) * N + n] = h[j];
    }
}

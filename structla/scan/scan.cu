// Linear recurrences on the GPU (MATH E1, E2).
//
// Elements (a, b) of the recurrence h = a·h_prev + b compose as
// (a2, b2)•(a1, b1) = (a2·a1, a2·b1 + b2) (first 1, then 2); every scan below is
// a sequence of such compositions: thread-local over a few consecutive steps,
// warp-wide with shuffles, block-wide through shared memory, and across chunks
// of the sequence through a carried state.
#include <structla/complex.cuh>

namespace scan_detail {

constexpr unsigned FULL = 0xffffffffu;

template <typename T> __device__ inline T shfl_up(T v, int d) { return __shfl_up_sync(FULL, v, d); }
template <typename T> __device__ inline sl::complex<T> shfl_up(sl::complex<T> v, int d) {
    return {__shfl_up_sync(FULL, v.re, d), __shfl_up_sync(FULL, v.im, d)};
}
template <typename T> __device__ inline T shfl(T v, int lane) { return __shfl_sync(FULL, v, lane); }
template <typename T> __device__ inline sl::complex<T> shfl(sl::complex<T> v, int lane) {
    return {__shfl_sync(FULL, v.re, lane), __shfl_sync(FULL, v.im, lane)};
}

// Inclusive scan of (a, b) pairs over the 32 lanes of a warp (Hillis–Steele, 5 steps).
template <typename T> __device__ inline void warp_inclusive(T& a, T& b, int lane) {
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
        T pa = shfl_up(a, offset);
        T pb = shfl_up(b, offset);
        if (lane >= offset) {
            b = a * pb + b;
            a = a * pa;
        }
    }
}

// Exclusive version: lane i gets the composition of lanes 0 … i−1 (identity for lane 0).
template <typename T> __device__ inline void warp_exclusive_from_inclusive(T ia, T ib, int lane, T& ea, T& eb) {
    ea = shfl_up(ia, 1);
    eb = shfl_up(ib, 1);
    if (lane == 0) {
        ea = T(1);
        eb = T(0);
    }
}

// Block-wide exclusive scan of the per-thread aggregates (a, b) in thread order.
// sa/sb: 32 elements of shared memory each. Returns the block total in (ta, tb).
template <typename T>
__device__ inline void block_exclusive(T& a, T& b, T* sa, T* sb, T& ta, T& tb) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    T ia = a, ib = b;
    warp_inclusive(ia, ib, lane);
    if (lane == 31) {
        sa[warp] = ia;
        sb[warp] = ib;
    }
    __syncthreads();
    if (warp == 0) {
        T wa = lane < warps ? sa[lane] : T(1);
        T wb = lane < warps ? sb[lane] : T(0);
        warp_inclusive(wa, wb, lane);
        sa[lane] = wa;
        sb[lane] = wb;
    }
    __syncthreads();
    T ea, eb;
    warp_exclusive_from_inclusive(ia, ib, lane, ea, eb);
    if (warp > 0) {
        // Earlier warps first, then the earlier lanes of this warp.
        T pa = sa[warp - 1], pb = sb[warp - 1];
        eb = ea * pb + eb;
        ea = ea * pa;
    }
    a = ea;
    b = eb;
    ta = sa[warps - 1];
    tb = sb[warps - 1];
    __syncthreads();
}

// Position s of the scan order → time index (reverse scans run from the end).
__device__ inline long long time_index(long long s, long long L, int reverse) { return reverse ? L - 1 - s : s; }

constexpr int LINEAR_ITEMS = 8;

// Aggregate of the LINEAR_ITEMS consecutive scan positions owned by this thread.
template <typename T>
__device__ inline void thread_aggregate(const T* a, const T* b, long long first, long long L, int reverse,
                                        T& ga, T& gb) {
    ga = T(1);
    gb = T(0);
#pragma unroll
    for (int k = 0; k < LINEAR_ITEMS; ++k) {
        long long s = first + k;
        if (s < L) {
            long long t = time_index(s, L, reverse);
            T at = a[t];
            gb = at * gb + b[t];
            ga = at * ga;
        }
    }
}

}  // namespace scan_detail

// ---------------------------------------------------------------- linear_scan
// Rows of length L, contiguous, time last. Grid (rows, chunks), chunk = blockDim.x · 8 steps.

// Pass 1 (only when a row has several chunks): each block's aggregate of its chunk.
template <typename T>
__global__ void linear_scan_chunk_reduce(const T* __restrict__ a, const T* __restrict__ b, long long L,
                                         int reverse, T* __restrict__ agg_a, T* __restrict__ agg_b) {
    using namespace scan_detail;
    __shared__ __align__(16) unsigned char raw[2 * 32 * sizeof(T)];
    T* sa = reinterpret_cast<T*>(raw);
    T* sb = sa + 32;
    const long long row = blockIdx.x;
    const long long chunk = blockIdx.y;
    const long long chunk_len = (long long)blockDim.x * LINEAR_ITEMS;
    const T* ar = a + row * L;
    const T* br = b + row * L;
    T ga, gb, ta, tb;
    thread_aggregate(ar, br, chunk * chunk_len + (long long)threadIdx.x * LINEAR_ITEMS, L, reverse, ga, gb);
    block_exclusive(ga, gb, sa, sb, ta, tb);
    if (threadIdx.x == 0) {
        agg_a[row * gridDim.y + chunk] = ta;
        agg_b[row * gridDim.y + chunk] = tb;
    }
}

// Pass 2: the state entering every chunk, one thread per row, sequential over chunks.
template <typename T>
__global__ void linear_scan_carry(const T* __restrict__ agg_a, const T* __restrict__ agg_b,
                                  const T* __restrict__ h0, long long rows, int chunks,
                                  T* __restrict__ carry) {
    const long long row = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (row >= rows) return;
    T h = h0[row];
    for (int c = 0; c < chunks; ++c) {
        carry[row * chunks + c] = h;
        h = agg_a[row * chunks + c] * h + agg_b[row * chunks + c];
    }
}

// Pass 3: scan every chunk from its entering state; carry is (rows, chunks).
template <typename T>
__global__ void linear_scan_chunk_apply(const T* __restrict__ a, const T* __restrict__ b,
                                        const T* __restrict__ carry, long long L, int reverse,
                                        T* __restrict__ out) {
    using namespace scan_detail;
    __shared__ __align__(16) unsigned char raw[2 * 32 * sizeof(T)];
    T* sa = reinterpret_cast<T*>(raw);
    T* sb = sa + 32;
    const long long row = blockIdx.x;
    const long long chunk = blockIdx.y;
    const long long chunk_len = (long long)blockDim.x * LINEAR_ITEMS;
    const long long first = chunk * chunk_len + (long long)threadIdx.x * LINEAR_ITEMS;
    const T* ar = a + row * L;
    const T* br = b + row * L;
    T* orow = out + row * L;
    T ga, gb, ta, tb;
    thread_aggregate(ar, br, first, L, reverse, ga, gb);
    block_exclusive(ga, gb, sa, sb, ta, tb);
    T h = ga * carry[row * gridDim.y + chunk] + gb;
#pragma unroll
    for (int k = 0; k < LINEAR_ITEMS; ++k) {
        long long s = first + k;
        if (s < L) {
            long long t = time_index(s, L, reverse);
            h = ar[t] * h + br[t];
            orow[t] = h;
        }
    }
}

// ------------------------------------------------------------- selective_scan

// Dynamic shared memory of the block (a macro so that tests/test_scan_cuda_emulation.py can run
// the kernel as host C++ with one host thread per CUDA thread).
#ifndef STRUCTLA_DYNAMIC_SHARED
#define STRUCTLA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace scan_detail {

// 16 bytes: what one vector load or store instruction moves.
template <typename V> struct alignas(16) Pack {
    V v[16 / sizeof(V)];
};

// Work split of selective_scan_chunked for state type T: a lane owns ITEMS consecutive steps
// (64 bytes of states), a warp a chunk of 32·ITEMS steps. In shared memory a lane's steps
// are padded by 16 bytes (SEG elements), so that the 16-byte reads of 8 consecutive lanes
// (80-byte stride) fall on distinct banks.
template <typename T> struct Sel {
    static constexpr int ITEMS = 64 / sizeof(T);
    static constexpr int CHUNK = 32 * ITEMS;
    static constexpr int SEG = ITEMS + 16 / sizeof(T);
};
constexpr int SEL_STATES = 4;  // states per staged tile of B and C

// Bits of selective_scan_chunked's `flags` (_SEL_VEC_IO … _SEL_HAS_H0 in _cupy.py).
enum SelFlag {
    SEL_VEC_IO = 1,     // u, delta, z, y allow 16-byte access
    SEL_VEC_BC = 2,     // so do the time-varying of B and C
    SEL_HAS_D = 4,
    SEL_HAS_Z = 8,
    SEL_HAS_BIAS = 16,
    SEL_SOFTPLUS = 32,
    SEL_HAS_H0 = 64,    // `state` holds h0 (else the state starts at 0 and `state` is only written)
};

// 2^x in one MUFU instruction for float (the rate carries the factor log2 e; results below
// the normal range flush to 0, so exp(ΔA) underflows cleanly).
__device__ inline float fast_exp2(float x) {
#ifdef __CUDA_ARCH__
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
#else
    return exp2f(x);
#endif
}

// exp(Δ·a) in the state type. float: 2^(Δ·a·log2 e) with the rate pre-scaled; double and
// complex: the accurate library exp.
__device__ inline float prepare_rate(float a) { return a * 1.4426950408889634f; }
__device__ inline double prepare_rate(double a) { return a; }
template <typename R> __device__ inline sl::complex<R> prepare_rate(sl::complex<R> a) { return a; }
__device__ inline float step_exp(float dt, float rate) { return fast_exp2(dt * rate); }
__device__ inline double step_exp(double dt, double rate) { return exp(dt * rate); }
template <typename R> __device__ inline sl::complex<R> step_exp(R dt, sl::complex<R> rate) {
    return sl::exp(dt * rate);
}

// acc + the contribution of one state to the output: C·h, or 2·Re(C·h) for a conjugate
// pair. An explicit fma: one instruction even where C comes from either branch of a test.
__device__ inline float output_acc(float acc, float c, float h) { return fmaf(c, h, acc); }
__device__ inline double output_acc(double acc, double c, double h) { return fma(c, h, acc); }
template <typename R> __device__ inline R output_acc(R acc, sl::complex<R> c, sl::complex<R> h) {
    return fma(2 * c.re, h.re, fma(-2 * c.im, h.im, acc));
}

template <typename R> __device__ inline R softplus(R x) { return x > R(20) ? x : log1p(exp(x)); }
template <typename R> __device__ inline R silu(R x) { return x / (R(1) + exp(-x)); }

// 16 bytes global → shared without passing through registers (cp.async, sm_80+); the
// copies of a thread complete at copy_wait().
__device__ inline void copy16(void* shared_dst, const void* global_src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned dst;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(dst) : "l"(shared_dst));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(global_src) : "memory");
#else
    *static_cast<Pack<float>*>(shared_dst) = *static_cast<const Pack<float>*>(global_src);
#endif
}
__device__ inline void copy_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

// Hint that a later chunk's inputs be brought into L2 while this chunk computes.
__device__ inline void prefetch_l2(const void* p) {
#ifdef __CUDA_ARCH__
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

// x[k] = p[first + k] for k < K (0 past L); 16-byte loads where allowed.
template <int K, typename R>
__device__ inline void load_steps(const R* __restrict__ p, long long first, long long L, int vec, R (&x)[K]) {
    constexpr int P = 16 / sizeof(R);
    if (vec && first + K <= L) {
#pragma unroll
        for (int q = 0; q < K / P; ++q) {
            const Pack<R> v = *reinterpret_cast<const Pack<R>*>(p + first + q * P);
#pragma unroll
            for (int r = 0; r < P; ++r) x[q * P + r] = v.v[r];
        }
    } else {
#pragma unroll
        for (int k = 0; k < K; ++k) x[k] = first + k < L ? p[first + k] : R(0);
    }
}

template <int K, typename R>
__device__ inline void store_steps(R* __restrict__ p, long long first, long long L, int vec, const R (&x)[K]) {
    constexpr int P = 16 / sizeof(R);
    if (vec && first + K <= L) {
#pragma unroll
        for (int q = 0; q < K / P; ++q) {
            Pack<R> v;
#pragma unroll
            for (int r = 0; r < P; ++r) v.v[r] = x[q * P + r];
            *reinterpret_cast<Pack<R>*>(p + first + q * P) = v;
        }
    } else {
#pragma unroll
        for (int k = 0; k < K; ++k)
            if (first + k < L) p[first + k] = x[k];
    }
}

}  // namespace scan_detail

// One block per (group of blockDim.x/32 channels, batch); warp w owns channel
// blockIdx.x·warps + w and walks the sequence in chunks of Sel<T>::CHUNK steps, lane i
// holding steps [i·ITEMS, (i+1)·ITEMS) of the chunk in registers: Δ, Δ·u and the output
// accumulator. For every state n the lane forms its steps' pairs (exp(Δa), Δ·B·u) (one
// exponential each) and their composition; lane 0 folds in the state carried from the
// previous chunk, a warp scan of the compositions gives every lane its entering state,
// and a second pass over the lane's steps accumulates C·h into the outputs. The
// (batch, D, L, N) tensors never exist.
//
// Time-varying B and C are shared by the block's channels (the host guarantees one group
// per block): they are staged in shared memory, SEL_STATES states × one chunk per tile,
// double-buffered with asynchronous copies so that tile i+1 loads while tile i computes.
// B/C element (b, d, n, t) is at b·sb + (d / per)·sg + n·sn + t·st (st = 0: constant in
// time; sb = 0: shared across the batch). `state` (batch, D, N) holds h0 on entry (with
// SEL_HAS_H0) and the last state on exit; between chunks it carries the state (each tile
// reads its states once and writes them once). Dskip, z, bias are not read unless their
// flag is set (any pointer will do then).
// 4-byte states: two blocks of 256 threads per SM, so at most 128 registers a thread (declared apart from
// the definition, which keeps the form the kernel loader looks for).
template <typename T>
__launch_bounds__(256, sizeof(T) == 4 ? 2 : 1) __global__ void selective_scan_chunked(
    const typename sl::real_of<T>::type* __restrict__ u,
    const typename sl::real_of<T>::type* __restrict__ delta,
    const T* __restrict__ A, const T* __restrict__ B, const T* __restrict__ C,
    const typename sl::real_of<T>::type* __restrict__ Dskip,
    const typename sl::real_of<T>::type* __restrict__ z,
    const typename sl::real_of<T>::type* __restrict__ bias,
    T* __restrict__ state, typename sl::real_of<T>::type* __restrict__ y,
    int dim, long long L, int N,
    long long sbB, long long sgB, long long snB, long long stB, int perB,
    long long sbC, long long sgC, long long snC, long long stC, int perC, int flags);

template <typename T>
__global__ void selective_scan_chunked(
    const typename sl::real_of<T>::type* __restrict__ u,
    const typename sl::real_of<T>::type* __restrict__ delta,
    const T* __restrict__ A, const T* __restrict__ B, const T* __restrict__ C,
    const typename sl::real_of<T>::type* __restrict__ Dskip,
    const typename sl::real_of<T>::type* __restrict__ z,
    const typename sl::real_of<T>::type* __restrict__ bias,
    T* __restrict__ state, typename sl::real_of<T>::type* __restrict__ y,
    int dim, long long L, int N,
    long long sbB, long long sgB, long long snB, long long stB, int perB,
    long long sbC, long long sgC, long long snC, long long stC, int perC, int flags) {
    using namespace scan_detail;
    typedef typename sl::real_of<T>::type R;
    constexpr int ITEMS = Sel<T>::ITEMS, CHUNK = Sel<T>::CHUNK, SEG = Sel<T>::SEG;
    constexpr int NT = SEL_STATES;
    constexpr int TILE = NT * 32 * SEG;  // elements of one staged array
    constexpr int PT = 16 / sizeof(T);   // elements of T per 16 bytes
    STRUCTLA_DYNAMIC_SHARED(smem);
    T* tiles = reinterpret_cast<T*>(smem);  // [buffer 0, 1][B, C][TILE]

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const int d = blockIdx.x * warps + warp;
    const long long b = blockIdx.y;
    const long long row = (b * dim + d) * L;
    T* h_state = state + (b * dim + d) * (long long)N;
    const T* A_d = A + (long long)d * N;
    const bool varB = stB != 0, varC = stC != 0;
    const T* Bd = B + b * sbB + (long long)(d / perB) * sgB;
    const T* Cd = C + b * sbC + (long long)(d / perC) * sgC;
    const int vec_io = flags & SEL_VEC_IO, vec_bc = flags & SEL_VEC_BC;
    const bool has_z = flags & SEL_HAS_Z, softplus_delta = flags & SEL_SOFTPLUS;
    const R bias_d = flags & SEL_HAS_BIAS ? bias[d] : R(0);
    const R D_d = flags & SEL_HAS_D ? Dskip[d] : R(0);
    const int ntiles = (N + NT - 1) / NT;
    const long long chunks = (L + CHUNK - 1) / CHUNK;

    // The tile of states [n0, n0 + NT) × chunk starting at t0 into `buffer`: warp w copies
    // rows (array, state) w, w + warps, …, each lane 4 packs of 16 bytes. Steps past L are 0
    // (they meet Δ = 0 and Δ·u = 0 there, the identity of the recurrence).
    auto stage = [&](long long t0, int n0, int buffer) {
        const int count = N - n0 < NT ? N - n0 : NT;
        T* buf = tiles + buffer * 2 * TILE;
        for (int row = warp; row < 2 * NT; row += warps) {
            const int arr = row / NT, nn = row % NT;
            if (nn >= count || !(arr ? varC : varB)) continue;
            const T* from = (arr ? Cd : Bd) + (n0 + nn) * (arr ? snC : snB) + t0;
            T* to = buf + arr * TILE + nn * 32 * SEG;
            constexpr int PACKS = ITEMS / PT;  // packs of a lane's segment (4)
#pragma unroll
            for (int q = 0; q < PACKS; ++q) {
                const int p = lane + 32 * q;
                const int j = p * PT;
                T* dst = to + (p / PACKS) * SEG + (p % PACKS) * PT;
                if (vec_bc && t0 + j < L) {
                    copy16(dst, from + j);
                } else {
#pragma unroll
                    for (int e = 0; e < PT; ++e) dst[e] = t0 + j + e < L ? from[j + e] : T(0);
                }
            }
        }
    };

    if (ntiles > 0) stage(0, 0, 0);
    int buffer = 0;
    for (long long c = 0; c < chunks; ++c) {
        const long long first = c * CHUNK + lane * ITEMS;
        R dt[ITEMS], du[ITEMS], acc[ITEMS];
        load_steps(delta + row, first, L, vec_io, dt);
        load_steps(u + row, first, L, vec_io, du);
        if (first + CHUNK < L) {
            prefetch_l2(delta + row + first + CHUNK);
            prefetch_l2(u + row + first + CHUNK);
            if (has_z) prefetch_l2(z + row + first + CHUNK);
        }
        R dsum = R(0);
#pragma unroll
        for (int k = 0; k < ITEMS; ++k) {
            R step = dt[k] + bias_d;
            if (softplus_delta) step = softplus(step);
            if (first + k >= L) step = R(0);
            dt[k] = step;
            dsum += step;
            acc[k] = D_d * du[k];
            du[k] *= step;
        }
        for (int nt = 0; nt < ntiles; ++nt, buffer ^= 1) {
            const int n0 = nt * NT;
            const int count = N - n0 < NT ? N - n0 : NT;
            T carried[NT], rate[NT], b_fixed[NT], c_fixed[NT];
#pragma unroll
            for (int nn = 0; nn < NT; ++nn) {
                const int n = nn < count ? n0 + nn : n0;
                carried[nn] = c > 0 || flags & SEL_HAS_H0 ? h_state[n] : T(0);
                rate[nn] = prepare_rate(A_d[n]);
                b_fixed[nn] = varB ? T(0) : Bd[(long long)n * snB];
                c_fixed[nn] = varC ? T(0) : Cd[(long long)n * snC];
            }
            copy_wait();
            __syncthreads();  // this tile is in place; everyone is done with the other buffer
            if (nt + 1 < ntiles) stage(c * CHUNK, n0 + NT, buffer ^ 1);
            else if (c + 1 < chunks) stage((c + 1) * CHUNK, 0, buffer ^ 1);
            const T* tB = tiles + buffer * 2 * TILE + lane * SEG;
            const T* tC = tB + TILE;
#pragma unroll
            for (int nn = 0; nn < NT; ++nn) {
                if (nn >= count) break;  // warp-uniform
                T da[ITEMS], bx[ITEMS];
                T gb = T(0);
#pragma unroll
                for (int q = 0; q < ITEMS / PT; ++q) {
                    Pack<T> bp;
                    if (varB) bp = *reinterpret_cast<const Pack<T>*>(tB + nn * 32 * SEG + q * PT);
#pragma unroll
                    for (int r = 0; r < PT; ++r) {
                        const int k = q * PT + r;
                        da[k] = step_exp(dt[k], rate[nn]);
                        bx[k] = du[k] * (varB ? bp.v[r] : b_fixed[nn]);
                        gb = da[k] * gb + bx[k];
                    }
                }
                // The lane's composed decay, from the summed steps: one exponential, not ITEMS products.
                T ga = step_exp(dsum, rate[nn]);
                if (lane == 0) gb = ga * carried[nn] + gb;
                warp_inclusive(ga, gb, lane);
                // gb is now the state after the lane's last step; the lane starts from its left neighbour's.
                T h = shfl_up(gb, 1);
                if (lane == 0) h = carried[nn];
                carried[nn] = shfl(gb, 31);
#pragma unroll
                for (int q = 0; q < ITEMS / PT; ++q) {
                    Pack<T> cp;
                    if (varC) cp = *reinterpret_cast<const Pack<T>*>(tC + nn * 32 * SEG + q * PT);
#pragma unroll
                    for (int r = 0; r < PT; ++r) {
                        const int k = q * PT + r;
                        h = da[k] * h + bx[k];
                        acc[k] = output_acc(acc[k], varC ? cp.v[r] : c_fixed[nn], h);
                    }
                }
            }
            if (lane == 0) {
#pragma unroll
                for (int nn = 0; nn < NT; ++nn)
                    if (nn < count) h_state[n0 + nn] = carried[nn];
            }
            __syncwarp();  // the warp reads these states again at the next chunk
        }
        if (has_z) {
            R zz[ITEMS];
            load_steps(z + row, first, L, vec_io, zz);
#pragma unroll
            for (int k = 0; k < ITEMS; ++k) acc[k] *= silu(zz[k]);
        }
        store_steps(y + row, first, L, vec_io, acc);
    }
}

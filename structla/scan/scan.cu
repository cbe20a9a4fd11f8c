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
    __shared__ alignas(16) unsigned char raw[2 * 32 * sizeof(T)];
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
    __shared__ alignas(16) unsigned char raw[2 * 32 * sizeof(T)];
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

namespace scan_detail {

constexpr int SEL_ITEMS = 8;                      // consecutive steps per lane
constexpr int SEL_CHUNK = 32 * SEL_ITEMS;         // steps per warp and chunk
constexpr int SEL_PAD = SEL_CHUNK + SEL_CHUNK / 32;  // one spare slot per 32: no bank conflicts
__device__ inline int padded(int j) { return j + (j >> 5); }

// exp(Δ·a) in the state type. float: exp2f of a pre-scaled rate (one MUFU instruction
// plus a multiply); double and complex: the accurate library exp.
__device__ inline float prepare_rate(float a) { return a * 1.4426950408889634f; }
__device__ inline double prepare_rate(double a) { return a; }
template <typename R> __device__ inline sl::complex<R> prepare_rate(sl::complex<R> a) { return a; }
__device__ inline float step_exp(float dt, float rate) { return exp2f(dt * rate); }
__device__ inline double step_exp(double dt, double rate) { return exp(dt * rate); }
template <typename R> __device__ inline sl::complex<R> step_exp(R dt, sl::complex<R> rate) {
    return sl::exp(dt * rate);
}

// Contribution of one state to the output: C·h, or 2·Re(C·h) for a conjugate pair.
__device__ inline float output_part(float c, float h) { return c * h; }
__device__ inline double output_part(double c, double h) { return c * h; }
template <typename R> __device__ inline R output_part(sl::complex<R> c, sl::complex<R> h) {
    return 2 * (c.re * h.re - c.im * h.im);
}

template <typename R> __device__ inline R softplus(R x) { return x > R(20) ? x : log1p(exp(x)); }
template <typename R> __device__ inline R silu(R x) { return x / (R(1) + exp(-x)); }

}  // namespace scan_detail

// One block per (channel group of blockDim.x/32 channels, batch); warp w owns channel
// blockIdx.x·warps + w and walks the sequence in chunks of SEL_CHUNK steps, lane i
// holding steps [8i, 8i+8) of the chunk. For every state n the warp scans the chunk's
// (exp(Δa), Δ·B·u) pairs with shuffles, starts from the state carried in `state`
// (read and written by lane 31 only) and accumulates C·h into the lane's outputs.
// Selective B/C tiles (time-varying, shared by the block's channels) are staged in
// shared memory, TILE states at a time. The (batch, D, L, N) tensors never exist.
//
// B/C element (b, d, n, t) is at b·sb + (d / per)·sg + n·sn + t·st (st = 0: constant
// in time; sb = 0: shared across the batch). `state` (batch, D, N) holds h0 on entry
// and the last state on exit.
template <typename T>
__global__ void selective_scan_fwd(
    const typename sl::real_of<T>::type* __restrict__ u,
    const typename sl::real_of<T>::type* __restrict__ delta,
    const T* __restrict__ A, const T* __restrict__ B, const T* __restrict__ C,
    const typename sl::real_of<T>::type* __restrict__ Dskip,
    const typename sl::real_of<T>::type* __restrict__ z,
    const typename sl::real_of<T>::type* __restrict__ bias,
    T* __restrict__ state, typename sl::real_of<T>::type* __restrict__ y,
    int dim, long long L, int N,
    long long sbB, long long sgB, long long snB, long long stB, int perB,
    long long sbC, long long sgC, long long snC, long long stC, int perC,
    int has_D, int has_z, int has_bias, int softplus_delta) {
    using namespace scan_detail;
    typedef typename sl::real_of<T>::type R;
    constexpr int TILE = 64 / sizeof(T) > 0 ? 64 / sizeof(T) : 1;
    extern __shared__ __align__(16) unsigned char smem[];
    T* tileB = reinterpret_cast<T*>(smem);
    T* tileC = tileB + TILE * SEL_PAD;

    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const int d = blockIdx.x * warps + warp;
    const long long b = blockIdx.y;
    const long long row = (b * dim + d) * L;
    T* h_state = state + (b * dim + d) * (long long)N;
    const T* A_d = A + (long long)d * N;
    const bool varB = stB != 0, varC = stC != 0;
    // Channels of one block share a group whenever B or C varies in time (host guarantees).
    const T* Bd = B + b * sbB + (long long)(d / perB) * sgB;
    const T* Cd = C + b * sbC + (long long)(d / perC) * sgC;
    const R bias_d = has_bias ? bias[d] : R(0);
    const R D_d = has_D ? Dskip[d] : R(0);

    for (long long t0 = 0; t0 < L; t0 += SEL_CHUNK) {
        R dt[SEL_ITEMS], du[SEL_ITEMS], uu[SEL_ITEMS], acc[SEL_ITEMS];
#pragma unroll
        for (int k = 0; k < SEL_ITEMS; ++k) {
            const long long t = t0 + lane * SEL_ITEMS + k;
            // Steps past the end are the identity element: exp(0·a) = 1 and no input.
            R step = R(0), x = R(0);
            if (t < L) {
                step = delta[row + t] + bias_d;
                if (softplus_delta) step = softplus(step);
                x = u[row + t];
            }
            dt[k] = step;
            uu[k] = x;
            du[k] = step * x;
            acc[k] = R(0);
        }
        for (int n0 = 0; n0 < N; n0 += TILE) {
            const int count = N - n0 < TILE ? N - n0 : TILE;
            if (varB || varC) {
                __syncthreads();  // the previous tile is no longer read
                for (int idx = threadIdx.x; idx < count * SEL_CHUNK; idx += blockDim.x) {
                    const int nn = idx / SEL_CHUNK, j = idx - nn * SEL_CHUNK;
                    const long long t = t0 + j;
                    T vb = T(0), vc = T(0);
                    if (t < L) {
                        if (varB) vb = Bd[(long long)(n0 + nn) * snB + t * stB];
                        if (varC) vc = Cd[(long long)(n0 + nn) * snC + t * stC];
                    }
                    tileB[nn * SEL_PAD + padded(j)] = vb;
                    tileC[nn * SEL_PAD + padded(j)] = vc;
                }
                __syncthreads();
            }
            for (int nn = 0; nn < count; ++nn) {
                const int n = n0 + nn;
                // Issued first so that its latency hides behind the exponentials.
                T carried = lane == 31 ? h_state[n] : T(0);
                const T rate = prepare_rate(A_d[n]);
                const T b_fixed = varB ? T(0) : Bd[(long long)n * snB];
                const T c_fixed = varC ? T(0) : Cd[(long long)n * snC];
                T da[SEL_ITEMS], bx[SEL_ITEMS];
                T ga = T(1), gb = T(0);
#pragma unroll
                for (int k = 0; k < SEL_ITEMS; ++k) {
                    const T bk = varB ? tileB[nn * SEL_PAD + padded(lane * SEL_ITEMS + k)] : b_fixed;
                    da[k] = step_exp(dt[k], rate);
                    bx[k] = du[k] * bk;
                    gb = da[k] * gb + bx[k];
                    ga = da[k] * ga;
                }
                warp_inclusive(ga, gb, lane);
                T ea, eb;
                warp_exclusive_from_inclusive(ga, gb, lane, ea, eb);
                carried = shfl(carried, 31);
                T h = ea * carried + eb;
#pragma unroll
                for (int k = 0; k < SEL_ITEMS; ++k) {
                    const T ck = varC ? tileC[nn * SEL_PAD + padded(lane * SEL_ITEMS + k)] : c_fixed;
                    h = da[k] * h + bx[k];
                    acc[k] += output_part(ck, h);
                }
                // Lane 31 ends on the chunk's last step (padding steps are the identity).
                if (lane == 31) h_state[n] = h;
            }
        }
#pragma unroll
        for (int k = 0; k < SEL_ITEMS; ++k) {
            const long long t = t0 + lane * SEL_ITEMS + k;
            if (t < L) {
                R out = acc[k] + D_d * uu[k];
                if (has_z) out *= silu(z[row + t]);
                y[row + t] = out;
            }
        }
    }
}

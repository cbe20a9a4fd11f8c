// Fused fixed-step msign of a stack of small matrices (e.g. 256 × 128×128 attention heads).
//
// One thread block owns one matrix for the whole iteration: X = M / ‖M‖_F (float16, in shared
// memory), then per row (a, b, c) of the coefficient table
//     Y = X Xᵀ,   H = aI + bY + cY²,   X ← H X,
// all three products on the tensor cores (mma.sync m16n8k16, float16 inputs, float32
// accumulation), H formed from the accumulators of Y² (Y Yᵀ: Y is symmetric), so nothing
// goes back to global memory between steps; the last product is written as float32.
// This is the float16 iteration of _reference.msign with a fixed table: the same start
// (divide by the largest |entry| first, then by the Frobenius norm), the same rounding
// points (X, Y and H stored in float16). Tall matrices (n > m) are read and written
// transposed, so X is always the wide side (rows ≤ columns).
//
// Shared memory: three buffers of rows × (cols + 8) halves (X, Y, H; the new X goes into
// Y's buffer and the two swap), 8 halves of padding per row keep the fragment loads free of
// bank conflicts, and 32 floats for the block reductions: 104 KiB for 128×128, two blocks
// per SM (about 70 registers per thread: 32 accumulators, the fragments and the addresses).
// Each warp computes 16-row × 64-column chunks of a product (8 accumulator tiles).
// Needs sm_80 or newer (the Python side checks); the host emulation test supplies mf_mma,
// mf_f2h and mf_h2f.
//
// structla-dtypes: float32

#ifndef STRUCTLA_DYNAMIC_SHARED
#define STRUCTLA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace mf {

typedef unsigned short h16;

#ifdef __CUDA_ARCH__
// D += A B for one warp: A 16×16 (row-major fragment, 4 registers of 2 halves), B 16×8
// (column-major fragment, 2 registers), D 16×8 float32 (4 values per lane). Lane l holds
// rows g = l/4 and g + 8, columns 2(l%4) and 2(l%4) + 1 of D (PTX ISA, mma.m16n8k16).
__device__ __forceinline__ void mf_mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ h16 mf_f2h(float x) {
    h16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}
__device__ __forceinline__ float mf_h2f(h16 h) {
    float x;
    asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h));
    return x;
}
#endif

__device__ __forceinline__ unsigned load_pair(const h16* p) {
    return *reinterpret_cast<const unsigned*>(p);
}

// Accumulators of the 16 × (8·tiles) chunk at (row0, col0) of A B, A rows × inner
// (row-major, leading dimension ld). B(k, j) is read as B[j·ld + k] (transposed: the
// products X Xᵀ and Y Yᵀ) or B[k·ld + j] (row-major: H X).
template <bool ROW_MAJOR_B>
__device__ __forceinline__ void product_chunk(const h16* A, const h16* B, int ld, int inner,
                                              int row0, int col0, int tiles, float (&acc)[8][4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    for (int k0 = 0; k0 < inner; k0 += 16) {
        const h16* ar = A + (row0 + g) * ld + k0 + 2 * t;
        const unsigned a[4] = {load_pair(ar), load_pair(ar + 8 * ld), load_pair(ar + 8),
                               load_pair(ar + 8 * ld + 8)};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            if (j < tiles) {  // the same for the whole warp
                const int col = col0 + 8 * j + g;
                unsigned b[2];
                if (ROW_MAJOR_B) {
                    const h16* bp = B + (k0 + 2 * t) * ld + col;
                    b[0] = unsigned(bp[0]) | (unsigned(bp[ld]) << 16);
                    b[1] = unsigned(bp[8 * ld]) | (unsigned(bp[9 * ld]) << 16);
                } else {
                    const h16* bp = B + col * ld + k0 + 2 * t;
                    b[0] = load_pair(bp);
                    b[1] = load_pair(bp + 8);
                }
                mf_mma(acc[j], a, b);
            }
        }
    }
}

// max |x| that propagates NaN (fmaxf would drop it): a NaN input must end in a NaN result
__device__ __forceinline__ float nan_max(float a, float b) {
    return (a != a || b != b) ? a + b : (a > b ? a : b);
}

// Block-wide max (MAX) or sum of one value per thread, through 32 floats of shared memory.
template <bool MAX>
__device__ float block_reduce(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float other = __shfl_down_sync(0xffffffffu, v, offset);
        v = MAX ? nan_max(v, other) : v + other;
    }
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = scratch[0];
    for (int w = 1; w < warps; ++w) v = MAX ? nan_max(v, scratch[w]) : v + scratch[w];
    return v;
}

}  // namespace mf

// M, out: count matrices of rows × cols floats (C order), rows ≤ cols unless tall (then the
// stored matrices are cols × rows and X is their transpose); table: steps rows (a, b, c) as
// float32. blockDim.x = 256 (8 warps); rows and cols multiples of 16, cols ≤ 128 so that
// the three buffers fit.
template <typename T>
__global__ void msign_small_fused(const T* __restrict__ M, T* __restrict__ out, const float* __restrict__ table,
                  int steps, int rows, int cols, int tall) {
    using namespace mf;
    STRUCTLA_DYNAMIC_SHARED(shared_bytes);
    const int ld = cols + 8;
    const size_t plane = size_t(rows) * ld;
    h16* X = reinterpret_cast<h16*>(shared_bytes);
    h16* Y = X + plane;
    h16* H = Y + plane;
    float* scratch = reinterpret_cast<float*>(H + plane);
    const size_t size = size_t(rows) * cols;
    const T* src = M + size_t(blockIdx.x) * size;
    T* dst = out + size_t(blockIdx.x) * size;

    // X = (M / max|M|) / ‖M / max|M|‖_F: every square in [0, 1], zeros stay zeros
    float top = 0.0f;
    for (size_t i = threadIdx.x; i < size; i += blockDim.x) top = nan_max(top, fabsf(float(src[i])));
    top = block_reduce<true>(top, scratch);
    float total = 0.0f;
    for (size_t i = threadIdx.x; i < size; i += blockDim.x) {
        const float x = top == 0.0f ? 0.0f : float(src[i]) / top;
        total += x * x;
    }
    total = block_reduce<false>(total, scratch);
    const float norm = sqrtf(total);
    for (size_t i = threadIdx.x; i < size; i += blockDim.x) {
        const int r = int(i / cols), c = int(i % cols);
        const float x = float(src[tall ? size_t(c) * rows + r : i]);
        X[r * ld + c] = mf_f2h(top == 0.0f ? 0.0f : x / top / norm);
    }
    __syncthreads();
    if (steps == 0) {
        for (size_t i = threadIdx.x; i < size; i += blockDim.x) {
            const int r = int(i / cols), c = int(i % cols);
            dst[tall ? size_t(c) * rows + r : i] = T(mf_h2f(X[r * ld + c]));
        }
        return;
    }

    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int row_blocks = rows / 16;
    float acc[8][4];
    for (int s = 0; s < steps; ++s) {
        const float a = table[3 * s], b = table[3 * s + 1], c = table[3 * s + 2];
        // Y = X Xᵀ (rows × rows)
        const int y_chunks = (rows + 63) / 64;
        for (int task = warp; task < row_blocks * y_chunks; task += warps) {
            const int row0 = 16 * (task % row_blocks), col0 = 64 * (task / row_blocks);
            const int tiles = min(8, (rows - col0) / 8);
            product_chunk<false>(X, X, ld, cols, row0, col0, tiles, acc);
            for (int j = 0; j < tiles; ++j) {
                const int col = col0 + 8 * j + 2 * t;
                for (int half = 0; half < 2; ++half) {
                    h16* yp = Y + (row0 + g + 8 * half) * ld + col;
                    yp[0] = mf_f2h(acc[j][2 * half]);
                    yp[1] = mf_f2h(acc[j][2 * half + 1]);
                }
            }
        }
        __syncthreads();
        // H = aI + bY + cY² with Y² = Y Yᵀ (Y symmetric); c = 0 (cubic rows) needs no product
        for (int task = warp; task < row_blocks * y_chunks; task += warps) {
            const int row0 = 16 * (task % row_blocks), col0 = 64 * (task / row_blocks);
            const int tiles = min(8, (rows - col0) / 8);
            if (c != 0.0f) {
                product_chunk<false>(Y, Y, ld, rows, row0, col0, tiles, acc);
            } else {
                for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
            }
            for (int j = 0; j < tiles; ++j) {
                for (int e = 0; e < 4; ++e) {
                    const int r = row0 + g + 8 * (e >> 1), col = col0 + 8 * j + 2 * t + (e & 1);
                    const float h = c * acc[j][e] + b * mf_h2f(Y[r * ld + col]) + (r == col ? a : 0.0f);
                    H[r * ld + col] = mf_f2h(h);
                }
            }
        }
        __syncthreads();
        // X ← H X (rows × cols) into Y's buffer, or into out (float) after the last row
        const int x_chunks = (cols + 63) / 64;
        const bool last = s + 1 == steps;
        for (int task = warp; task < row_blocks * x_chunks; task += warps) {
            const int row0 = 16 * (task % row_blocks), col0 = 64 * (task / row_blocks);
            const int tiles = min(8, (cols - col0) / 8);
            product_chunk<true>(H, X, ld, rows, row0, col0, tiles, acc);
            for (int j = 0; j < tiles; ++j) {
                for (int e = 0; e < 4; ++e) {
                    const int r = row0 + g + 8 * (e >> 1), col = col0 + 8 * j + 2 * t + (e & 1);
                    if (last) {
                        dst[tall ? size_t(col) * rows + r : size_t(r) * cols + col] = T(acc[j][e]);
                    } else {
                        Y[r * ld + col] = mf_f2h(acc[j][e]);
                    }
                }
            }
        }
        __syncthreads();
        h16* swap = X;
        X = Y;
        Y = swap;
    }
}

// structla's complex type for CUDA kernels: layout-compatible with NumPy/CuPy
// complex64/complex128 ({re, im}, aligned to twice the component size), usable
// from NVRTC and nvcc alike without any standard-library header.
#pragma once

namespace sl {

template <typename T>
struct alignas(2 * sizeof(T)) complex {
    T re, im;
    __host__ __device__ complex() : re(0), im(0) {}
    __host__ __device__ complex(T r) : re(r), im(0) {}
    __host__ __device__ complex(T r, T i) : re(r), im(i) {}
    __host__ __device__ complex& operator+=(const complex& o) { re += o.re; im += o.im; return *this; }
    __host__ __device__ complex& operator-=(const complex& o) { re -= o.re; im -= o.im; return *this; }
    __host__ __device__ complex& operator*=(const complex& o) { *this = *this * o; return *this; }
    __host__ __device__ complex& operator/=(const complex& o) { *this = *this / o; return *this; }
    friend __host__ __device__ complex operator+(complex a, complex b) { return {a.re + b.re, a.im + b.im}; }
    friend __host__ __device__ complex operator-(complex a, complex b) { return {a.re - b.re, a.im - b.im}; }
    friend __host__ __device__ complex operator-(complex a) { return {-a.re, -a.im}; }
    friend __host__ __device__ complex operator*(complex a, complex b) {
        return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
    }
    friend __host__ __device__ complex operator*(T s, complex a) { return {s * a.re, s * a.im}; }
    friend __host__ __device__ complex operator*(complex a, T s) { return {s * a.re, s * a.im}; }
    // Smith's algorithm: no overflow for |b| near the top of the range.
    friend __host__ __device__ complex operator/(complex a, complex b) {
        if (fabs(b.re) >= fabs(b.im)) {
            T r = b.im / b.re, d = b.re + b.im * r;
            return {(a.re + a.im * r) / d, (a.im - a.re * r) / d};
        }
        T r = b.re / b.im, d = b.im + b.re * r;
        return {(a.re * r + a.im) / d, (a.im * r - a.re) / d};
    }
    friend __host__ __device__ complex operator/(complex a, T s) { return {a.re / s, a.im / s}; }
};

// Uniform helpers so one kernel body serves real and complex T.
template <typename T> struct real_of { typedef T type; };
template <typename T> struct real_of<complex<T>> { typedef T type; };

template <typename T> __host__ __device__ inline T conj(T x) { return x; }
template <typename T> __host__ __device__ inline complex<T> conj(complex<T> x) { return {x.re, -x.im}; }
template <typename T> __host__ __device__ inline T real(T x) { return x; }
template <typename T> __host__ __device__ inline T real(complex<T> x) { return x.re; }
template <typename T> __host__ __device__ inline T abs2(T x) { return x * x; }
template <typename T> __host__ __device__ inline T abs2(complex<T> x) { return x.re * x.re + x.im * x.im; }
template <typename T> __host__ __device__ inline complex<T> exp(complex<T> x) {
    T m = ::exp(x.re);
    T s, c;
    sincos(x.im, &s, &c);
    return {m * c, m * s};
}
template <typename T> __host__ __device__ inline T fma_acc(T acc, T a, T b) { return fma(a, b, acc); }
template <typename T> __host__ __device__ inline complex<T> fma_acc(complex<T> acc, complex<T> a, complex<T> b) {
    return {fma(a.re, b.re, fma(-a.im, b.im, acc.re)), fma(a.re, b.im, fma(a.im, b.re, acc.im))};
}

// Warp-wide sum with shuffles (all 32 lanes must participate).
template <typename T> __device__ inline T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <typename T> __device__ inline complex<T> warp_sum(complex<T> v) {
    for (int o = 16; o > 0; o >>= 1) {
        v.re += __shfl_xor_sync(0xffffffffu, v.re, o);
        v.im += __shfl_xor_sync(0xffffffffu, v.im, o);
    }
    return v;
}

}  // namespace sl

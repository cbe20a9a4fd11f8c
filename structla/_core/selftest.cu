// A tiny dtype-templated kernel: proves the loader, the dtype table and the
// complex header work on a device (`python -m structla check`, GPU tests).
#include <structla/complex.cuh>

template <typename T>
__global__ void axpby(long long n, T a, const T* __restrict__ x, T b, const T* __restrict__ y,
                      T* __restrict__ out) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        out[i] = a * x[i] + b * y[i];
    }
}

// tokenformer/kernels/cuda/common.cuh: launch helpers, device math and block reductions shared by
// the CUDA kernels.
#pragma once

#include <thrust/system/cuda/execution_policy.h>

#include <algorithm>
#include <climits>
#include <string>

#include "tokenformer/core/cuda.cuh"
#include "tokenformer/core/error.hpp"

namespace tokenformer::kernels::cuda_detail {

constexpr int block_threads = 256;

/// Blocks for a grid-stride loop over n elements.
inline unsigned blocks_for(index_t n, int threads = block_threads) {
  const index_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<index_t>(blocks, 1, index_t(1) << 16));
}
/// Blocks for one-block-per-row kernels (the kernels loop when rows exceed the grid).
inline unsigned blocks_for_rows(index_t rows) {
  return static_cast<unsigned>(std::clamp<index_t>(rows, 1, index_t(1) << 20));
}

/// Throws cuda_error if the last kernel launch failed (bad configuration, missing sm code, ...).
inline void check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw cuda_error(std::string("launching ") + kernel + " failed with " + cudaGetErrorName(status) + " (" +
                     cudaGetErrorString(status) + ")");
}

/// cuBLAS takes int sizes.
inline int blas_int(index_t value, const char* what) {
  if (value < 0 || value > INT_MAX)
    throw shape_error(std::string(what) + " = " + std::to_string(value) + " is outside cuBLAS's int range");
  return static_cast<int>(value);
}

/// Thrust policies on the device's stream: `asynchronous` for algorithms that return nothing.
inline auto asynchronous(const cuda& device) { return thrust::cuda::par_nosync.on(device.stream()); }
inline auto synchronous(const cuda& device) { return thrust::cuda::par.on(device.stream()); }

/// Stream-ordered scratch memory for one kernel call (freed in stream order).
template <class T>
class scratch {
 public:
  scratch(const cuda& device, index_t count) : device_(device) {
    data_ = static_cast<T*>(device_memory<cuda>::allocate(device_, static_cast<std::size_t>(count) * sizeof(T)));
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
  ~scratch() { device_memory<cuda>::deallocate(device_, data_); }
  T* get() const { return data_; }

 private:
  cuda device_;
  T* data_ = nullptr;
};

// ---- device math, overloaded on float and double ------------------------------------------------
__device__ inline float exp_(float x) { return expf(x); }
__device__ inline double exp_(double x) { return exp(x); }
__device__ inline float log_(float x) { return logf(x); }
__device__ inline double log_(double x) { return log(x); }
__device__ inline float sqrt_(float x) { return sqrtf(x); }
__device__ inline double sqrt_(double x) { return sqrt(x); }
__device__ inline float erf_(float x) { return erff(x); }
__device__ inline double erf_(double x) { return erf(x); }

/// Exact GeLU: x · Φ(x).
template <class T>
__device__ inline T gelu(T x) {
  return T(0.5) * x * (T(1) + erf_(x * T(0.70710678118654752440)));
}
/// d/dx GeLU: Φ(x) + x · φ(x).
template <class T>
__device__ inline T gelu_derivative(T x) {
  return T(0.5) * (T(1) + erf_(x * T(0.70710678118654752440))) + x * T(0.39894228040143267794) * exp_(T(-0.5) * x * x);
}

template <class T>
__device__ inline T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
template <class T>
__device__ inline T warp_max(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
/// Every thread of the block must call it.
template <class T>
__device__ T block_sum(T v) {
  __shared__ T partial[32];
  v = warp_sum(v);
  __syncthreads();  // an earlier call may still be reading `partial`
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  const unsigned warps = blockDim.x >> 5;
  v = (threadIdx.x & 31) < warps ? partial[threadIdx.x & 31] : T(0);
  return warp_sum(v);
}
/// Maximum over the block, as block_sum.
template <class T>
__device__ T block_max(T v) {
  __shared__ T partial[32];
  v = warp_max(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
  __syncthreads();
  const unsigned warps = blockDim.x >> 5;
  v = (threadIdx.x & 31) < warps ? partial[threadIdx.x & 31] : T(-INFINITY);
  return warp_max(v);
}

}  // namespace tokenformer::kernels::cuda_detail

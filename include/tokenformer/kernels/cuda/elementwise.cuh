// tokenformer/kernels/cuda/elementwise.cuh: copies and checks over whole tensors on the GPU.
#pragma once

#include "tokenformer/kernels/cuda/common.cuh"
#include "tokenformer/kernels/cuda/thrust_algorithms.cuh"

namespace tokenformer::kernels {

/// out[i] = in[i] for n elements (no overlap), on the device's stream.
template <class T>
void copy(const cuda& device, T* out, const T* in, index_t n) {
  if (n > 0 && out != in) device_memory<cuda>::copy(device, out, in, static_cast<std::size_t>(n) * sizeof(T));
}

/// Index of the first element of x that is NaN or ±Inf, or −1 if all are finite (waits for the GPU).
template <class T>
index_t first_non_finite(const cuda& device, const T* x, index_t n) {
  return thrust_algorithms::first_non_finite(cuda_detail::synchronous(device), x, n);
}

}  // namespace tokenformer::kernels

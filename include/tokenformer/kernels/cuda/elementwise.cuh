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

namespace cuda_detail {
template <class T>
__global__ void gelu_forward_kernel(T* out, const T* x, index_t n) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x)
    out[i] = gelu(x[i]);
}
template <class T>
__global__ void gelu_backward_kernel(T* dx, const T* dy, const T* x, index_t n) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x)
    dx[i] = dy[i] * gelu_derivative(x[i]);
}
}  // namespace cuda_detail

/// out[i] = gelu(x[i]) (exact GeLU); out may alias x.
template <class T>
void gelu_forward(const cuda& device, T* out, const T* x, index_t n) {
  if (n <= 0) return;
  cuda_detail::gelu_forward_kernel<<<cuda_detail::blocks_for(n), cuda_detail::block_threads, 0, device.stream()>>>(
      out, x, n);
  cuda_detail::check_launch("gelu_forward_kernel");
}

/// dx[i] = dy[i] · gelu'(x[i]); dx may alias dy.
template <class T>
void gelu_backward(const cuda& device, T* dx, const T* dy, const T* x, index_t n) {
  if (n <= 0) return;
  cuda_detail::gelu_backward_kernel<<<cuda_detail::blocks_for(n), cuda_detail::block_threads, 0, device.stream()>>>(
      dx, dy, x, n);
  cuda_detail::check_launch("gelu_backward_kernel");
}

/// Index of the first element of x that is NaN or ±Inf, or −1 if all are finite (waits for the GPU).
template <class T>
index_t first_non_finite(const cuda& device, const T* x, index_t n) {
  return thrust_algorithms::first_non_finite(cuda_detail::synchronous(device), x, n);
}

}  // namespace tokenformer::kernels

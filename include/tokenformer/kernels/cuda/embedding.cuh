// tokenformer/kernels/cuda/embedding.cuh: embedding lookup and its gradient on the GPU.
//
// The gradient adds rows with atomics (rows sharing a token id collide), so its float sums are
// not bitwise reproducible from run to run; double sums are.
#pragma once

#include <cstdint>

#include "tokenformer/kernels/cuda/common.cuh"

namespace tokenformer::kernels {

namespace cuda_detail {

template <class T>
__global__ void embedding_forward_kernel(T* out, const std::int32_t* tokens, const T* table, index_t N, index_t C) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < N * C; i += index_t(gridDim.x) * blockDim.x)
    out[i] = table[static_cast<index_t>(tokens[i / C]) * C + i % C];
}

template <class T>
__global__ void embedding_backward_kernel(T* d_table, const T* dout, const std::int32_t* tokens, index_t N, index_t C) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < N * C; i += index_t(gridDim.x) * blockDim.x)
    atomicAdd(d_table + static_cast<index_t>(tokens[i / C]) * C + i % C, dout[i]);
}

}  // namespace cuda_detail

/// out[i] = table[tokens[i]]; the contract of the CPU kernel (ids are checked by the caller).
template <class T>
void embedding_forward(const cuda& device, T* out,  // (N, C)
                       const std::int32_t* tokens,  // (N), device memory
                       const T* table,              // (V, C)
                       index_t N, index_t C) {
  if (N * C == 0) return;
  cuda_detail::
      embedding_forward_kernel<<<cuda_detail::blocks_for(N * C), cuda_detail::block_threads, 0, device.stream()>>>(
          out, tokens, table, N, C);
  cuda_detail::check_launch("embedding_forward_kernel");
}

/// d_table[tokens[i]] += dout[i].
template <class T>
void embedding_backward(const cuda& device, T* d_table,  // (V, C)
                        const T* dout,                   // (N, C)
                        const std::int32_t* tokens,      // (N), device memory
                        index_t N, index_t C) {
  if (N * C == 0) return;
  cuda_detail::
      embedding_backward_kernel<<<cuda_detail::blocks_for(N * C), cuda_detail::block_threads, 0, device.stream()>>>(
          d_table, dout, tokens, N, C);
  cuda_detail::check_launch("embedding_backward_kernel");
}

}  // namespace tokenformer::kernels

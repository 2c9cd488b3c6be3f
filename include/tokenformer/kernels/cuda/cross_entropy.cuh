// tokenformer/kernels/cuda/cross_entropy.cuh: fused softmax cross-entropy on the GPU.
//
// A block per row finds the maximum and the sum of exponentials, writes the loss and turns the
// logits into their gradient in place; the per-row losses are then summed in double with Thrust.
#pragma once

#include <cstdint>

#include "tokenformer/kernels/cuda/common.cuh"
#include "tokenformer/kernels/cuda/thrust_algorithms.cuh"

namespace tokenformer::kernels {

namespace cuda_detail {

template <class T>
__global__ void cross_entropy_kernel(T* logits, T* losses, double* row_losses, const std::int32_t* targets, index_t N,
                                     index_t V, T grad_scale) {
  for (index_t r = blockIdx.x; r < N; r += gridDim.x) {
    T* row = logits + r * V;
    const std::int32_t target = targets[r];
    if (target < 0) {
      for (index_t j = threadIdx.x; j < V; j += blockDim.x) row[j] = T(0);
      if (threadIdx.x == 0) {
        if (losses != nullptr) losses[r] = T(0);
        row_losses[r] = 0.0;
      }
      continue;
    }
    const T target_logit = row[target];  // read by every thread before any thread writes the row
    T m = T(-INFINITY);
    for (index_t j = threadIdx.x; j < V; j += blockDim.x) m = max(m, row[j]);
    m = block_max(m);
    T sum = T(0);
    for (index_t j = threadIdx.x; j < V; j += blockDim.x) sum += exp_(row[j] - m);
    sum = block_sum(sum);  // its barriers also order the reads above before the writes below
    const T lse = m + log_(sum);
    if (threadIdx.x == 0) {
      if (losses != nullptr) losses[r] = lse - target_logit;
      row_losses[r] = static_cast<double>(lse - target_logit);
    }
    for (index_t j = threadIdx.x; j < V; j += blockDim.x)
      row[j] = exp_(row[j] - lse) * grad_scale - (j == target ? grad_scale : T(0));
  }
}

}  // namespace cuda_detail

/// Loss and, in place of the logits, their gradient; the contract of the CPU kernel. Returns
/// Σ loss over rows with a target (waits for the GPU).
template <class T>
double cross_entropy_forward_backward(const cuda& device, T* logits_then_grad,  // (N, V)
                                      T* losses,                                // (N) or null
                                      const std::int32_t* targets,              // (N), device memory
                                      index_t N, index_t V, double grad_scale) {
  if (N == 0) return 0.0;
  cuda_detail::scratch<double> row_losses(device, N);
  cuda_detail::
      cross_entropy_kernel<<<cuda_detail::blocks_for_rows(N), cuda_detail::block_threads, 0, device.stream()>>>(
          logits_then_grad, losses, row_losses.get(), targets, N, V, static_cast<T>(grad_scale));
  cuda_detail::check_launch("cross_entropy_kernel");
  return thrust_algorithms::sum(cuda_detail::synchronous(device), row_losses.get(), N);
}

}  // namespace tokenformer::kernels

// tokenformer/kernels/cuda/adamw.cuh: AdamW and the gradient reductions on the GPU.
//
// adamw_step_many updates every parameter of a model in one kernel launch: blockIdx.y picks the
// parameter, blocks along x stride over its elements. The single-parameter step and the
// reductions are Thrust algorithms (thrust_algorithms.cuh) on the device's stream.
#pragma once

#include <cstddef>
#include <vector>

#include "tokenformer/kernels/adamw_segment.hpp"
#include "tokenformer/kernels/cuda/common.cuh"
#include "tokenformer/kernels/cuda/thrust_algorithms.cuh"

namespace tokenformer::kernels {

namespace cuda_detail {

template <class T>
struct adamw_device_segment {
  T* p;
  T* m;
  T* v;
  const T* g;
  index_t n;
  thrust_algorithms::AdamWCoefficients<T> c;
};

template <class T>
__global__ void adamw_many_kernel(const adamw_device_segment<T>* segments) {
  const adamw_device_segment<T> s = segments[blockIdx.y];
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < s.n; i += index_t(gridDim.x) * blockDim.x)
    thrust_algorithms::adamw_element(s.p[i], s.m[i], s.v[i], s.g[i], s.c);
}

}  // namespace cuda_detail

/// One AdamW step; the contract of the CPU kernel.
template <class T>
void adamw_step(const cuda& device, T* p, T* m, T* v, const T* g, index_t n, double lr, double beta1, double beta2,
                double eps, double weight_decay, long step) {
  thrust_algorithms::adamw_step(
      cuda_detail::asynchronous(device), p, m, v, g, n,
      thrust_algorithms::AdamWCoefficients<T>::make(lr, beta1, beta2, eps, weight_decay, step));
}

/// One AdamW step over several parameters in a single fused kernel.
template <class T>
void adamw_step_many(const cuda& device, const AdamWSegment<T>* segments, std::size_t count, double lr, double beta1,
                     double beta2, double eps, long step) {
  constexpr std::size_t max_segments = 65535;  // grid.y
  for (std::size_t first = 0; first < count; first += max_segments) {
    const std::size_t here = std::min(max_segments, count - first);
    std::vector<cuda_detail::adamw_device_segment<T>> table(here);
    index_t longest = 0;
    for (std::size_t i = 0; i < here; ++i) {
      const AdamWSegment<T>& s = segments[first + i];
      table[i] = {s.p, s.m, s.v,
                  s.g, s.n, thrust_algorithms::AdamWCoefficients<T>::make(lr, beta1, beta2, eps, s.weight_decay, step)};
      longest = std::max(longest, s.n);
    }
    if (longest == 0) continue;
    cuda_detail::scratch<cuda_detail::adamw_device_segment<T>> on_device(device, static_cast<index_t>(here));
    device_memory<cuda>::copy_from_host(device, on_device.get(), table.data(), here * sizeof(table[0]));
    const dim3 grid(std::min(cuda_detail::blocks_for(longest), 1024u), static_cast<unsigned>(here));
    cuda_detail::adamw_many_kernel<<<grid, cuda_detail::block_threads, 0, device.stream()>>>(on_device.get());
    cuda_detail::check_launch("adamw_many_kernel");
  }
}

/// Σ x[i]² in double (waits for the GPU).
template <class T>
double sum_of_squares(const cuda& device, const T* x, index_t n) {
  return thrust_algorithms::sum_of_squares(cuda_detail::synchronous(device), x, n);
}

/// x[i] *= factor.
template <class T>
void scale(const cuda& device, T* x, T factor, index_t n) {
  thrust_algorithms::scale(cuda_detail::asynchronous(device), x, factor, n);
}

/// y += x (n elements).
template <class T>
void add(const cuda& device, T* y, const T* x, index_t n) {
  thrust_algorithms::add(cuda_detail::asynchronous(device), y, x, n);
}

}  // namespace tokenformer::kernels

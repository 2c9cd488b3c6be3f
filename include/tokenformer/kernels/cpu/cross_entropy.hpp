// tokenformer/kernels/cpu/cross_entropy.hpp: fused softmax cross-entropy on the CPU.
//
// Over the reference: one row at a time turns logits into their gradient in place (no probability
// matrix is stored besides the logits), with xsimd exp and rows in parallel with OpenMP.
#pragma once

#include <cmath>
#include <cstdint>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/kernels/cpu/simd.hpp"

namespace tokenformer::kernels {

/// Loss and, in place of the logits, their gradient; same contract as
/// reference::cross_entropy_forward_backward. Returns Σ loss over rows with a target.
template <class T>
double cross_entropy_forward_backward(const cpu&, T* logits_then_grad,  // (N, V)
                                      T* losses,                        // (N) or null
                                      const std::int32_t* targets,      // (N)
                                      index_t N, index_t V, double grad_scale) {
  using B = simd::batch<T>;
  constexpr index_t W = static_cast<index_t>(B::size);
  const index_t end = V - V % W;
  double total = 0.0;
#if TOKENFORMER_OPENMP
#pragma omp parallel for schedule(static) reduction(+ : total) if (N * V > 32768)
#endif
  for (index_t i = 0; i < N; ++i) {
    T* row = logits_then_grad + i * V;
    const std::int32_t target = targets[i];
    if (target < 0) {
      for (index_t j = 0; j < V; ++j) row[j] = T(0);
      if (losses) losses[i] = T(0);
      continue;
    }
    const T max = simd::max(row, V);
    const B m(max);
    B acc(T(0));
    for (index_t j = 0; j < end; j += W) {
      const B e = xsimd::exp(B::load_unaligned(row + j) - m);
      acc += e;
    }
    T sum = xsimd::hadd(acc);
    for (index_t j = end; j < V; ++j) sum += std::exp(row[j] - max);
    const T lse = max + std::log(sum);
    const T loss = lse - row[target];
    total += static_cast<double>(loss);
    if (losses) losses[i] = loss;
    const T scale = static_cast<T>(grad_scale);
    const B lb(lse), sb(scale);
    for (index_t j = 0; j < end; j += W) (xsimd::exp(B::load_unaligned(row + j) - lb) * sb).store_unaligned(row + j);
    for (index_t j = end; j < V; ++j) row[j] = std::exp(row[j] - lse) * scale;
    row[target] -= scale;
  }
  return total;
}

}  // namespace tokenformer::kernels

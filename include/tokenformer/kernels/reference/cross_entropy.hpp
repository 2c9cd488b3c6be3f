// tokenformer/kernels/reference/cross_entropy.hpp: plain softmax cross-entropy, the specification
// of kernels::cross_entropy_forward_backward.
#pragma once

#include <cmath>
#include <cstdint>

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels::reference {

/// For each row i with target t_i >= 0: loss_i = logsumexp(logits_i) − logits_i[t_i], and, in place
/// of the logits, d_logits_i = (softmax(logits_i) − onehot(t_i)) · grad_scale. Rows with target −1 are
/// ignored: loss 0 and zero gradient. Returns Σ loss_i (in double).
template <class T>
double cross_entropy_forward_backward(T* logits_then_grad,          // (N, V) in: logits, out: d_logits
                                      T* losses,                    // (N) or null
                                      const std::int32_t* targets,  // (N)
                                      index_t N, index_t V, double grad_scale) {
  double total = 0.0;
  for (index_t i = 0; i < N; ++i) {
    T* row = logits_then_grad + i * V;
    if (targets[i] < 0) {
      for (index_t j = 0; j < V; ++j) row[j] = T(0);
      if (losses) losses[i] = T(0);
      continue;
    }
    double max = -INFINITY;
    for (index_t j = 0; j < V; ++j) max = std::fmax(max, static_cast<double>(row[j]));
    double sum = 0.0;
    for (index_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(row[j]) - max);
    const double lse = max + std::log(sum);
    const double loss = lse - static_cast<double>(row[targets[i]]);
    total += loss;
    if (losses) losses[i] = static_cast<T>(loss);
    for (index_t j = 0; j < V; ++j) {
      const double p = std::exp(static_cast<double>(row[j]) - lse);
      row[j] = static_cast<T>((p - (j == targets[i] ? 1.0 : 0.0)) * grad_scale);
    }
  }
  return total;
}

}  // namespace tokenformer::kernels::reference

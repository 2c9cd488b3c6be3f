// tokenformer/kernels/reference/adamw.hpp: plain AdamW step, the specification of
// kernels::adamw_step. Follows torch.optim.AdamW (decoupled weight decay) operation for operation.
#pragma once

#include <cmath>

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels::reference {

/// One AdamW step for n parameters, at step number `step` (1 for the first):
///   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///   p ← p − (lr / (1−β1^step)) · m / (√v / √(1−β2^step) + ε)
template <class T>
void adamw_step(T* p, T* m, T* v, const T* g, index_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, long step) {
  const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  for (index_t i = 0; i < n; ++i) {
    double pi = static_cast<double>(p[i]) * (1.0 - lr * weight_decay);
    const double gi = static_cast<double>(g[i]);
    const double mi = beta1 * static_cast<double>(m[i]) + (1.0 - beta1) * gi;
    const double vi = beta2 * static_cast<double>(v[i]) + (1.0 - beta2) * gi * gi;
    pi -= lr / bias1 * mi / (std::sqrt(vi) / std::sqrt(bias2) + eps);
    p[i] = static_cast<T>(pi);
    m[i] = static_cast<T>(mi);
    v[i] = static_cast<T>(vi);
  }
}

}  // namespace tokenformer::kernels::reference

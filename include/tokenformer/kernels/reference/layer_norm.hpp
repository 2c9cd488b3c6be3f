// tokenformer/kernels/reference/layer_norm.hpp: plain LayerNorm, the specification of
// kernels::layer_norm_forward.
#pragma once

#include <cmath>

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels::reference {

/// out = (x - mean) / sqrt(var + eps) [· weight + bias] per row, biased variance, in double.
/// weight and bias may both be null (non-parametric LayerNorm). mean and rstd, if not null, receive
/// each row's mean and 1/sqrt(var + eps).
template <class T>
void layer_norm_forward(T* out,          // (R, C)
                        T* mean,         // (R) or null
                        T* rstd,         // (R) or null
                        const T* x,      // (R, C)
                        const T* weight, // (C) or null
                        const T* bias,   // (C) or null
                        index_t rows, index_t C, double eps) {
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * C;
    double m = 0.0;
    for (index_t i = 0; i < C; ++i) m += static_cast<double>(xr[i]);
    m /= static_cast<double>(C);
    double v = 0.0;
    for (index_t i = 0; i < C; ++i) v += (static_cast<double>(xr[i]) - m) * (static_cast<double>(xr[i]) - m);
    v /= static_cast<double>(C);
    const double rs = 1.0 / std::sqrt(v + eps);
    for (index_t i = 0; i < C; ++i) {
      double y = (static_cast<double>(xr[i]) - m) * rs;
      if (weight != nullptr) y = y * static_cast<double>(weight[i]) + static_cast<double>(bias[i]);
      out[r * C + i] = static_cast<T>(y);
    }
    if (mean != nullptr) mean[r] = static_cast<T>(m);
    if (rstd != nullptr) rstd[r] = static_cast<T>(rs);
  }
}

}  // namespace tokenformer::kernels::reference

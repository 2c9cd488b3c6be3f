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
void layer_norm_forward(T* out,           // (R, C)
                        T* mean,          // (R) or null
                        T* rstd,          // (R) or null
                        const T* x,       // (R, C)
                        const T* weight,  // (C) or null
                        const T* bias,    // (C) or null
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

/// Gradient of layer_norm_forward, in double. Needs x and the mean and rstd the forward saved.
/// dx is overwritten (or accumulated into when `accumulate`); d_weight and d_bias (both null for the
/// non-parametric form) are accumulated into.
///   x̂ = (x − mean)·rstd;  dx̂ = dy·w;  dx = rstd · (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))
template <class T>
void layer_norm_backward(T* dx,            // (R, C)
                         T* d_weight,      // (C) or null
                         T* d_bias,        // (C) or null
                         const T* dy,      // (R, C)
                         const T* x,       // (R, C)
                         const T* weight,  // (C) or null
                         const T* mean,    // (R)
                         const T* rstd,    // (R)
                         index_t rows, index_t C, bool accumulate = false) {
  for (index_t r = 0; r < rows; ++r) {
    const double m = static_cast<double>(mean[r]), rs = static_cast<double>(rstd[r]);
    double mean_dxhat = 0.0, mean_dxhat_xhat = 0.0;
    for (index_t i = 0; i < C; ++i) {
      const double xhat = (static_cast<double>(x[r * C + i]) - m) * rs;
      const double dxhat = static_cast<double>(dy[r * C + i]) * (weight ? static_cast<double>(weight[i]) : 1.0);
      mean_dxhat += dxhat;
      mean_dxhat_xhat += dxhat * xhat;
      if (d_weight != nullptr) {
        d_weight[i] = static_cast<T>(static_cast<double>(d_weight[i]) + static_cast<double>(dy[r * C + i]) * xhat);
        d_bias[i] = static_cast<T>(static_cast<double>(d_bias[i]) + static_cast<double>(dy[r * C + i]));
      }
    }
    mean_dxhat /= static_cast<double>(C);
    mean_dxhat_xhat /= static_cast<double>(C);
    for (index_t i = 0; i < C; ++i) {
      const double xhat = (static_cast<double>(x[r * C + i]) - m) * rs;
      const double dxhat = static_cast<double>(dy[r * C + i]) * (weight ? static_cast<double>(weight[i]) : 1.0);
      const double g = rs * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
      T& out = dx[r * C + i];
      out = static_cast<T>(accumulate ? static_cast<double>(out) + g : g);
    }
  }
}

}  // namespace tokenformer::kernels::reference

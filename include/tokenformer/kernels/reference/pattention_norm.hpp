// tokenformer/kernels/reference/pattention_norm.hpp: plain Θ of Pattention, the specification of
// kernels::pattention_norm_forward.
#pragma once

#include <cmath>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/model_config.hpp"

namespace tokenformer::kernels::reference {

/// Exact GeLU: x · Φ(x) = 0.5 · x · (1 + erf(x / √2)), as torch.nn.functional.gelu.
inline double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

/// Applies Θ to each row of scores, computing in double.
///   l2_norm_gelu: out = gelu(s · √N / ||s||₂)
///   gelu_l2_norm: out = g · √N / ||g||₂, g = gelu(s)
///   softmax:      out = exp(s) · N / Σ exp(s)
/// N is `scale_tokens`: the row length n normally, or a pinned count after growth.
/// A row whose norm is zero (official code: 0/0 = NaN) gives a row of zeros.
/// `out` may alias `scores`.
template <class T>
void pattention_norm_forward(T* out,           // (R, n)
                             const T* scores,  // (R, n)
                             index_t rows, index_t n, Normalization kind, index_t scale_tokens) {
  const double N = static_cast<double>(scale_tokens);
  for (index_t r = 0; r < rows; ++r) {
    const T* s = scores + r * n;
    T* o = out + r * n;
    if (kind == Normalization::l2_norm_gelu) {
      double ss = 0.0;
      for (index_t i = 0; i < n; ++i) ss += static_cast<double>(s[i]) * static_cast<double>(s[i]);
      const double scale = ss == 0.0 ? 0.0 : std::sqrt(N) / std::sqrt(ss);
      for (index_t i = 0; i < n; ++i) o[i] = static_cast<T>(gelu(static_cast<double>(s[i]) * scale));
    } else if (kind == Normalization::gelu_l2_norm) {
      double ss = 0.0;
      for (index_t i = 0; i < n; ++i) {
        const double g = gelu(static_cast<double>(s[i]));
        ss += g * g;
      }
      const double scale = ss == 0.0 ? 0.0 : std::sqrt(N) / std::sqrt(ss);
      for (index_t i = 0; i < n; ++i) o[i] = static_cast<T>(gelu(static_cast<double>(s[i])) * scale);
    } else {
      double max = -INFINITY;
      for (index_t i = 0; i < n; ++i) max = std::fmax(max, static_cast<double>(s[i]));
      double sum = 0.0;
      for (index_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(s[i]) - max);
      for (index_t i = 0; i < n; ++i) o[i] = static_cast<T>(std::exp(static_cast<double>(s[i]) - max) * N / sum);
    }
  }
}

}  // namespace tokenformer::kernels::reference

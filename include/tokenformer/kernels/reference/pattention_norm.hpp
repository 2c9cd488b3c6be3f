// tokenformer/kernels/reference/pattention_norm.hpp: plain Θ of Pattention, the specification of
// kernels::pattention_norm_forward.
#pragma once

#include <cmath>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/normalization.hpp"

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
  check_normalization(kind, "reference::pattention_norm_forward");
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

/// d gelu / dx = Φ(x) + x·φ(x).
inline double gelu_derivative(double x) {
  const double cdf = 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
  const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * 3.14159265358979323846);
  return cdf + x * pdf;
}

/// Gradient of pattention_norm_forward: d_scores = (∂Θ(scores)/∂scores)ᵀ · d_weights, per row, in double.
/// Needs the scores before Θ. A zero-norm row (output held at zero) has zero gradient.
/// d_scores may alias d_weights.
template <class T>
void pattention_norm_backward(T* d_scores,         // (R, n)
                              const T* d_weights,  // (R, n)
                              const T* scores,     // (R, n) before Θ
                              index_t rows, index_t n, Normalization kind, index_t scale_tokens) {
  check_normalization(kind, "reference::pattention_norm_backward");
  const double N = static_cast<double>(scale_tokens);
  std::vector<double> g(static_cast<std::size_t>(n)), dw_copy(static_cast<std::size_t>(n));
  for (index_t r = 0; r < rows; ++r) {
    const T* s = scores + r * n;
    for (index_t i = 0; i < n; ++i) dw_copy[static_cast<std::size_t>(i)] = static_cast<double>(d_weights[r * n + i]);
    const double* dw = dw_copy.data();
    T* ds = d_scores + r * n;
    auto put = [&](index_t i, double v) { ds[i] = static_cast<T>(v); };
    if (kind == Normalization::l2_norm_gelu) {
      // u = c·s/‖s‖, c = √N;  du_j = dw_j·gelu'(u_j);  ds_j = c/‖s‖ · (du_j − s_j·Σ du_i s_i / ‖s‖²)
      double ss = 0.0;
      for (index_t i = 0; i < n; ++i) ss += static_cast<double>(s[i]) * static_cast<double>(s[i]);
      if (ss == 0.0) {
        for (index_t i = 0; i < n; ++i) put(i, 0.0);
        continue;
      }
      const double norm = std::sqrt(ss), c = std::sqrt(N);
      double dot = 0.0;
      for (index_t i = 0; i < n; ++i) {
        const double u = c * static_cast<double>(s[i]) / norm;
        g[static_cast<std::size_t>(i)] = dw[i] * gelu_derivative(u);
        dot += g[static_cast<std::size_t>(i)] * static_cast<double>(s[i]);
      }
      for (index_t i = 0; i < n; ++i)
        put(i, c / norm * (g[static_cast<std::size_t>(i)] - static_cast<double>(s[i]) * dot / ss));
    } else if (kind == Normalization::gelu_l2_norm) {
      // h = gelu(s), out = c·h/‖h‖;  dh_j = c/‖h‖ · (dw_j − h_j·Σ dw_i h_i / ‖h‖²);  ds_j = dh_j·gelu'(s_j)
      double hh = 0.0;
      for (index_t i = 0; i < n; ++i) {
        g[static_cast<std::size_t>(i)] = gelu(static_cast<double>(s[i]));
        hh += g[static_cast<std::size_t>(i)] * g[static_cast<std::size_t>(i)];
      }
      if (hh == 0.0) {
        for (index_t i = 0; i < n; ++i) put(i, 0.0);
        continue;
      }
      const double norm = std::sqrt(hh), c = std::sqrt(N);
      double dot = 0.0;
      for (index_t i = 0; i < n; ++i) dot += dw[i] * g[static_cast<std::size_t>(i)];
      for (index_t i = 0; i < n; ++i) {
        const double dh = c / norm * (dw[i] - g[static_cast<std::size_t>(i)] * dot / hh);
        put(i, dh * gelu_derivative(static_cast<double>(s[i])));
      }
    } else {
      // p = softmax(s), out = N·p;  ds_j = N·p_j·(dw_j − Σ dw_i p_i)
      double max = -INFINITY;
      for (index_t i = 0; i < n; ++i) max = std::fmax(max, static_cast<double>(s[i]));
      double sum = 0.0;
      for (index_t i = 0; i < n; ++i) {
        g[static_cast<std::size_t>(i)] = std::exp(static_cast<double>(s[i]) - max);
        sum += g[static_cast<std::size_t>(i)];
      }
      double dot = 0.0;
      for (index_t i = 0; i < n; ++i) {
        g[static_cast<std::size_t>(i)] /= sum;
        dot += dw[i] * g[static_cast<std::size_t>(i)];
      }
      for (index_t i = 0; i < n; ++i) put(i, N * g[static_cast<std::size_t>(i)] * (dw[i] - dot));
    }
  }
}

}  // namespace tokenformer::kernels::reference

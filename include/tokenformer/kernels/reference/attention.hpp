// tokenformer/kernels/reference/attention.hpp: plain causal multi-head attention, the specification
// of kernels::attention_forward.
#pragma once

#include <cmath>
#include <vector>

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels::reference {

/// out[b, t, h] = Σ_{u <= t} softmax_u(q[b,t,h] · k[b,u,h] / √D) · v[b,u,h], in double.
/// q, k, v and out are [B*T, H*D] with head h in columns [h*D, (h+1)*D).
template <class T>
void attention_forward(T* out,                                  // (B*T, H*D)
                       const T* q, const T* k, const T* v,      // (B*T, H*D) each
                       index_t B, index_t T_len, index_t H, index_t D) {
  const index_t C = H * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> p(static_cast<std::size_t>(T_len));
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t t = 0; t < T_len; ++t) {
        const T* qt = q + (b * T_len + t) * C + h * D;
        double max = -INFINITY;
        for (index_t u = 0; u <= t; ++u) {
          const T* ku = k + (b * T_len + u) * C + h * D;
          double dot = 0.0;
          for (index_t d = 0; d < D; ++d) dot += static_cast<double>(qt[d]) * static_cast<double>(ku[d]);
          p[static_cast<std::size_t>(u)] = dot * scale;
          max = std::fmax(max, dot * scale);
        }
        double sum = 0.0;
        for (index_t u = 0; u <= t; ++u) {
          p[static_cast<std::size_t>(u)] = std::exp(p[static_cast<std::size_t>(u)] - max);
          sum += p[static_cast<std::size_t>(u)];
        }
        for (index_t d = 0; d < D; ++d) {
          double acc = 0.0;
          for (index_t u = 0; u <= t; ++u)
            acc += p[static_cast<std::size_t>(u)] * static_cast<double>(v[(b * T_len + u) * C + h * D + d]);
          out[(b * T_len + t) * C + h * D + d] = static_cast<T>(acc / sum);
        }
      }
}

}  // namespace tokenformer::kernels::reference

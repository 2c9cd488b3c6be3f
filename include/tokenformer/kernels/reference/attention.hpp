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
void attention_forward(T* out,                              // (B*T, H*D)
                       const T* q, const T* k, const T* v,  // (B*T, H*D) each
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

/// Gradient of attention_forward, in double: overwrites dq, dk, dv.
///   S = q·kᵀ/√D (causal), P = softmax(S), out = P·v
///   dv = Pᵀ·dout;  dP = dout·vᵀ;  dS = P ⊙ (dP − rowsum(dP ⊙ P));  dq = dS·k/√D;  dk = dSᵀ·q/√D
template <class T>
void attention_backward(T* dq, T* dk, T* dv,                 // (B*T, H*D) each
                        const T* dout,                       // (B*T, H*D)
                        const T* q, const T* k, const T* v,  // (B*T, H*D) each
                        index_t B, index_t T_len, index_t H, index_t D) {
  const index_t C = H * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (index_t i = 0; i < B * T_len * C; ++i) dq[i] = dk[i] = dv[i] = T(0);
  std::vector<double> p(static_cast<std::size_t>(T_len)), dp(static_cast<std::size_t>(T_len));
  auto at = [&](const T* base, index_t b, index_t t, index_t h, index_t d) {
    return static_cast<double>(base[(b * T_len + t) * C + h * D + d]);
  };
  auto add = [&](T* base, index_t b, index_t t, index_t h, index_t d, double value) {
    T& x = base[(b * T_len + t) * C + h * D + d];
    x = static_cast<T>(static_cast<double>(x) + value);
  };
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t t = 0; t < T_len; ++t) {
        double max = -INFINITY;
        for (index_t u = 0; u <= t; ++u) {
          double dot = 0.0;
          for (index_t d = 0; d < D; ++d) dot += at(q, b, t, h, d) * at(k, b, u, h, d);
          p[static_cast<std::size_t>(u)] = dot * scale;
          max = std::fmax(max, dot * scale);
        }
        double sum = 0.0;
        for (index_t u = 0; u <= t; ++u) {
          p[static_cast<std::size_t>(u)] = std::exp(p[static_cast<std::size_t>(u)] - max);
          sum += p[static_cast<std::size_t>(u)];
        }
        double row = 0.0;
        for (index_t u = 0; u <= t; ++u) {
          p[static_cast<std::size_t>(u)] /= sum;
          double g = 0.0;
          for (index_t d = 0; d < D; ++d) g += at(dout, b, t, h, d) * at(v, b, u, h, d);
          dp[static_cast<std::size_t>(u)] = g;
          row += g * p[static_cast<std::size_t>(u)];
        }
        for (index_t u = 0; u <= t; ++u) {
          const double pu = p[static_cast<std::size_t>(u)];
          const double ds = pu * (dp[static_cast<std::size_t>(u)] - row) * scale;
          for (index_t d = 0; d < D; ++d) {
            add(dv, b, u, h, d, pu * at(dout, b, t, h, d));
            add(dq, b, t, h, d, ds * at(k, b, u, h, d));
            add(dk, b, u, h, d, ds * at(q, b, t, h, d));
          }
        }
      }
}

}  // namespace tokenformer::kernels::reference

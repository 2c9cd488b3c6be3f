// tokenformer/kernels/reference/attention.hpp: plain multi-head attention with any mask of
// kernels/attention_shape.hpp, the specification of kernels::attention_forward/backward.
#pragma once

#include <cmath>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/kernels/attention_shape.hpp"

namespace tokenformer::kernels::reference {

/// out[g, t, h] = Σ_{u < visible_end(t)} softmax_u(q[g,t,h] · k[g,u,h] / √D) · v[g,u,h], in double;
/// lse[g, h, t] = log Σ_u exp(q·k/√D) over the same keys (skipped when lse is null).
template <class T>
void attention_forward(T* out, non_deduced<T>* lse,         // (batch*Tq, H*D), (batch, H, Tq) or null
                       const T* q, const T* k, const T* v,  // (batch*Tq, H*D), (batch*Tk, H*D) x2
                       const AttentionShape& s) {
  check_attention_shape(s);
  const index_t C = s.width(), D = s.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> p(static_cast<std::size_t>(s.keys));
  for (index_t g = 0; g < s.batch; ++g)
    for (index_t h = 0; h < s.heads; ++h)
      for (index_t t = 0; t < s.queries; ++t) {
        const T* qt = q + (g * s.queries + t) * C + h * D;
        const index_t end = s.visible_end(t);
        double max = -INFINITY;
        for (index_t u = 0; u < end; ++u) {
          const T* ku = k + (g * s.keys + u) * C + h * D;
          double dot = 0.0;
          for (index_t d = 0; d < D; ++d) dot += static_cast<double>(qt[d]) * static_cast<double>(ku[d]);
          p[static_cast<std::size_t>(u)] = dot * scale;
          max = std::fmax(max, dot * scale);
        }
        double sum = 0.0;
        for (index_t u = 0; u < end; ++u) {
          p[static_cast<std::size_t>(u)] = std::exp(p[static_cast<std::size_t>(u)] - max);
          sum += p[static_cast<std::size_t>(u)];
        }
        for (index_t d = 0; d < D; ++d) {
          double acc = 0.0;
          for (index_t u = 0; u < end; ++u)
            acc += p[static_cast<std::size_t>(u)] * static_cast<double>(v[(g * s.keys + u) * C + h * D + d]);
          out[(g * s.queries + t) * C + h * D + d] = static_cast<T>(acc / sum);
        }
        if (lse != nullptr) lse[(g * s.heads + h) * s.queries + t] = static_cast<T>(max + std::log(sum));
      }
}

/// One decoding step with a KV cache: the single query row q [H*D] attends to all `keys` rows of k
/// and v ([keys, H*D], row-major): out[h] = Σ_u softmax_u(q[h] · k[u,h] / √D) · v[u,h], in double.
/// `scratch` (H * keys values) receives the attention weights; nothing is allocated.
template <class T>
void attention_decode(T* out, const T* q, const T* k, const T* v,  // (H*D), (keys, H*D) x2
                      T* scratch, index_t keys, index_t H, index_t D) {
  const index_t C = H * D;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (index_t h = 0; h < H; ++h) {
    T* p = scratch + h * keys;
    double max = -INFINITY;
    for (index_t u = 0; u < keys; ++u) {
      double dot = 0.0;
      for (index_t d = 0; d < D; ++d)
        dot += static_cast<double>(q[h * D + d]) * static_cast<double>(k[u * C + h * D + d]);
      p[u] = static_cast<T>(dot * scale);
      max = std::fmax(max, dot * scale);
    }
    double sum = 0.0;
    for (index_t u = 0; u < keys; ++u) sum += std::exp(static_cast<double>(p[u]) - max);
    for (index_t d = 0; d < D; ++d) {
      double acc = 0.0;
      for (index_t u = 0; u < keys; ++u)
        acc += std::exp(static_cast<double>(p[u]) - max) * static_cast<double>(v[u * C + h * D + d]);
      out[h * D + d] = static_cast<T>(acc / sum);
    }
  }
}

/// Gradient of attention_forward, in double, recomputed from q, k, v alone: overwrites dq, dk, dv.
///   S = q·kᵀ/√D (masked), P = softmax(S), out = P·v
///   dv = Pᵀ·dout;  dP = dout·vᵀ;  dS = P ⊙ (dP − rowsum(dP ⊙ P));  dq = dS·k/√D;  dk = dSᵀ·q/√D
template <class T>
void attention_backward(T* dq, T* dk, T* dv,                 // like q, k, v
                        const T* dout,                       // like q
                        const T* q, const T* k, const T* v,  // as given to the forward
                        const AttentionShape& s) {
  check_attention_shape(s);
  const index_t C = s.width(), D = s.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (index_t i = 0; i < s.query_rows() * C; ++i) dq[i] = T(0);
  for (index_t i = 0; i < s.key_rows() * C; ++i) dk[i] = dv[i] = T(0);
  std::vector<double> p(static_cast<std::size_t>(s.keys)), dp(static_cast<std::size_t>(s.keys));
  const auto qrow = [&](index_t g, index_t t) { return (g * s.queries + t) * C; };
  const auto krow = [&](index_t g, index_t u) { return (g * s.keys + u) * C; };
  const auto add = [](T& x, double value) { x = static_cast<T>(static_cast<double>(x) + value); };
  for (index_t g = 0; g < s.batch; ++g)
    for (index_t h = 0; h < s.heads; ++h)
      for (index_t t = 0; t < s.queries; ++t) {
        const index_t end = s.visible_end(t), qo = qrow(g, t) + h * D;
        double max = -INFINITY;
        for (index_t u = 0; u < end; ++u) {
          double dot = 0.0;
          for (index_t d = 0; d < D; ++d)
            dot += static_cast<double>(q[qo + d]) * static_cast<double>(k[krow(g, u) + h * D + d]);
          p[static_cast<std::size_t>(u)] = dot * scale;
          max = std::fmax(max, dot * scale);
        }
        double sum = 0.0;
        for (index_t u = 0; u < end; ++u) {
          p[static_cast<std::size_t>(u)] = std::exp(p[static_cast<std::size_t>(u)] - max);
          sum += p[static_cast<std::size_t>(u)];
        }
        double row = 0.0;
        for (index_t u = 0; u < end; ++u) {
          p[static_cast<std::size_t>(u)] /= sum;
          double g_u = 0.0;
          for (index_t d = 0; d < D; ++d)
            g_u += static_cast<double>(dout[qo + d]) * static_cast<double>(v[krow(g, u) + h * D + d]);
          dp[static_cast<std::size_t>(u)] = g_u;
          row += g_u * p[static_cast<std::size_t>(u)];
        }
        for (index_t u = 0; u < end; ++u) {
          const double pu = p[static_cast<std::size_t>(u)];
          const double ds = pu * (dp[static_cast<std::size_t>(u)] - row) * scale;
          const index_t ko = krow(g, u) + h * D;
          for (index_t d = 0; d < D; ++d) {
            add(dv[ko + d], pu * static_cast<double>(dout[qo + d]));
            add(dq[qo + d], ds * static_cast<double>(k[ko + d]));
            add(dk[ko + d], ds * static_cast<double>(q[qo + d]));
          }
        }
      }
}

}  // namespace tokenformer::kernels::reference

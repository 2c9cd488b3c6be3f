// tokenformer/kernels/reference/device.hpp: the reference kernels behind the `reference` device tag.
//
// Every entry point of kernels/device_contract.hpp for `const reference&`, each forwarding to the
// plain kernel of kernels/reference/ (or, for the small helpers, a plain loop). With these,
// Pattention<T, reference>, TokenFormerLayer<T, reference> and LanguageModel<Config, reference> run
// entirely on the specification kernels, and one test template compares any device against them.
#pragma once

#include <cmath>
#include <cstdint>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/normalization.hpp"
#include "tokenformer/kernels/adamw_segment.hpp"
#include "tokenformer/kernels/attention_shape.hpp"
#include "tokenformer/kernels/reference/adamw.hpp"
#include "tokenformer/kernels/reference/attention.hpp"
#include "tokenformer/kernels/reference/cross_entropy.hpp"
#include "tokenformer/kernels/reference/embedding.hpp"
#include "tokenformer/kernels/reference/gemm.hpp"
#include "tokenformer/kernels/reference/layer_norm.hpp"
#include "tokenformer/kernels/reference/pattention_norm.hpp"
#include "tokenformer/kernels/reference/rotary.hpp"

namespace tokenformer::kernels {

/// The `reference` device tag, named apart from the kernels::reference namespace of its kernels.
using reference_device = ::tokenformer::reference;

/// reference::gemm on the reference device.
template <class T>
void gemm(const reference_device&, T* C, index_t ldc, const T* A, index_t lda, bool transpose_a, const T* B,
          index_t ldb, bool transpose_b, index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0)) {
  reference::gemm(C, ldc, A, lda, transpose_a, B, ldb, transpose_b, M, N, K, alpha, beta);
}

/// reference::pattention_norm_forward on the reference device.
template <class T>
void pattention_norm_forward(const reference_device&, T* out, const T* scores, index_t rows, index_t n,
                             Normalization kind, index_t scale_tokens) {
  reference::pattention_norm_forward(out, scores, rows, n, kind, scale_tokens);
}
/// reference::pattention_norm_backward on the reference device.
template <class T>
void pattention_norm_backward(const reference_device&, T* d_scores, const T* d_weights, const T* scores, index_t rows,
                              index_t n, Normalization kind, index_t scale_tokens) {
  reference::pattention_norm_backward(d_scores, d_weights, scores, rows, n, kind, scale_tokens);
}

/// reference::layer_norm_forward on the reference device.
template <class T>
void layer_norm_forward(const reference_device&, T* out, T* mean, T* rstd, const T* x, const T* weight, const T* bias,
                        index_t rows, index_t C, double eps) {
  reference::layer_norm_forward(out, mean, rstd, x, weight, bias, rows, C, eps);
}
/// reference::layer_norm_backward on the reference device.
template <class T>
void layer_norm_backward(const reference_device&, T* dx, T* d_weight, T* d_bias, const T* dy, const T* x,
                         const T* weight, const T* mean, const T* rstd, index_t rows, index_t C,
                         bool accumulate = false) {
  reference::layer_norm_backward(dx, d_weight, d_bias, dy, x, weight, mean, rstd, rows, C, accumulate);
}

/// reference::rotary_forward on the reference device.
template <class T>
void rotary_forward(const reference_device&, T* x, index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims,
                    double base, index_t position_offset) {
  reference::rotary_forward(x, B, T_len, H, D, rotary_dims, base, position_offset);
}
/// reference::rotary_backward on the reference device.
template <class T>
void rotary_backward(const reference_device&, T* dx, index_t B, index_t T_len, index_t H, index_t D,
                     index_t rotary_dims, double base, index_t position_offset) {
  reference::rotary_backward(dx, B, T_len, H, D, rotary_dims, base, position_offset);
}

/// reference::attention_forward on the reference device.
template <class T>
void attention_forward(const reference_device&, T* out, non_deduced<T>* lse, const T* q, const T* k, const T* v,
                       const AttentionShape& s) {
  reference::attention_forward(out, lse, q, k, v, s);
}
/// reference::attention_decode on the reference device.
template <class T>
void attention_decode(const reference_device&, T* out, const T* q, const T* k, const T* v, T* scratch, index_t keys,
                      index_t H, index_t D) {
  reference::attention_decode(out, q, k, v, scratch, keys, H, D);
}
/// The reference backward recomputes everything from q, k, v: `out` and `lse` are not read.
template <class T>
void attention_backward(const reference_device&, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T*, const T*, const AttentionShape& s) {
  reference::attention_backward(dq, dk, dv, dout, q, k, v, s);
}

/// reference::embedding_forward on the reference device.
template <class T>
void embedding_forward(const reference_device&, T* out, const std::int32_t* tokens, const T* table, index_t N,
                       index_t C) {
  reference::embedding_forward(out, tokens, table, N, C);
}
/// reference::embedding_backward on the reference device.
template <class T>
void embedding_backward(const reference_device&, T* d_table, const T* dout, const std::int32_t* tokens, index_t N,
                        index_t C) {
  reference::embedding_backward(d_table, dout, tokens, N, C);
}

/// reference::cross_entropy_forward_backward on the reference device.
template <class T>
double cross_entropy_forward_backward(const reference_device&, T* logits_then_grad, T* losses,
                                      const std::int32_t* targets, index_t N, index_t V, double grad_scale) {
  return reference::cross_entropy_forward_backward(logits_then_grad, losses, targets, N, V, grad_scale);
}

/// reference::adamw_step on each of the `count` segments.
template <class T>
void adamw_step_many(const reference_device&, const AdamWSegment<T>* segments, std::size_t count, double lr,
                     double beta1, double beta2, double eps, long step) {
  for (std::size_t i = 0; i < count; ++i) {
    const AdamWSegment<T>& s = segments[i];
    reference::adamw_step(s.p, s.m, s.v, s.g, s.n, lr, beta1, beta2, eps, s.weight_decay, step);
  }
}

/// out[i] = in[i] for n elements (nothing when out == in).
template <class T>
void copy(const reference_device&, T* out, const T* in, index_t n) {
  if (out == in) return;
  for (index_t i = 0; i < n; ++i) out[i] = in[i];
}
/// x[i] *= factor for n elements.
template <class T>
void scale(const reference_device&, T* x, T factor, index_t n) {
  for (index_t i = 0; i < n; ++i) x[i] *= factor;
}
/// y[i] += x[i] for n elements.
template <class T>
void add(const reference_device&, T* y, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] += x[i];
}
/// out[i] = gelu(x[i]) (exact GeLU, in double).
template <class T>
void gelu_forward(const reference_device&, T* out, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) out[i] = static_cast<T>(reference::gelu(static_cast<double>(x[i])));
}
/// dx[i] = dy[i] · gelu'(x[i]) (in double).
template <class T>
void gelu_backward(const reference_device&, T* dx, const T* dy, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(x[i]);
    const double derivative = 0.5 * (1.0 + std::erf(v / std::sqrt(2.0))) +
                              v * std::exp(-0.5 * v * v) * 0.39894228040143267794;  // φ = e^(-v²/2)/√(2π)
    dx[i] = static_cast<T>(static_cast<double>(dy[i]) * derivative);
  }
}
/// Σ x[i]², accumulated in double.
template <class T>
double sum_of_squares(const reference_device&, const T* x, index_t n) {
  double total = 0.0;
  for (index_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return total;
}
/// Index of the first element of x that is NaN or ±Inf, or -1 if all are finite.
template <class T>
index_t first_non_finite(const reference_device&, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

}  // namespace tokenformer::kernels

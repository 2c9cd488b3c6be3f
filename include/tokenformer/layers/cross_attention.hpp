// tokenformer/layers/cross_attention.hpp: pre-norm multi-head cross-attention with Pattention
// projections and a residual, FIT's read and write steps.
//
//     out = x + proj(attention(Q(LN(x)), K(LN(s)), V(LN(s))))
//
// x [Mq, Cx] are the queries' rows (the residual stream that is updated), s [Mk, Cs] the source rows
// they read from. Q: Cx -> Cx, K and V: Cs -> Cx, proj: Cx -> Cx, all Pattentions (Q, K, V with the
// qkv token count, proj with the proj count); LN is the non-parametric LayerNorm; heads split Cx;
// no rotary. The attention call (which query rows see which source rows) is an AttentionShape over
// groups: group i's queries attend group i's sources (batch = groups, queries and keys per group),
// with the padding rule of grouped_attention.hpp. No FFN.
#pragma once

#include <string>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/normalization.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/grouped_attention.hpp"
#include "tokenformer/layers/pattention.hpp"

namespace tokenformer {

/// Pre-norm multi-head cross-attention with Pattention projections and a residual (FIT's read and
/// write): out = x + proj(attention(Q(LN x), K(LN s), V(LN s))), x [Mq, Cx], s [Mk, Cs].
template <class T, class Device = cpu>
class CrossAttention {
 public:
  CrossAttention() = default;
  /// Queries of width `query_width` read sources of width `source_width` with `heads` heads.
  CrossAttention(index_t query_width, index_t source_width, index_t heads, index_t qkv_tokens, index_t proj_tokens,
                 Normalization kind, double eps, Device device = {})
      : query(query_width, query_width, qkv_tokens, kind, device),
        key(source_width, query_width, qkv_tokens, kind, device),
        value(source_width, query_width, qkv_tokens, kind, device),
        proj(query_width, query_width, proj_tokens, kind, device),
        device_(device),
        query_width_(query_width),
        source_width_(source_width),
        heads_(heads),
        eps_(eps) {
    if (heads <= 0 || query_width % heads != 0)
      throw config_error("cross-attention heads (" + std::to_string(heads) + ") must be positive and divide " +
                         std::to_string(query_width));
  }

  ///@{
  /// The projections: Q (Cx to Cx), K and V (Cs to Cx), output (Cx to Cx).
  Pattention<T, Device> query, key, value, proj;
  ///@}

  index_t query_width() const { return query_width_; }    ///< Cx
  index_t source_width() const { return source_width_; }  ///< Cs
  index_t heads() const { return heads_; }                ///< heads, splitting Cx

  /// Visits (name, Parameter&) of each parameter: the projections', prefixed "query.", "key.",
  /// "value." and "proj.".
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    const auto prefixed = [&](const char* prefix) {
      return [&visit, prefix](const std::string& name, Parameter<T, Device>& p) { visit(prefix + name, p); };
    };
    query.for_each_parameter(prefixed("query."));
    key.for_each_parameter(prefixed("key."));
    value.for_each_parameter(prefixed("value."));
    proj.for_each_parameter(prefixed("proj."));
  }

  /// Visits (path, role, Pattention&): "query", "key", "value" (qkv) and "proj".
  template <class Visitor>
  void for_each_pattention(Visitor&& visit) {
    visit(std::string("query"), PattentionRole::qkv, query);
    visit(std::string("key"), PattentionRole::qkv, key);
    visit(std::string("value"), PattentionRole::qkv, value);
    visit(std::string("proj"), PattentionRole::proj, proj);
  }

  /// out = x + proj(attention(Q(LN x), K(LN s), V(LN s))) over `groups` groups of `queries` query rows
  /// and `keys` source rows each; `sequence_groups` and `last_keys` as in grouped_attention_forward.
  /// out may alias x for inference only (backward needs x).
  void forward(TensorView<T, Device> out,           // (groups*queries, Cx)
               TensorView<const T, Device> x,       // (groups*queries, Cx)
               TensorView<const T, Device> source,  // (groups*keys, Cs)
               index_t groups, index_t queries, index_t keys, index_t sequence_groups = 1, index_t last_keys = 0) {
    const index_t Mq = groups * queries, Mk = groups * keys, C = query_width_;
    expect_shape(Shape{x.rows(), x.cols()}, Shape{Mq, C}, "CrossAttention queries");
    expect_shape(Shape{out.rows(), out.cols()}, Shape{Mq, C}, "CrossAttention output");
    expect_shape(Shape{source.rows(), source.cols()}, Shape{Mk, source_width_}, "CrossAttention source");
    shape_ = kernels::AttentionShape{groups, queries, keys, heads_, C / heads_, kernels::AttentionMask::none, 1, 1};
    kernels::check_attention_shape(shape_);
    sequence_groups_ = sequence_groups;
    last_keys_ = last_keys;
    for (auto* t : {&normed_x_, &q_, &context_}) t->resize(Shape{Mq, C});
    for (auto* t : {&k_, &v_}) t->resize(Shape{Mk, C});
    normed_source_.resize(Shape{Mk, source_width_});
    for (auto* t : {&mean_x_, &rstd_x_}) t->resize(Shape{Mq});
    for (auto* t : {&mean_s_, &rstd_s_}) t->resize(Shape{Mk});
    lse_.resize(Shape{groups, heads_, queries});
    const T* none = nullptr;
    kernels::layer_norm_forward(device_, normed_x_.data(), mean_x_.data(), rstd_x_.data(), x.data(), none, none, Mq, C,
                                eps_);
    kernels::layer_norm_forward(device_, normed_source_.data(), mean_s_.data(), rstd_s_.data(), source.data(), none,
                                none, Mk, source_width_, eps_);
    query.forward(q_, normed_x_);
    key.forward(k_, normed_source_);
    value.forward(v_, normed_source_);
    grouped_attention_forward(device_, context_.data(), lse_.data(), q_.data(), k_.data(), v_.data(), shape_,
                              sequence_groups_, last_keys_);
    kernels::copy(device_, out.data(), x.data(), Mq * C);
    proj.forward(out, context_, /*accumulate=*/true);
  }

  /// Backward of the last forward (given the same x and source): adds parameter gradients, writes
  /// dL/dx into d_x (which may alias d_out) and adds dL/dsource to d_source.
  void backward(TensorView<T, Device> d_x,             // (groups*queries, Cx)
                TensorView<T, Device> d_source,        // (groups*keys, Cs), accumulated
                TensorView<const T, Device> d_out,     // (groups*queries, Cx)
                TensorView<const T, Device> x,         // (groups*queries, Cx)
                TensorView<const T, Device> source) {  // (groups*keys, Cs)
    const index_t Mq = shape_.query_rows(), Mk = shape_.key_rows(), C = query_width_;
    expect_shape(Shape{x.rows(), x.cols()}, Shape{Mq, C}, "CrossAttention backward queries");
    expect_shape(Shape{d_out.rows(), d_out.cols()}, Shape{Mq, C}, "CrossAttention output gradient");
    expect_shape(Shape{d_x.rows(), d_x.cols()}, Shape{Mq, C}, "CrossAttention query gradient");
    expect_shape(Shape{source.rows(), source.cols()}, Shape{Mk, source_width_}, "CrossAttention backward source");
    expect_shape(Shape{d_source.rows(), d_source.cols()}, Shape{Mk, source_width_}, "CrossAttention source gradient");
    for (auto* t : {&d_context_, &d_q_, &d_normed_x_}) t->resize(Shape{Mq, C});
    for (auto* t : {&d_k_, &d_v_}) t->resize(Shape{Mk, C});
    d_normed_source_.resize(Shape{Mk, source_width_});
    proj.backward(d_context_, d_out, context_);
    grouped_attention_backward(device_, d_q_.data(), d_k_.data(), d_v_.data(), d_context_.data(), q_.data(), k_.data(),
                               v_.data(), context_.data(), lse_.data(), shape_, sequence_groups_, last_keys_);
    key.backward(d_normed_source_, d_k_, normed_source_);
    value.backward(d_normed_source_, d_v_, normed_source_, /*accumulate=*/true);
    const T* none = nullptr;
    T* no_grad = nullptr;
    kernels::layer_norm_backward(device_, d_source.data(), no_grad, no_grad, d_normed_source_.data(), source.data(),
                                 none, mean_s_.data(), rstd_s_.data(), Mk, source_width_, /*accumulate=*/true);
    query.backward(d_normed_x_, d_q_, normed_x_);
    kernels::copy(device_, d_x.data(), d_out.data(), Mq * C);
    kernels::layer_norm_backward(device_, d_x.data(), no_grad, no_grad, d_normed_x_.data(), x.data(), none,
                                 mean_x_.data(), rstd_x_.data(), Mq, C, /*accumulate=*/true);
  }

 private:
  Device device_{};
  index_t query_width_ = 0, source_width_ = 0, heads_ = 1;
  double eps_ = 1e-5;
  kernels::AttentionShape shape_{};
  index_t sequence_groups_ = 1, last_keys_ = 0;
  // Activation cache of the last forward.
  Tensor<T, Device> normed_x_, q_, context_, k_, v_, normed_source_;
  Tensor<T, Device> mean_x_, rstd_x_, mean_s_, rstd_s_, lse_;
  // Backward scratch.
  Tensor<T, Device> d_context_, d_q_, d_normed_x_, d_k_, d_v_, d_normed_source_;
};

}  // namespace tokenformer

// tokenformer/layers/tokenformer_layer.hpp: one TokenFormer block.
//
// A pre-norm transformer block whose every linear projection is a Pattention:
//     h   = x + SelfAttention(LN(x))        (Q, K, V, output projection: Pattentions)
//     out = h + FFN(LN(h))                  (FFN: one Pattention, C -> C with ffn_tokens tokens)
// LN is the non-parametric LayerNorm (no weight, no bias). Both residual adds are fused into the
// output GEMMs of the attention and the FFN. Shapes: x and out [B*T, C]; out may alias x for
// inference, but backward needs the forward's x unchanged, so training passes distinct buffers.
#pragma once

#include <string>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/layers/self_attention.hpp"

namespace tokenformer {

/// One pre-norm TokenFormer block: h = x + SelfAttention(LN x), out = h + FFN(LN h), every projection
/// a Pattention and LN without weight or bias. x and out: [B·T, C].
template <class T, class Device = cpu>
class TokenFormerLayer {
 public:
  TokenFormerLayer() = default;
  /// Block `layer` of a model of `config` (heads, rotary, normalization, epsilon, and that layer's
  /// token counts and pinned scales: ModelConfig::layer).
  explicit TokenFormerLayer(const ModelConfig& config, Device device = {}, index_t layer = 0)
      : TokenFormerLayer(config, config.layer(layer), device) {}

  /// The token counts and pinned scales of this block: see ModelConfig::layer.
  LayerTokens tokens() const {
    return LayerTokens{attention.query.tokens(),
                       attention.proj.tokens(),
                       ffn.tokens(),
                       attention.query.pinned_scale_tokens(),
                       attention.proj.pinned_scale_tokens(),
                       ffn.pinned_scale_tokens()};
  }

  SelfAttention<T, Device> attention;  ///< Q, K, V and output Pattentions
  Pattention<T, Device> ffn;           ///< the FFN: C to C with ffn_tokens tokens

  index_t hidden_size() const { return hidden_size_; }  ///< C

  /// Visits parameters with the official names relative to the block: "attention.query.key_param_tokens",
  /// ..., "mlp.value_param_tokens".
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    attention.for_each_parameter(
        [&visit](const std::string& name, Parameter<T, Device>& p) { visit("attention." + name, p); });
    ffn.for_each_parameter([&visit](const std::string& name, Parameter<T, Device>& p) { visit("mlp." + name, p); });
  }

  /// Visits (path, role, Pattention&) of each Pattention, with the paths of for_each_parameter
  /// without the tensor name: "attention.query", ..., "attention.proj" and "mlp" (ffn).
  template <class Visitor>
  void for_each_pattention(Visitor&& visit) {
    attention.for_each_pattention([&visit](const std::string& path, PattentionRole role, Pattention<T, Device>& p) {
      visit("attention." + path, role, p);
    });
    visit(std::string("mlp"), PattentionRole::ffn, ffn);
  }

  /// out = block(x) for B sequences of T positions starting at `position_offset`.
  void forward(TensorView<T, Device> out,      // (B*T, C)
               TensorView<const T, Device> x,  // (B*T, C)
               index_t B, index_t T_len, index_t position_offset = 0) {
    const index_t M = B * T_len, C = hidden_size_;
    const Shape expected{M, C};
    expect_shape(Shape{x.rows(), x.cols()}, expected, "TokenFormerLayer input");
    expect_shape(Shape{out.rows(), out.cols()}, expected, "TokenFormerLayer output");
    for (auto* t : {&normed_attention_, &normed_ffn_, &h_}) t->resize(expected);
    for (auto* t : {&mean_attention_, &rstd_attention_, &mean_ffn_, &rstd_ffn_}) t->resize(Shape{M});
    // h = x + attention(LN(x))
    kernels::layer_norm_forward(device_, normed_attention_.data(), mean_attention_.data(), rstd_attention_.data(),
                                x.data(), static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), M, C, eps_);
    kernels::copy(device_, h_.data(), x.data(), M * C);
    attention.forward(h_, normed_attention_, B, T_len, /*accumulate=*/true, position_offset);
    // out = h + ffn(LN(h))
    kernels::layer_norm_forward(device_, normed_ffn_.data(), mean_ffn_.data(), rstd_ffn_.data(), h_.data(),
                                static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), M, C, eps_);
    kernels::copy(device_, out.data(), h_.data(), M * C);
    ffn.forward(out, normed_ffn_, /*accumulate=*/true);
  }

  /// Backward of the last forward (which received x): adds parameter gradients and writes dL/dx.
  /// d_x may alias d_out.
  void backward(TensorView<T, Device> d_x,          // (B*T, C)
                TensorView<const T, Device> d_out,  // (B*T, C)
                TensorView<const T, Device> x) {    // (B*T, C)
    const index_t M = h_.rows(), C = hidden_size_;
    const Shape expected{M, C};
    expect_shape(Shape{x.rows(), x.cols()}, expected, "TokenFormerLayer backward input");
    expect_shape(Shape{d_out.rows(), d_out.cols()}, expected, "TokenFormerLayer output gradient");
    d_h_.resize(expected);
    d_normed_.resize(expected);
    // out = h + ffn(LN(h)):  d_h = d_out + LN'ᵀ(ffn'ᵀ d_out)
    kernels::copy(device_, d_h_.data(), d_out.data(), M * C);
    ffn.backward(d_normed_, d_out, normed_ffn_);
    kernels::layer_norm_backward(device_, d_h_.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                                 d_normed_.data(), h_.data(), static_cast<const T*>(nullptr), mean_ffn_.data(),
                                 rstd_ffn_.data(), M, C, /*accumulate=*/true);
    // h = x + attention(LN(x)):  d_x = d_h + LN'ᵀ(attention'ᵀ d_h)
    attention.backward(d_normed_, d_h_, normed_attention_);
    kernels::copy(device_, d_x.data(), d_h_.data(), M * C);
    kernels::layer_norm_backward(device_, d_x.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                                 d_normed_.data(), x.data(), static_cast<const T*>(nullptr), mean_attention_.data(),
                                 rstd_attention_.data(), M, C, /*accumulate=*/true);
  }

 private:
  TokenFormerLayer(const ModelConfig& config, const LayerTokens& tokens, Device device)
      : attention(config.hidden_size, config.num_heads, tokens.qkv, tokens.proj, config.rotary_pct,
                  config.normalization, config.rotary_base, device),
        ffn(config.hidden_size, config.hidden_size, tokens.ffn, config.normalization, device),
        device_(device),
        hidden_size_(config.hidden_size),
        eps_(config.layernorm_epsilon) {
    for (auto* p : {&attention.query, &attention.key, &attention.value}) p->pin_scale_tokens(tokens.qkv_scale);
    attention.proj.pin_scale_tokens(tokens.proj_scale);
    ffn.pin_scale_tokens(tokens.ffn_scale);
  }

  Device device_{};
  index_t hidden_size_ = 0;
  double eps_ = 1e-5;
  // Activation cache of the last forward.
  Tensor<T, Device> normed_attention_, normed_ffn_, h_;                      // (B*T, C)
  Tensor<T, Device> mean_attention_, rstd_attention_, mean_ffn_, rstd_ffn_;  // (B*T)
  // Backward scratch.
  Tensor<T, Device> d_h_, d_normed_;  // (B*T, C)
};

}  // namespace tokenformer

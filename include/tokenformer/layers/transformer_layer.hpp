// tokenformer/layers/transformer_layer.hpp: the plain Transformer block, the baseline that every
// Pattention model is compared against.
//
// A pre-norm GPT-NeoX-style block (sequential residual, as TokenFormerLayer) with Linear layers where
// the TokenFormer block has Pattentions:
//     h   = x + proj(Attention(q(a), k(a), v(a)))      a = LN(x; input_layernorm)
//     out = h + W2 · gelu(W1 · b + b1) + b2              b = LN(h; post_attention_layernorm)
// q, k, v, proj: Linear C -> C with biases; W1 [I, C], W2 [C, I] (I = ModelConfig::mlp_size(),
// intermediate_size, default 4C); exact GeLU; affine LayerNorms (weight and bias); the attention,
// rotary and LayerNorm kernels are the TokenFormer layer's.
//
// The difference it teaches: a Linear layer is a fixed [d_out, d_in] matrix whose size is set by the
// widths, while a Pattention attends over P parameter tokens (P free) and grows by appending tokens.
// An MLP W2·gelu(W1·x) is close to an FFN Pattention with keys = rows of W1 and values = rows of W2ᵀ:
// only Θ's normalization differs (model/transfer.hpp uses that to warm-start one from the other).
//
// Parameter names (relative to the block, GPT-NeoX's with separate Q/K/V): input_layernorm.{weight,bias},
// attention.{query,key,value,proj}.{weight,bias}, post_attention_layernorm.{weight,bias},
// mlp.dense_h_to_4h.{weight,bias}, mlp.dense_4h_to_h.{weight,bias}.
// Initialization (initialize_extra, called by LanguageModel::initialize): Linear weights N(0, 0.02),
// the two output layers (attention.proj, mlp.dense_4h_to_h) N(0, 2/(L·√C)) (the "wang" init, as the
// TokenFormer value tokens), biases 0, norm weights 1.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/fit_config.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/linear.hpp"
#include "tokenformer/layers/self_attention.hpp"

namespace tokenformer {

/// The plain pre-norm Transformer block (GPT-NeoX style, the baseline): Linear Q, K, V and output
/// projections, a GeLU MLP of width I = ModelConfig::mlp_size(), affine LayerNorms. x and out: [B·T, C].
template <class T, class Device = cpu>
class TransformerLayer {
 public:
  /// LanguageModel checks that a config of this block says "architecture": "transformer".
  static constexpr Architecture architecture = Architecture::transformer;

  TransformerLayer() = default;
  /// Block `layer` of a model of `config` (architecture transformer).
  explicit TransformerLayer(const ModelConfig& config, Device device = {}, index_t /*layer*/ = 0)
      : attention(Linear<T, Device>(config.hidden_size, config.hidden_size, device),
                  Linear<T, Device>(config.hidden_size, config.hidden_size, device),
                  Linear<T, Device>(config.hidden_size, config.hidden_size, device),
                  Linear<T, Device>(config.hidden_size, config.hidden_size, device), config.hidden_size,
                  config.num_heads, config.rotary_pct, config.rotary_base, device),
        mlp_in(config.hidden_size, config.mlp_size(), device),
        mlp_out(config.mlp_size(), config.hidden_size, device),
        device_(device),
        hidden_size_(config.hidden_size),
        num_layers_(config.num_layers),
        eps_(config.layernorm_epsilon) {
    if (config.architecture != Architecture::transformer)
      throw config_error(std::string("TransformerLayer needs a config with architecture transformer, got ") +
                         to_string(config.architecture));
    for (auto* p : {&input_norm_weight, &input_norm_bias, &post_norm_weight, &post_norm_bias})
      *p = Parameter<T, Device>(Shape{hidden_size_}, device, /*decayed=*/false);
    const std::vector<T> ones(static_cast<std::size_t>(hidden_size_), T(1));
    input_norm_weight.value.copy_from_host(ones.data());
    post_norm_weight.value.copy_from_host(ones.data());
  }

  ///@{
  /// (C) input_layernorm's weight and bias.
  Parameter<T, Device> input_norm_weight, input_norm_bias;
  ///@}
  SelfAttention<T, Device, Linear<T, Device>> attention;  ///< query, key, value, proj: Linear C -> C
  ///@{
  /// (C) post_attention_layernorm's weight and bias.
  Parameter<T, Device> post_norm_weight, post_norm_bias;
  ///@}
  Linear<T, Device> mlp_in;   ///< dense_h_to_4h: C -> I
  Linear<T, Device> mlp_out;  ///< dense_4h_to_h: I -> C

  index_t hidden_size() const { return hidden_size_; }           ///< C
  index_t mlp_size() const { return mlp_in.output_features(); }  ///< I

  /// Visits (name, Parameter&) of each parameter with the names of the header comment.
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    visit(std::string("input_layernorm.weight"), input_norm_weight);
    visit(std::string("input_layernorm.bias"), input_norm_bias);
    attention.for_each_parameter(
        [&visit](const std::string& name, Parameter<T, Device>& p) { visit("attention." + name, p); });
    visit(std::string("post_attention_layernorm.weight"), post_norm_weight);
    visit(std::string("post_attention_layernorm.bias"), post_norm_bias);
    mlp_in.for_each_parameter(
        [&visit](const std::string& name, Parameter<T, Device>& p) { visit("mlp.dense_h_to_4h." + name, p); });
    mlp_out.for_each_parameter(
        [&visit](const std::string& name, Parameter<T, Device>& p) { visit("mlp.dense_4h_to_h." + name, p); });
  }

  /// A Transformer block has no Pattentions: visits nothing (growth leaves it alone).
  template <class Visitor>
  void for_each_pattention(Visitor&&) {}

  /// See the header comment.
  void initialize_extra(Rng& rng) {
    const double small = 0.02;
    const double wang = 2.0 / static_cast<double>(num_layers_) / std::sqrt(static_cast<double>(hidden_size_));
    attention.query.initialize(rng, small);
    attention.key.initialize(rng, small);
    attention.value.initialize(rng, small);
    attention.proj.initialize(rng, wang);
    mlp_in.initialize(rng, small);
    mlp_out.initialize(rng, wang);
    const std::vector<T> ones(static_cast<std::size_t>(hidden_size_), T(1));
    input_norm_weight.value.copy_from_host(ones.data());
    post_norm_weight.value.copy_from_host(ones.data());
    input_norm_bias.value.set_zero();
    post_norm_bias.value.set_zero();
  }

  /// out = block(x) for B sequences of T positions starting at `position_offset`.
  void forward(TensorView<T, Device> out,      // (B*T, C)
               TensorView<const T, Device> x,  // (B*T, C)
               index_t B, index_t T_len, index_t position_offset = 0) {
    const index_t M = B * T_len, C = hidden_size_, I = mlp_size();
    const Shape expected{M, C};
    expect_shape(Shape{x.rows(), x.cols()}, expected, "TransformerLayer input");
    expect_shape(Shape{out.rows(), out.cols()}, expected, "TransformerLayer output");
    for (auto* t : {&normed_attention_, &normed_mlp_, &h_}) t->resize(expected);
    for (auto* t : {&pre_activation_, &activation_}) t->resize(Shape{M, I});
    for (auto* t : {&mean_attention_, &rstd_attention_, &mean_mlp_, &rstd_mlp_}) t->resize(Shape{M});
    // h = x + attention(LN(x))
    kernels::layer_norm_forward(device_, normed_attention_.data(), mean_attention_.data(), rstd_attention_.data(),
                                x.data(), input_norm_weight.value.data(), input_norm_bias.value.data(), M, C, eps_);
    kernels::copy(device_, h_.data(), x.data(), M * C);
    attention.forward(h_, normed_attention_, B, T_len, /*accumulate=*/true, position_offset);
    // out = h + W2 · gelu(W1 · LN(h) + b1) + b2
    kernels::layer_norm_forward(device_, normed_mlp_.data(), mean_mlp_.data(), rstd_mlp_.data(), h_.data(),
                                post_norm_weight.value.data(), post_norm_bias.value.data(), M, C, eps_);
    mlp_in.forward(pre_activation_, normed_mlp_);
    kernels::gelu_forward(device_, activation_.data(), pre_activation_.data(), M * I);
    kernels::copy(device_, out.data(), h_.data(), M * C);
    mlp_out.forward(out, activation_, /*accumulate=*/true);
  }

  /// Backward of the last forward (which received x): adds parameter gradients and writes dL/dx.
  /// d_x may alias d_out.
  void backward(TensorView<T, Device> d_x,          // (B*T, C)
                TensorView<const T, Device> d_out,  // (B*T, C)
                TensorView<const T, Device> x) {    // (B*T, C)
    const index_t M = h_.rows(), C = hidden_size_, I = mlp_size();
    const Shape expected{M, C};
    expect_shape(Shape{x.rows(), x.cols()}, expected, "TransformerLayer backward input");
    expect_shape(Shape{d_out.rows(), d_out.cols()}, expected, "TransformerLayer output gradient");
    d_h_.resize(expected);
    d_normed_.resize(expected);
    d_activation_.resize(Shape{M, I});
    // out = h + mlp(LN(h)):  d_h = d_out + LN'ᵀ(mlp'ᵀ d_out)
    kernels::copy(device_, d_h_.data(), d_out.data(), M * C);
    mlp_out.backward(d_activation_, d_out, activation_);
    kernels::gelu_backward(device_, d_activation_.data(), d_activation_.data(), pre_activation_.data(), M * I);
    mlp_in.backward(d_normed_, d_activation_, normed_mlp_);
    kernels::layer_norm_backward(device_, d_h_.data(), post_norm_weight.grad.data(), post_norm_bias.grad.data(),
                                 d_normed_.data(), h_.data(), post_norm_weight.value.data(), mean_mlp_.data(),
                                 rstd_mlp_.data(), M, C, /*accumulate=*/true);
    // h = x + attention(LN(x)):  d_x = d_h + LN'ᵀ(attention'ᵀ d_h)
    attention.backward(d_normed_, d_h_, normed_attention_);
    kernels::copy(device_, d_x.data(), d_h_.data(), M * C);
    kernels::layer_norm_backward(device_, d_x.data(), input_norm_weight.grad.data(), input_norm_bias.grad.data(),
                                 d_normed_.data(), x.data(), input_norm_weight.value.data(), mean_attention_.data(),
                                 rstd_attention_.data(), M, C, /*accumulate=*/true);
  }

 private:
  Device device_{};
  index_t hidden_size_ = 0, num_layers_ = 1;
  double eps_ = 1e-5;
  // Activation cache of the last forward.
  Tensor<T, Device> normed_attention_, normed_mlp_, h_;                      // (B*T, C)
  Tensor<T, Device> pre_activation_, activation_;                            // (B*T, I)
  Tensor<T, Device> mean_attention_, rstd_attention_, mean_mlp_, rstd_mlp_;  // (B*T)
  // Backward scratch.
  Tensor<T, Device> d_h_, d_normed_;  // (B*T, C)
  Tensor<T, Device> d_activation_;    // (B*T, I)
};

}  // namespace tokenformer

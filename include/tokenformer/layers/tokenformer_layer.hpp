// tokenformer/layers/tokenformer_layer.hpp: one TokenFormer block.
//
// A pre-norm transformer block whose every linear projection is a Pattention:
//     h   = x + SelfAttention(LN(x))        (Q, K, V, output projection: Pattentions)
//     out = h + FFN(LN(h))                  (FFN: one Pattention, C -> C with ffn_tokens tokens)
// LN is the non-parametric LayerNorm (no weight, no bias). Both residual adds are fused into the
// output GEMMs of the attention and the FFN. Shapes: x and out [B*T, C]; out may alias x.
#pragma once

#include <string>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/layers/self_attention.hpp"

namespace tokenformer {

template <class T, class Device = cpu>
class TokenFormerLayer {
 public:
  TokenFormerLayer() = default;
  /// A block with the sizes of `config` (token counts, heads, rotary, normalization, epsilon).
  explicit TokenFormerLayer(const ModelConfig& config, Device device = {})
      : attention(config.hidden_size, config.num_heads, config.qkv_tokens, config.proj_tokens, config.rotary_pct,
                  config.normalization, config.rotary_base, device),
        ffn(config.hidden_size, config.hidden_size, config.ffn_tokens, config.normalization, device),
        device_(device),
        hidden_size_(config.hidden_size),
        eps_(config.layernorm_epsilon) {}

  SelfAttention<T, Device> attention;
  Pattention<T, Device> ffn;

  index_t hidden_size() const { return hidden_size_; }

  /// Visits parameters with the official names relative to the block: "attention.query.key_param_tokens",
  /// ..., "mlp.value_param_tokens".
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    attention.for_each_parameter(
        [&visit](const std::string& name, Tensor<T, Device>& t) { visit("attention." + name, t); });
    ffn.for_each_parameter([&visit](const std::string& name, Tensor<T, Device>& t) { visit("mlp." + name, t); });
  }

  /// out = block(x) for B sequences of T positions starting at `position_offset`.
  void forward(TensorView<T, Device> out,     // (B*T, C)
               TensorView<const T, Device> x,  // (B*T, C)
               index_t B, index_t T_len, index_t position_offset = 0) {
    const index_t M = B * T_len;
    const Shape expected{M, hidden_size_};
    expect_shape(Shape{x.rows(), x.cols()}, expected, "TokenFormerLayer input");
    expect_shape(Shape{out.rows(), out.cols()}, expected, "TokenFormerLayer output");
    normed_.resize(expected);
    if (out.data() != x.data()) kernels::copy(device_, out.data(), x.data(), M * hidden_size_);  // residual
    // h = x + attention(LN(x))
    kernels::layer_norm_forward(device_, normed_.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                                out.data(), static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), M,
                                hidden_size_, eps_);
    attention.forward(out, normed_, B, T_len, /*accumulate=*/true, position_offset);
    // out = h + ffn(LN(h))
    kernels::layer_norm_forward(device_, normed_.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                                out.data(), static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), M,
                                hidden_size_, eps_);
    ffn.forward(out, normed_, /*accumulate=*/true);
  }

 private:
  Device device_{};
  index_t hidden_size_ = 0;
  double eps_ = 1e-5;
  Tensor<T, Device> normed_;  // (B*T, C) activation cache
};

}  // namespace tokenformer

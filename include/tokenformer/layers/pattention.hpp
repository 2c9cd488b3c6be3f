// tokenformer/layers/pattention.hpp: Pattention, attention from input tokens to parameter tokens.
//
// What it is: a layer holding P learnable *key* tokens K_P [P, d_in] and P *value* tokens V_P
// [P, d_out]. Each input row x (a query) attends over the key tokens and mixes the value tokens:
//     out = Θ(X · K_Pᵀ) · V_P          X: [M, d_in], scores: [M, P], out: [M, d_out]
// with Θ the modified softmax chosen by `Normalization` (see core/model_config.hpp). It costs like
// an MLP with hidden size P (two GEMMs), but P is independent of d_in and d_out: the layer grows by
// appending tokens.
// Requires: d_in, d_out, P > 0; inputs with d_in columns. Ensures: out has d_out columns; the
// scores of the last forward stay in the layer's activation cache.
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"

namespace tokenformer {

template <class T, class Device = cpu>
class Pattention {
 public:
  Pattention() = default;
  Pattention(index_t input_features, index_t output_features, index_t tokens, Normalization kind,
             Device device = {})
      : device_(device),
        kind_(kind),
        key_tokens_(Shape{tokens, input_features}, device),
        value_tokens_(Shape{tokens, output_features}, device) {
    if (input_features <= 0 || output_features <= 0 || tokens <= 0)
      throw config_error("Pattention needs positive input features, output features and tokens, got " +
                         std::to_string(input_features) + ", " + std::to_string(output_features) + ", " +
                         std::to_string(tokens));
    if (kind == Normalization::dynamic) throw config_error("Pattention needs a concrete normalization");
  }

  index_t input_features() const { return key_tokens_.dim(1); }
  index_t output_features() const { return value_tokens_.dim(1); }
  /// P: the current number of parameter tokens.
  index_t tokens() const { return key_tokens_.dim(0); }
  Normalization normalization() const { return kind_; }
  /// The n of Θ's √n (or n) factor: the token count, unless pinned (see pin_scale_tokens).
  index_t scale_tokens() const { return pinned_scale_tokens_ > 0 ? pinned_scale_tokens_ : tokens(); }
  /// Pins Θ's scale factor to `n` tokens (0 unpins it): used to make growth function-preserving.
  void pin_scale_tokens(index_t n) {
    if (n < 0) throw argument_error("pinned token count must be >= 0");
    pinned_scale_tokens_ = n;
  }

  /// K_P: [P, d_in].
  Tensor<T, Device>& key_tokens() { return key_tokens_; }
  const Tensor<T, Device>& key_tokens() const { return key_tokens_; }
  /// V_P: [P, d_out].
  Tensor<T, Device>& value_tokens() { return value_tokens_; }
  const Tensor<T, Device>& value_tokens() const { return value_tokens_; }

  /// Visits (name, tensor) of each parameter, with the official names.
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    visit(std::string("key_param_tokens"), key_tokens_);
    visit(std::string("value_param_tokens"), value_tokens_);
  }

  /// Official initialization: keys ~ N(0, key_std), values ~ N(0, value_std), drawn in row order.
  void initialize(Rng& rng, double key_std, double value_std) {
    fill_normal(key_tokens_, rng, key_std);
    fill_normal(value_tokens_, rng, value_std);
  }

  /// out = Θ(in · K_Pᵀ) · V_P, or out += ... when `accumulate` (fuses a residual add into the GEMM).
  void forward(TensorView<T, Device> out,          // (M, d_out)
               TensorView<const T, Device> in,      // (M, d_in)
               bool accumulate = false) {
    const index_t M = in.rows();
    if (in.cols() != input_features())
      throw shape_error("Pattention input has " + std::to_string(in.cols()) + " features, expected " +
                        std::to_string(input_features()));
    if (out.rows() != M || out.cols() != output_features())
      throw shape_error("Pattention output has shape " + out.shape().str() + ", expected [" + std::to_string(M) +
                        ", " + std::to_string(output_features()) + "]");
    const index_t P = tokens();
    scores_.resize(Shape{M, P});
    // scores = X · K_Pᵀ                                                          (M, P)
    kernels::gemm(device_, scores_.data(), P, in.data(), input_features(), false, key_tokens_.data(),
                  input_features(), true, M, P, input_features());
    // weights = Θ(scores), in place                                               (M, P)
    kernels::pattention_norm_forward(device_, scores_.data(), scores_.data(), M, P, kind_, scale_tokens());
    // out (+)= weights · V_P                                                      (M, d_out)
    kernels::gemm(device_, out.data(), output_features(), scores_.data(), P, false, value_tokens_.data(),
                  output_features(), false, M, output_features(), P, T(1), accumulate ? T(1) : T(0));
  }

 private:
  static void fill_normal(Tensor<T, Device>& t, Rng& rng, double stddev) {
    std::vector<T> host(static_cast<std::size_t>(t.size()));
    for (auto& x : host) x = static_cast<T>(rng.normal(0.0, stddev));
    t.copy_from_host(host.data());
  }

  Device device_{};
  Normalization kind_ = Normalization::l2_norm_gelu;
  index_t pinned_scale_tokens_ = 0;
  Tensor<T, Device> key_tokens_;    // (P, d_in)
  Tensor<T, Device> value_tokens_;  // (P, d_out)
  Tensor<T, Device> scores_;        // (M, P) activation cache: Θ(scores) of the last forward
};

}  // namespace tokenformer

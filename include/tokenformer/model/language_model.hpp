// tokenformer/model/language_model.hpp: a TokenFormer language model.
//
// token ids [B, T] -> embedding [B*T, C] -> num_layers TokenFormer blocks -> affine LayerNorm ->
// logits [B, T, V] = x · Eᵀ with the embedding matrix E [V, C] tied as the output head.
//
// Config is one struct of static constexpr members (see core/presets.hpp); members set to `dynamic`
// come from the ModelConfig given at construction. Parameters are visited under the official
// GPT-NeoX pipeline names (`sequential.0.word_embeddings.weight`, `sequential.{i+2}.attention.query.
// key_param_tokens`, ..., `sequential.{L+3}.norm.weight`).
// Requires: token ids in [0, V). Ensures: forward writes [B, T, V] float logits of Config::scalar.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/tokenformer_layer.hpp"

namespace tokenformer {

template <class Config, class Device = cpu>
class LanguageModel {
  static_assert(check_static_config<Config>(), "invalid static config");

 public:
  using scalar = typename Config::scalar;
  using T = scalar;
  using Layer = TokenFormerLayer<T, Device>;

  /// A model of a fully static config, zero-initialized (call initialize() or load weights).
  explicit LanguageModel(Device device = {}) : LanguageModel(ModelConfig::from<Config>(), device) {}

  /// A model of the run-time config `config`, which must agree with Config's static members.
  explicit LanguageModel(const ModelConfig& config, Device device = {}) : config_(config), device_(device) {
    config_.validate();
    check_matches_static<Config>(config_);
    word_embeddings = Tensor<T, Device>(Shape{config_.vocab_size, config_.hidden_size}, device);
    layers.reserve(static_cast<std::size_t>(config_.num_layers));
    for (index_t i = 0; i < config_.num_layers; ++i) layers.emplace_back(config_, device);
    final_norm_weight = Tensor<T, Device>(Shape{config_.hidden_size}, device);
    final_norm_bias = Tensor<T, Device>(Shape{config_.hidden_size}, device);
    std::vector<T> ones(static_cast<std::size_t>(config_.hidden_size), T(1));
    final_norm_weight.copy_from_host(ones.data());
  }

  const ModelConfig& config() const { return config_; }
  index_t vocab_size() const { return word_embeddings.dim(0); }
  index_t hidden_size() const { return config_.hidden_size; }
  const Device& device() const { return device_; }

  Tensor<T, Device> word_embeddings;    // (V, C), also the output head
  std::vector<Layer> layers;
  Tensor<T, Device> final_norm_weight;  // (C)
  Tensor<T, Device> final_norm_bias;    // (C)

  /// Visits (official name, tensor) of every parameter.
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    visit(std::string("sequential.0.word_embeddings.weight"), word_embeddings);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const std::string prefix = "sequential." + std::to_string(i + 2) + ".";
      layers[i].for_each_parameter(
          [&visit, &prefix](const std::string& name, Tensor<T, Device>& t) { visit(prefix + name, t); });
    }
    const std::string norm = "sequential." + std::to_string(layers.size() + 3) + ".norm.";
    visit(norm + "weight", final_norm_weight);
    visit(norm + "bias", final_norm_bias);
  }

  /// Number of scalar parameters.
  index_t parameter_count() {
    index_t n = 0;
    for_each_parameter([&n](const std::string&, Tensor<T, Device>& t) { n += t.size(); });
    return n;
  }

  /// The official initialization: embeddings and key tokens ~ N(0, 0.02), value tokens ~ N(0, 2 / (L·√C))
  /// (the "wang" init), final norm weight 1 and bias 0.
  void initialize(Rng& rng) {
    const double small = 0.02;
    const double wang = 2.0 / static_cast<double>(config_.num_layers) / std::sqrt(static_cast<double>(config_.hidden_size));
    std::vector<T> host(static_cast<std::size_t>(word_embeddings.size()));
    for (auto& x : host) x = static_cast<T>(rng.normal(0.0, small));
    word_embeddings.copy_from_host(host.data());
    for (auto& layer : layers) {
      for (auto* p : {&layer.attention.query, &layer.attention.key, &layer.attention.value, &layer.attention.proj,
                      &layer.ffn})
        p->initialize(rng, small, wang);
    }
    std::vector<T> ones(static_cast<std::size_t>(config_.hidden_size), T(1));
    final_norm_weight.copy_from_host(ones.data());
    final_norm_bias.set_zero();
  }

  /// logits[b, t, :] for token ids [B, T] given in host memory (row-major). Throws argument_error for
  /// an id outside [0, V) and shape_error if logits is not [B, T, V] or [B*T, V].
  void forward(TensorView<T, Device> logits, const std::int32_t* tokens, index_t B, index_t T_len,
               index_t position_offset = 0) {
    const index_t M = B * T_len, C = config_.hidden_size, V = vocab_size();
    if (B <= 0 || T_len <= 0) throw shape_error("forward needs B > 0 and T > 0");
    if (logits.size() != M * V || logits.cols() != V)
      throw shape_error("logits have shape " + logits.shape().str() + ", expected [" + std::to_string(B) + ", " +
                        std::to_string(T_len) + ", " + std::to_string(V) + "]");
    for (index_t i = 0; i < M; ++i)
      if (tokens[i] < 0 || tokens[i] >= V)
        throw argument_error("token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                             " is outside the vocabulary [0, " + std::to_string(V) + ")");
    token_ids_.resize(Shape{M});
    token_ids_.copy_from_host(tokens);
    residual_.resize(Shape{M, C});
    normed_.resize(Shape{M, C});
    kernels::embedding_forward(device_, residual_.data(), token_ids_.data(), word_embeddings.data(), M, C);
    for (auto& layer : layers) layer.forward(residual_, residual_, B, T_len, position_offset);
    kernels::layer_norm_forward(device_, normed_.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                                residual_.data(), final_norm_weight.data(), final_norm_bias.data(), M, C,
                                config_.layernorm_epsilon);
    // logits = LN(x) · Eᵀ                                                              (B*T, V)
    kernels::gemm(device_, logits.data(), V, normed_.data(), C, false, word_embeddings.data(), C, true, M, V, C);
  }

  /// Convenience: returns logits [B, T, V] for `tokens` (B*T ids, row-major).
  Tensor<T, Device> forward(const std::vector<std::int32_t>& tokens, index_t B, index_t T_len) {
    if (static_cast<index_t>(tokens.size()) != B * T_len)
      throw shape_error("got " + std::to_string(tokens.size()) + " token ids for B*T = " + std::to_string(B * T_len));
    Tensor<T, Device> logits(Shape{B, T_len, vocab_size()}, device_);
    forward(logits, tokens.data(), B, T_len);
    return logits;
  }

 private:
  ModelConfig config_;
  Device device_{};
  Tensor<std::int32_t, Device> token_ids_;  // (B*T)
  Tensor<T, Device> residual_;              // (B*T, C)
  Tensor<T, Device> normed_;                // (B*T, C)
};

}  // namespace tokenformer

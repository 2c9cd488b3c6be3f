// tokenformer/model/language_model.hpp: a language model generic over its blocks; with the default
// block, the TokenFormer language model.
//
// token ids [B, T] -> embedding [B*T, C] -> num_layers blocks -> affine LayerNorm ->
// logits [B, T, V] = x · Eᵀ with the embedding matrix E [V, C] tied as the output head.
//
// The block type is a template parameter (`Block<T, Device>`, default TokenFormerLayer): any type
// with the members that layers/block.hpp lists works, and growth, checkpoints, copy_parameters,
// training and generation work unchanged with it. A block names its own parameters; the model
// prefixes them with the block's pipeline name. A *body* (a block type with `is_body = true`, such as
// FitBody) is the whole stack in one object: the model builds one, names its parameters as the body
// does and calls the final norm "final_norm.weight" / "final_norm.bias"; the config's layers are the
// body's units (for_each_pattention_of_unit).
//
// Config is one struct of static constexpr members (see core/presets.hpp); members set to `dynamic`
// come from the ModelConfig given at construction. Parameters are visited under the official
// GPT-NeoX pipeline names (`sequential.0.word_embeddings.weight`, `sequential.{i+2}.attention.query.
// key_param_tokens`, ..., `sequential.{L+3}.norm.weight`).
// Requires: token ids in [0, V). Ensures: forward writes [B, T, V] logits of Config::scalar;
// forward_backward returns the mean next-token loss and adds its gradient to every parameter.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/span.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/block.hpp"
#include "tokenformer/layers/tokenformer_layer.hpp"

namespace tokenformer {

/// A language model: token ids [B, T] -> embedding [B·T, C] -> blocks -> affine LayerNorm -> logits
/// [B, T, V] through the tied embedding. Config is a static config (core/presets.hpp); Block the block
/// type (default TokenFormerLayer; any type that layers/block.hpp accepts, or a body such as FitBody).
template <class Config, class Device = cpu, template <class, class> class Block = TokenFormerLayer>
class LanguageModel {
  static_assert(check_static_config<Config>(), "invalid static config");

 public:
  using scalar = typename Config::scalar;  ///< Config::scalar, the type of parameters and logits
  using T = scalar;                        ///< short for scalar
  using Layer = Block<T, Device>;          ///< the block type on this scalar and device
  static_assert(kernels::check_device<Device, T>(), "see the message above: the device lacks a kernel");
  static_assert(check_block<Layer, T, Device>(), "see the message above: the block type lacks a member");
  /// True when Block is a whole body (one object, see the header comment).
  static constexpr bool whole_body = block_is_body<Layer>::value;

  /// A model of a fully static config, zero-initialized (call initialize() or load weights).
  explicit LanguageModel(Device device = {}) : LanguageModel(ModelConfig::from<Config>(), device) {}

  /// A model of the run-time config `config`, which must agree with Config's static members.
  explicit LanguageModel(const ModelConfig& config, Device device = {}) : config_(config), device_(device) {
    config_.validate();
    check_matches_static<Config>(config_);
    if (config_.architecture != block_architecture<Layer>::value)
      throw config_error(std::string("a config of architecture ") + to_string(config_.architecture) +
                         " needs its block type (LanguageModel<Config, Device, FitBody> for fit, TransformerLayer "
                         "for transformer; this model's blocks are " +
                         to_string(block_architecture<Layer>::value) + ")");
    word_embeddings = Parameter<T, Device>(Shape{config_.vocab_size, config_.hidden_size}, device);
    const index_t blocks = whole_body ? 1 : config_.num_layers;
    layers.reserve(static_cast<std::size_t>(blocks));
    for (index_t i = 0; i < blocks; ++i) layers.emplace_back(config_, device, i);
    final_norm_weight = Parameter<T, Device>(Shape{config_.hidden_size}, device, /*decayed=*/false);
    final_norm_bias = Parameter<T, Device>(Shape{config_.hidden_size}, device, /*decayed=*/false);
    std::vector<T> ones(static_cast<std::size_t>(config_.hidden_size), T(1));
    final_norm_weight.value.copy_from_host(ones.data());
    share_scratch();
  }

  /// A deep copy. A copy gets scratch of its own (Pattention's copy drops the sharing), shared again
  /// among its Pattentions; a move keeps the original's.
  LanguageModel(const LanguageModel& other)
      : word_embeddings(other.word_embeddings),
        layers(other.layers),
        final_norm_weight(other.final_norm_weight),
        final_norm_bias(other.final_norm_bias),
        config_(other.config_),
        device_(other.device_) {
    share_scratch();
  }
  LanguageModel(LanguageModel&&) = default;  ///< takes other's parameters and scratch
  /// Replaces this model with a deep copy of other (scratch of its own, as the copy constructor).
  LanguageModel& operator=(const LanguageModel& other) {
    if (this != &other) {
      LanguageModel copy(other);
      *this = std::move(copy);
    }
    return *this;
  }
  LanguageModel& operator=(LanguageModel&&) = default;  ///< takes other's parameters and scratch

  /// The run-time config (token counts as of the last refresh_config_from_layers()).
  const ModelConfig& config() const { return config_; }
  /// Re-reads the token counts and pinned scales of the config from the layers' Pattentions (after
  /// growth), by role: per layer (ModelConfig::per_layer) where the layers differ. A role that a
  /// block does not have keeps the config's value. Throws config_error where two Pattentions of one
  /// role in one layer differ (for example Q and K), which a config cannot describe.
  void refresh_config_from_layers() {
    if (layers.empty()) return;
    std::vector<LayerTokens> tokens;
    for (std::size_t i = 0; i < static_cast<std::size_t>(layer_count()); ++i) {
      LayerTokens t = config_.layer(static_cast<index_t>(i));
      bool seen[3] = {false, false, false};
      for_each_pattention_of_layer(
          static_cast<index_t>(i), [&](const std::string& path, PattentionRole role, Pattention<T, Device>& p) {
            index_t* count = role == PattentionRole::qkv ? &t.qkv : role == PattentionRole::proj ? &t.proj : &t.ffn;
            index_t* scale = role == PattentionRole::qkv    ? &t.qkv_scale
                             : role == PattentionRole::proj ? &t.proj_scale
                                                            : &t.ffn_scale;
            bool& first = seen[static_cast<int>(role)];
            if (first && (*count != p.tokens() || *scale != p.pinned_scale_tokens()))
              throw config_error(path + ": the " + to_string(role) +
                                 " Pattentions of one layer have different token counts or pinned scales");
            *count = p.tokens();
            *scale = p.pinned_scale_tokens();
            first = true;
          });
      tokens.push_back(t);
    }
    config_.set_layers(tokens);
  }
  index_t vocab_size() const { return word_embeddings.value.dim(0); }  ///< V, rows of the embedding
  /// The config's layers: blocks of a stack, units of a body.
  index_t layer_count() const { return config_.num_layers; }
  index_t hidden_size() const { return config_.hidden_size; }  ///< C
  const Device& device() const { return device_; }             ///< the device the parameters are on

  Parameter<T, Device> word_embeddings;    ///< (V, C), also the output head
  std::vector<Layer> layers;               ///< num_layers blocks, or one body
  Parameter<T, Device> final_norm_weight;  ///< (C) the final LayerNorm's weight
  Parameter<T, Device> final_norm_bias;    ///< (C) the final LayerNorm's bias
  /// When set, forward_backward calls it with a layer's index as soon as that layer's backward is
  /// done (its gradients final for the call), last layer first: a data-parallel Trainer starts
  /// summing those gradients over the ranks while the earlier layers still compute. It must not
  /// touch the model's activations. A copy of the model does not take it.
  std::function<void(std::size_t layer)> on_layer_backward_done;

  /// Visits (official name, Parameter&) of every parameter.
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    visit(std::string("sequential.0.word_embeddings.weight"), word_embeddings);
    if constexpr (whole_body) {
      layers[0].for_each_parameter(visit);
      visit(std::string("final_norm.weight"), final_norm_weight);
      visit(std::string("final_norm.bias"), final_norm_bias);
    } else {
      for (std::size_t i = 0; i < layers.size(); ++i) {
        const std::string prefix = "sequential." + std::to_string(i + 2) + ".";
        layers[i].for_each_parameter(
            [&visit, &prefix](const std::string& name, Parameter<T, Device>& p) { visit(prefix + name, p); });
      }
      const std::string norm = "sequential." + std::to_string(layers.size() + 3) + ".norm.";
      visit(norm + "weight", final_norm_weight);
      visit(norm + "bias", final_norm_bias);
    }
  }

  /// Visits (path, role, Pattention&) of every Pattention, in layer order, with the official
  /// parameter names' paths ("sequential.2.attention.query", ..., "sequential.2.mlp").
  template <class Visitor>
  void for_each_pattention(Visitor&& visit) {
    for (index_t i = 0; i < layer_count(); ++i) for_each_pattention_of_layer(i, visit);
  }
  /// The same for layer `i` alone (a body's unit `i`).
  template <class Visitor>
  void for_each_pattention_of_layer(index_t i, Visitor&& visit) {
    if constexpr (whole_body) {
      layers.at(0).for_each_pattention_of_unit(i, visit);
    } else {
      const std::string prefix = "sequential." + std::to_string(i + 2) + ".";
      layers.at(static_cast<std::size_t>(i))
          .for_each_pattention([&visit, &prefix](const std::string& path, PattentionRole role,
                                                 Pattention<T, Device>& p) { visit(prefix + path, role, p); });
    }
  }

  /// Number of scalar parameters.
  index_t parameter_count() {
    index_t n = 0;
    for_each_parameter([&n](const std::string&, Parameter<T, Device>& p) { n += p.size(); });
    return n;
  }

  /// The official initialization: embeddings and key tokens ~ N(0, 0.02), value tokens ~ N(0, 2 / (L·√C))
  /// (the "wang" init), then each block's other parameters (initialize_extra, where a block has it),
  /// final norm weight 1 and bias 0.
  void initialize(Rng& rng) {
    const double small = 0.02;
    const double wang =
        2.0 / static_cast<double>(config_.num_layers) / std::sqrt(static_cast<double>(config_.hidden_size));
    std::vector<T> host(static_cast<std::size_t>(word_embeddings.size()));
    for (auto& x : host) x = static_cast<T>(rng.normal(0.0, small));
    word_embeddings.value.copy_from_host(host.data());
    for_each_pattention(
        [&](const std::string&, PattentionRole, Pattention<T, Device>& p) { p.initialize(rng, small, wang); });
    if constexpr (block_has_initialize_extra<Layer>::value)
      for (auto& layer : layers) layer.initialize_extra(rng);
    std::vector<T> ones(static_cast<std::size_t>(config_.hidden_size), T(1));
    final_norm_weight.value.copy_from_host(ones.data());
    final_norm_bias.value.set_zero();
  }

  /// Allocates gradients and AdamW moments for every parameter (zero).
  void enable_training() {
    for_each_parameter([](const std::string&, Parameter<T, Device>& p) { p.enable_training(); });
  }
  /// Sets every parameter's gradient to zero: forward_backward adds to the gradients, so a training
  /// step starts with this (Trainer does it).
  void zero_grad() {
    for_each_parameter([](const std::string&, Parameter<T, Device>& p) { p.zero_grad(); });
  }

  /// logits[b, t, :] for the B*T token ids `tokens` [B, T] (host memory, row-major). Throws
  /// shape_error unless tokens holds B*T ids (B, T > 0) and logits is [B, T, V] or [B*T, V], and
  /// argument_error for an id outside [0, V).
  void forward(TensorView<T, Device> logits, Span<const std::int32_t> tokens, index_t B, index_t T_len) {
    const index_t M = expect_sequences(tokens, B, T_len, "forward"), V = vocab_size();
    if (logits.size() != checked_product(M, V, "forward: logits") || logits.cols() != V)
      throw shape_error("logits have shape " + logits.shape().str() + ", expected [" + std::to_string(B) + ", " +
                        std::to_string(T_len) + ", " + std::to_string(V) + "]");
    forward_to_logits(logits.data(), tokens.data(), B, T_len);
  }

  /// Convenience: returns logits [B, T, V] for `tokens` (B*T ids, row-major); checks as above.
  Tensor<T, Device> forward(Span<const std::int32_t> tokens, index_t B, index_t T_len) {
    expect_sequences(tokens, B, T_len, "forward");
    Tensor<T, Device> logits(Shape{B, T_len, vocab_size()}, device_);
    forward(logits, tokens, B, T_len);
    return logits;
  }
  /// Convenience for a braced list of ids: `model.forward({1, 2, 3, 4}, 1, 4)`.
  Tensor<T, Device> forward(std::initializer_list<std::int32_t> tokens, index_t B, index_t T_len) {
    return forward(Span<const std::int32_t>(tokens.begin(), static_cast<index_t>(tokens.size())), B, T_len);
  }

  /// logits[b, :] of the last position of each of B sequences of T ids (host, row-major, B*T of
  /// them) into `logits` [B, V]: the final norm and the output head run on those B rows only
  /// (generation). Checks as forward.
  void forward_last(TensorView<T, Device> logits, Span<const std::int32_t> tokens, index_t B, index_t T_len) {
    expect_sequences(tokens, B, T_len, "forward_last");
    const index_t C = config_.hidden_size, V = vocab_size();
    if (logits.size() != checked_product(B, V, "forward_last: logits") || logits.cols() != V)
      throw shape_error("last-position logits have shape " + logits.shape().str() + ", expected [" + std::to_string(B) +
                        ", " + std::to_string(V) + "]");
    forward_hidden(tokens.data(), B, T_len);
    const T* hidden = residuals_[layers.size()].data();
    last_hidden_.resize(Shape{B, C});
    if (T_len == 1) {
      kernels::copy(device_, last_hidden_.data(), hidden, B * C);
    } else {
      for (index_t b = 0; b < B; ++b)
        kernels::copy(device_, last_hidden_.data() + b * C, hidden + ((b + 1) * T_len - 1) * C, C);
    }
    normed_.resize(Shape{B, C});
    final_mean_.resize(Shape{B});
    final_rstd_.resize(Shape{B});
    kernels::layer_norm_forward(device_, normed_.data(), final_mean_.data(), final_rstd_.data(), last_hidden_.data(),
                                final_norm_weight.value.data(), final_norm_bias.value.data(), B, C,
                                config_.layernorm_epsilon);
    if constexpr (std::is_same<Device, cpu>::value && std::is_same<T, float>::value) {
      if (int8_head_.matrix != nullptr) {
        if (int8_head_.matrix->rows != V || int8_head_.matrix->cols != C)
          throw shape_error("forward_last: the int8 head has another shape than the embedding");
        kernels::gemm_q8_transposed(device_, logits.data(), V, normed_.data(), C, *int8_head_.matrix, B, false);
        return;
      }
    }
    kernels::gemm(device_, logits.data(), V, normed_.data(), C, false, word_embeddings.value.data(), C, true, B, V, C);
  }

  /// Int8 inference of the tied head: until detach_int8_head, forward_last computes its logits from
  /// this Q8_0 copy of the embedding [V, C] (owned by the caller, e.g. a Generator with
  /// WeightFormat::int8). A float model on the CPU only; a copy of the model does not inherit it.
  void attach_int8_head(const kernels::Q8Matrix* head) {
    if (!(std::is_same<Device, cpu>::value && std::is_same<T, float>::value))
      throw argument_error("int8 weights need a float model on the CPU");
    if (head == nullptr || head->rows != vocab_size() || head->cols != hidden_size() || !head->consistent())
      throw argument_error("attach_int8_head needs a [V, C] int8 copy of the embedding");
    if (has_int8_head()) throw argument_error("attach_int8_head: an int8 head is attached already");
    int8_head_.matrix = head;
  }
  /// Back to the float head.
  void detach_int8_head() { int8_head_.matrix = nullptr; }
  /// Whether an int8 head is attached.
  bool has_int8_head() const { return int8_head_.matrix != nullptr; }

  /// The output head's rows per chunk: at least 256 rows (GEMMs that stay efficient), and beyond that
  /// as many as keep one chunk's logits within 2^24 values (64 MB of floats). Every row in one chunk
  /// unless V is large (a 256-token vocabulary fits 65536 rows).
  static index_t head_chunk_rows(index_t M, index_t V) {
    constexpr index_t budget = index_t(1) << 24;
    return std::max<index_t>(1, std::min(M, std::max<index_t>(256, budget / std::max<index_t>(V, 1))));
  }

  /// Mean loss over positions whose target is not −1, without gradients (for evaluation). `tokens`
  /// and `targets` are [B, T] (host, row-major); checks as forward_backward.
  double loss(Span<const std::int32_t> tokens, Span<const std::int32_t> targets, index_t B, index_t T_len) {
    const index_t M = expect_sequences(tokens, B, T_len, "loss"), V = vocab_size();
    expect_sequences(targets, B, T_len, "loss: targets");
    const index_t counted = count_targets(targets.data(), M, "loss");
    forward_normed(tokens.data(), B, T_len);
    target_ids_.resize(Shape{M});
    target_ids_.copy_from_host(targets.data());
    return head_loss(M, V, 0.0, false) / static_cast<double>(counted);
  }

  /// One training forward and backward pass over `tokens` [B, T] (host, row-major). `targets` [B, T]
  /// holds the id to predict at each position, or −1 to skip it (for next-token training, targets
  /// are the tokens shifted left by one, −1 at the end). Returns the mean loss over counted positions
  /// and ADDS grad_scale · d(mean loss)/dθ to every parameter's gradient: call zero_grad() before
  /// each step (or accumulate on purpose, with grad_scale = 1/steps). Throws shape_error unless both
  /// spans hold B*T ids, argument_error for an id outside the vocabulary (targets: or −1), no
  /// counted target, or a non-finite grad_scale.
  double forward_backward(Span<const std::int32_t> tokens, Span<const std::int32_t> targets, index_t B, index_t T_len,
                          double grad_scale = 1.0) {
    const index_t M = expect_sequences(tokens, B, T_len, "forward_backward"), C = config_.hidden_size, V = vocab_size();
    expect_sequences(targets, B, T_len, "forward_backward: targets");
    if (!std::isfinite(grad_scale))
      throw argument_error("forward_backward: grad_scale must be finite, got " + std::to_string(grad_scale));
    const index_t counted = count_targets(targets.data(), M, "forward_backward");
    if (!word_embeddings.training_enabled()) enable_training();
    forward_normed(tokens.data(), B, T_len);
    target_ids_.resize(Shape{M});
    target_ids_.copy_from_host(targets.data());
    d_residual_.resize(Shape{M, C});
    d_normed_.resize(Shape{M, C});
    const double total = head_loss(M, V, grad_scale / static_cast<double>(counted), true);
    const T* last = residuals_[layers.size()].data();
    kernels::layer_norm_backward(device_, d_residual_.data(), final_norm_weight.grad.data(),
                                 final_norm_bias.grad.data(), d_normed_.data(), last, final_norm_weight.value.data(),
                                 final_mean_.data(), final_rstd_.data(), M, C);
    for (std::size_t l = layers.size(); l-- > 0;) {
      layers[l].backward(d_residual_, d_residual_, residuals_[l]);
      if (on_layer_backward_done) on_layer_backward_done(l);
    }
    kernels::embedding_backward(device_, word_embeddings.grad.data(), d_residual_.data(), token_ids_.data(), M, C);
    return total / static_cast<double>(counted);
  }

 private:
  /// Every Pattention's backward scratch is one buffer: backward runs one Pattention at a time.
  void share_scratch() {
    auto scratch = std::make_shared<Tensor<T, Device>>(Shape{0}, device_);
    for_each_pattention(
        [&](const std::string&, PattentionRole, Pattention<T, Device>& p) { p.share_backward_scratch(scratch); });
  }

  /// Number of targets that are not −1; throws argument_error for ids outside [−1, V) or no target.
  index_t count_targets(const std::int32_t* targets, index_t M, const char* caller) const {
    const index_t V = vocab_size();
    index_t counted = 0;
    for (index_t i = 0; i < M; ++i) {
      if (targets[i] >= V || targets[i] < -1)
        throw argument_error("target id " + std::to_string(targets[i]) + " at position " + std::to_string(i) +
                             " is outside the vocabulary [0, " + std::to_string(V) + ") (use -1 to skip)");
      counted += targets[i] >= 0;
    }
    if (counted == 0) throw argument_error(std::string(caller) + " needs at least one target");
    return counted;
  }

  /// The tied head and the cross-entropy over normed_'s M rows and target_ids_, chunk by chunk
  /// (head_chunk_rows), so that the [B*T, V] logits are never stored: per chunk, logits = LN(x)·Eᵀ,
  /// then the loss and, in their place, d_logits (scaled by grad_scale); with `backward`, also
  /// d_normed = d_logits·E and dE += d_logitsᵀ·LN(x). Returns the summed loss.
  double head_loss(index_t M, index_t V, double grad_scale, bool backward) {
    const index_t C = config_.hidden_size, chunk = head_chunk_rows(M, V);
    const T* E = word_embeddings.value.data();
    logits_.resize(Shape{chunk, V});
    double total = 0.0;
    for (index_t r0 = 0; r0 < M; r0 += chunk) {
      const index_t rows = std::min(chunk, M - r0);
      const T* x = normed_.data() + r0 * C;
      kernels::gemm(device_, logits_.data(), V, x, C, false, E, C, true, rows, V, C);  // (rows, V)
      total += kernels::cross_entropy_forward_backward(device_, logits_.data(), static_cast<T*>(nullptr),
                                                       target_ids_.data() + r0, rows, V, grad_scale);
      if (!backward) continue;
      kernels::gemm(device_, d_normed_.data() + r0 * C, C, logits_.data(), V, false, E, C, false, rows, C, V);
      kernels::gemm(device_, word_embeddings.grad.data(), C, logits_.data(), V, true, x, C, false, V, C, rows, T(1),
                    T(1));
    }
    return total;
  }

  /// The forward pass up to the final LayerNorm (normed_, B*T rows); keeps every activation backward needs.
  void forward_normed(const std::int32_t* tokens, index_t B, index_t T_len) {
    const index_t M = B * T_len, C = config_.hidden_size;
    forward_hidden(tokens, B, T_len);
    normed_.resize(Shape{M, C});
    final_mean_.resize(Shape{M});
    final_rstd_.resize(Shape{M});
    kernels::layer_norm_forward(device_, normed_.data(), final_mean_.data(), final_rstd_.data(),
                                residuals_[layers.size()].data(), final_norm_weight.value.data(),
                                final_norm_bias.value.data(), M, C, config_.layernorm_epsilon);
  }

  /// The forward pass into raw logits memory (B*T, V); keeps every activation backward needs.
  void forward_to_logits(T* logits, const std::int32_t* tokens, index_t B, index_t T_len) {
    const index_t M = B * T_len, C = config_.hidden_size, V = vocab_size();
    forward_normed(tokens, B, T_len);
    // logits = LN(x) · Eᵀ                                                              (B*T, V)
    kernels::gemm(device_, logits, V, normed_.data(), C, false, word_embeddings.value.data(), C, true, M, V, C);
  }

  /// Embedding and every block: the last block's output is residuals_[L] (B*T, C).
  void forward_hidden(const std::int32_t* tokens, index_t B, index_t T_len) {
    const index_t M = B * T_len, C = config_.hidden_size, V = vocab_size();  // checked by the callers
    for (index_t i = 0; i < M; ++i)
      if (tokens[i] < 0 || tokens[i] >= V)
        throw argument_error("token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                             " is outside the vocabulary [0, " + std::to_string(V) + ")");
    token_ids_.resize(Shape{M});
    token_ids_.copy_from_host(tokens);
    residuals_.resize(layers.size() + 1);
    for (auto& r : residuals_) r.resize(Shape{M, C});
    kernels::embedding_forward(device_, residuals_[0].data(), token_ids_.data(), word_embeddings.value.data(), M, C);
    for (std::size_t l = 0; l < layers.size(); ++l) layers[l].forward(residuals_[l + 1], residuals_[l], B, T_len, 0);
  }

  /// The attached int8 head; a copied or moved-to model starts without it (it belongs to the attacher).
  struct Int8Head {
    const kernels::Q8Matrix* matrix = nullptr;
    Int8Head() = default;
    Int8Head(const Int8Head&) {}
    Int8Head& operator=(const Int8Head&) {
      matrix = nullptr;
      return *this;
    }
  };

  ModelConfig config_;
  Device device_{};
  Int8Head int8_head_;
  Tensor<std::int32_t, Device> token_ids_, target_ids_;  // (B*T)
  std::vector<Tensor<T, Device>> residuals_;             // L+1 x (B*T, C): the input of each block, then the output
  Tensor<T, Device> normed_;                             // (B*T, C) final LayerNorm output
  Tensor<T, Device> last_hidden_;                        // (B, C) forward_last's last positions
  Tensor<T, Device> final_mean_, final_rstd_;            // (B*T)
  Tensor<T, Device> logits_;                             // (chunk, V) one chunk's logits, then their gradient
  Tensor<T, Device> d_residual_, d_normed_;              // (B*T, C) backward scratch
};

}  // namespace tokenformer

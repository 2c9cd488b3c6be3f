// tokenformer/core/model_config.hpp: what a TokenFormer model looks like.
//
// Two forms describe a model:
//  * a *static* config: one struct of named `static constexpr` members, passed as a single template
//    parameter (see presets.hpp). Any member may be `dynamic` (normalization: std::nullopt; rotary_pct:
//    negative) to leave it to run time. `check_static_config<Config>()` static_asserts
//    every rule that the known members allow.
//  * a *run-time* `ModelConfig`, for sizes read from a file. `validate()` applies the same rules
//    and throws config_error. `ModelConfig::from<Config>()` converts a fully static config.
// Letters used in shape comments: B batch, T time, C channels (hidden size), H heads, D head dim,
// P parameter tokens, V vocabulary rows.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/fit_config.hpp"
#include "tokenformer/core/normalization.hpp"

namespace tokenformer {

/// Marks a static config member whose value is only known at run time.
inline constexpr index_t dynamic = -1;

/// Number of rotary dims of a head: int(head_dim * rotary_pct), as in GPT-NeoX.
constexpr index_t rotary_dims_of(index_t head_dim, double rotary_pct) {
  return static_cast<index_t>(static_cast<double>(head_dim) * rotary_pct);
}

/// The token counts and pinned scales of one layer's Pattentions (see ModelConfig::layer).
struct LayerTokens {
  ///@{
  /// Tokens of the Q/K/V, output and FFN Pattentions.
  index_t qkv = 0, proj = 0, ffn = 0;
  ///@}
  ///@{
  /// Pinned token counts of Θ's √n factor per role (0: the current token count).
  index_t qkv_scale = 0, proj_scale = 0, ffn_scale = 0;
  ///@}
  /// Every count and scale equal.
  friend bool operator==(const LayerTokens& a, const LayerTokens& b) {
    return a.qkv == b.qkv && a.proj == b.proj && a.ffn == b.ffn && a.qkv_scale == b.qkv_scale &&
           a.proj_scale == b.proj_scale && a.ffn_scale == b.ffn_scale;
  }
  friend bool operator!=(const LayerTokens& a, const LayerTokens& b) { return !(a == b); }  ///< not ==
};

/// A model's configuration at run time. Field names follow the official config keys.
struct ModelConfig {
  index_t num_layers = 0;    ///< official: num_layers
  index_t hidden_size = 0;   ///< official: hidden_size (C)
  index_t num_heads = 0;     ///< official: num_attention_heads (H)
  index_t qkv_tokens = 0;    ///< official: qkv_slot_num, tokens of the Q, K and V Pattentions
  index_t proj_tokens = 0;   ///< official: proj_slot_num, tokens of the output projection
  index_t ffn_tokens = 0;    ///< official: ffn_slot_num, tokens of the FFN Pattention
  index_t vocab_size = 0;    ///< rows of the embedding matrix (V); may be padded
  double rotary_pct = 0.25;  ///< official: rotary_pct
  Normalization normalization = Normalization::l2_norm_gelu;  ///< official: norm_activation_type
  double layernorm_epsilon = 1e-5;                            ///< official: layernorm_epsilon
  double rotary_base = 10000.0;                               ///< official: rotary_emb_base
  ///@{
  /// Pinned token counts of Θ's √n factor per role (0: the current count, the official semantics).
  /// Set by function-preserving growth; written as qkv_scale_slot_num etc. (a tokenformer extension).
  index_t qkv_scale_tokens = 0, proj_scale_tokens = 0, ffn_scale_tokens = 0;
  ///@}
  /// Per-layer token counts and pinned scales, for a model whose layers differ (grown on some layers
  /// only); empty when every layer has the scalar fields above. Written as lists under the official
  /// keys (qkv_slot_num: [...]) where layers differ. Set it with set_layers, which keeps the scalar
  /// fields equal to layer 0's and empties it again when the layers agree.
  std::vector<LayerTokens> per_layer;
  /// The body: the official TokenFormer stack (config key "architecture" absent or "tokenformer"), or
  /// FIT ("fit"), whose sizes are in `fit` and whose num_layers is the number of its units (see
  /// core/fit_config.hpp). Every Pattention of a FIT unit uses that unit's token counts.
  Architecture architecture = Architecture::tokenformer;
  FitConfig fit;  ///< the FIT body's sizes and layer string (read only when architecture is fit)
  /// Transformer only: the MLP's hidden size (official GPT-NeoX key intermediate_size; 0: 4·hidden_size).
  /// A transformer has no parameter tokens: its token counts are 0 and not read or written.
  index_t intermediate_size = 0;

  /// The transformer's MLP hidden size: intermediate_size, or 4·hidden_size when it is 0.
  index_t mlp_size() const { return intermediate_size > 0 ? intermediate_size : 4 * hidden_size; }

  /// The token counts of layer `i`.
  LayerTokens layer(index_t i) const {
    if (!per_layer.empty()) return per_layer.at(static_cast<std::size_t>(i));
    return LayerTokens{qkv_tokens, proj_tokens, ffn_tokens, qkv_scale_tokens, proj_scale_tokens, ffn_scale_tokens};
  }
  /// Sets every layer's token counts (one entry per layer).
  void set_layers(const std::vector<LayerTokens>& layers) {
    if (layers.empty()) throw config_error("set_layers needs one entry per layer");
    const LayerTokens& first = layers.front();
    qkv_tokens = first.qkv;
    proj_tokens = first.proj;
    ffn_tokens = first.ffn;
    qkv_scale_tokens = first.qkv_scale;
    proj_scale_tokens = first.proj_scale;
    ffn_scale_tokens = first.ffn_scale;
    bool uniform = true;
    for (const auto& l : layers) uniform = uniform && l == first;
    per_layer = uniform ? std::vector<LayerTokens>{} : layers;
  }

  index_t head_dim() const { return num_heads > 0 ? hidden_size / num_heads : 0; }  ///< D = C / H (0 without heads)
  index_t rotary_dims() const { return rotary_dims_of(head_dim(), rotary_pct); }    ///< int(D · rotary_pct)

  /// Number of scalar parameters of a model of this config: embedding (tied head), per layer the
  /// key and value tokens of the Q, K, V, output and FFN Pattentions, and the final norm. For FIT,
  /// per unit: local and global layers as above at their widths, read and write their four
  /// Pattentions (K and V map one width to the other), and the latent initialization. Transformer:
  /// per layer four C×C Linear layers and the MLP with their biases, and two affine LayerNorms.
  index_t parameter_count() const {
    index_t pattention = 0;
    if (architecture == Architecture::transformer) {
      const index_t C = hidden_size, I = mlp_size();
      pattention = num_layers * (4 * (C * C + C) + 2 * C * I + I + C + 4 * C);
    } else if (architecture == Architecture::fit) {
      const index_t C = hidden_size, Cl = fit.latent_size;
      const auto units = parse_fit_layers(fit.layers);
      for (std::size_t i = 0; i < units.size(); ++i) {
        const LayerTokens l = layer(static_cast<index_t>(i));
        switch (units[i].kind) {
          case FitUnitKind::local: pattention += 2 * C * (3 * l.qkv + l.proj + l.ffn); break;
          case FitUnitKind::global: pattention += 2 * Cl * (3 * l.qkv + l.proj + l.ffn); break;
          case FitUnitKind::read: pattention += 2 * Cl * (l.qkv + l.proj) + 2 * (C + Cl) * l.qkv; break;
          case FitUnitKind::write: pattention += 2 * C * (l.qkv + l.proj) + 2 * (C + Cl) * l.qkv; break;
        }
      }
      pattention += fit.max_groups * fit.latents_per_group * Cl;
    } else {
      for (index_t i = 0; i < num_layers; ++i) {
        const LayerTokens l = layer(i);
        pattention += 2 * hidden_size * (3 * l.qkv + l.proj + l.ffn);
      }
    }
    return vocab_size * hidden_size + pattention + 2 * hidden_size;
  }

  /// Training FLOPs per token (forward + backward ≈ 3 × forward) for sequences of length T:
  /// 6 · (Pattention parameters + the tied head V·C) + 6 · L · T · C for causal attention
  /// (scores and mixing, 2·2·T·C per token forward over half the positions on average, times 3).
  /// FIT (G = ceil(T/n) groups, m latents per group): 6 · (each Pattention's parameters × the rows
  /// it runs on per token: 1 for the token side, m/n for the latent side) + attention per token:
  /// local 12·C·n/2 (decoder) or 12·C·n (encoder), read 12·Cl·m, write 12·C·m, global
  /// 12·Cl·(m/n)·G·m/2 (decoder) or 12·Cl·(m/n)·G·m (encoder), and the head 6·V·C.
  /// Transformer: 6 · (L · (4·C² + 2·C·I) + V·C) + 6 · L · T · C (biases and norms left out).
  double training_flops_per_token(index_t sequence_length) const {
    const double C = static_cast<double>(hidden_size), V = static_cast<double>(vocab_size);
    if (architecture == Architecture::transformer)
      return 6.0 *
                 (static_cast<double>(num_layers) * (4.0 * C * C + 2.0 * C * static_cast<double>(mlp_size())) + V * C) +
             6.0 * static_cast<double>(num_layers) * static_cast<double>(sequence_length) * C;
    if (architecture == Architecture::fit) {
      const double Cl = static_cast<double>(fit.latent_size), n = static_cast<double>(fit.group_size),
                   m = static_cast<double>(fit.latents_per_group), lat = m / n;
      const double G = std::ceil(static_cast<double>(sequence_length) / n);
      const double half = fit.causal ? 0.5 : 1.0;
      const auto units = parse_fit_layers(fit.layers);
      double flops = 6.0 * V * C;
      for (std::size_t i = 0; i < units.size(); ++i) {
        const LayerTokens l = layer(static_cast<index_t>(i));
        const double qkv = static_cast<double>(l.qkv), proj = static_cast<double>(l.proj),
                     ffn = static_cast<double>(l.ffn);
        switch (units[i].kind) {
          case FitUnitKind::local: flops += 6.0 * 2.0 * C * (3 * qkv + proj + ffn) + 12.0 * C * n * half; break;
          case FitUnitKind::global:
            flops += lat * (6.0 * 2.0 * Cl * (3 * qkv + proj + ffn) + 12.0 * Cl * G * m * half);
            break;
          case FitUnitKind::read:  // Q, proj on latents; K, V on tokens
            flops += lat * 6.0 * 2.0 * Cl * (qkv + proj) + 6.0 * 2.0 * qkv * (C + Cl) + 12.0 * Cl * m;
            break;
          case FitUnitKind::write:  // Q, proj on tokens; K, V on latents
            flops += 6.0 * 2.0 * C * (qkv + proj) + lat * 6.0 * 2.0 * qkv * (C + Cl) + 12.0 * C * m;
            break;
        }
      }
      return flops;
    }
    double pattention = 0.0;
    for (index_t i = 0; i < num_layers; ++i) {
      const LayerTokens l = layer(i);
      pattention += 2.0 * C * static_cast<double>(3 * l.qkv + l.proj + l.ffn);
    }
    return 6.0 * (pattention + V * C) +
           6.0 * static_cast<double>(num_layers) * static_cast<double>(sequence_length) * C;
  }

  /// Throws config_error with the first rule this config breaks.
  void validate() const {
    auto positive = [](index_t v, const char* name) {
      if (v <= 0) throw config_error(std::string(name) + " must be positive, got " + std::to_string(v));
    };
    positive(num_layers, "num_layers");
    positive(hidden_size, "hidden_size");
    positive(num_heads, "num_attention_heads");
    positive(vocab_size, "vocab_size");
    if (architecture == Architecture::transformer) {
      if (qkv_tokens != 0 || proj_tokens != 0 || ffn_tokens != 0 || qkv_scale_tokens != 0 || proj_scale_tokens != 0 ||
          ffn_scale_tokens != 0 || !per_layer.empty())
        throw config_error("a transformer config has no parameter tokens (its token counts must be 0)");
      if (intermediate_size < 0)
        throw config_error("intermediate_size must be positive (or 0 for 4 * hidden_size), got " +
                           std::to_string(intermediate_size));
      if (hidden_size > (index_t(1) << 40) / 4) throw config_error("hidden_size is too large");
    } else {
      if (intermediate_size != 0)
        throw config_error("intermediate_size is a transformer setting; a " + std::string(to_string(architecture)) +
                           " config must leave it 0");
      positive(qkv_tokens, "qkv_slot_num");
      positive(proj_tokens, "proj_slot_num");
      positive(ffn_tokens, "ffn_slot_num");
    }
    if (hidden_size % num_heads != 0)
      throw config_error("num_attention_heads (" + std::to_string(num_heads) + ") must divide hidden_size (" +
                         std::to_string(hidden_size) + ")");
    if (!(rotary_pct >= 0.0 && rotary_pct <= 1.0))
      throw config_error("rotary_pct must be in [0, 1], got " + std::to_string(rotary_pct));
    if (rotary_dims() % 2 != 0)
      throw config_error("rotary dims int(head_dim * rotary_pct) = " + std::to_string(rotary_dims()) +
                         " must be even (rotate-half pairs dims)");
    check_normalization(normalization, "ModelConfig");
    if (!(layernorm_epsilon > 0.0 && std::isfinite(layernorm_epsilon)))
      throw config_error("layernorm_epsilon must be positive and finite");
    if (!(rotary_base > 0.0 && std::isfinite(rotary_base)))
      throw config_error("rotary_emb_base must be positive and finite");
    if (qkv_scale_tokens < 0 || proj_scale_tokens < 0 || ffn_scale_tokens < 0)
      throw config_error("pinned scale token counts must be >= 0");
    if (!per_layer.empty()) {
      if (static_cast<index_t>(per_layer.size()) != num_layers)
        throw config_error("per-layer token counts have " + std::to_string(per_layer.size()) + " entries for " +
                           std::to_string(num_layers) + " layers");
      for (std::size_t i = 0; i < per_layer.size(); ++i) {
        const LayerTokens& l = per_layer[i];
        if (l.qkv <= 0 || l.proj <= 0 || l.ffn <= 0)
          throw config_error("layer " + std::to_string(i) + ": token counts must be positive");
        if (l.qkv_scale < 0 || l.proj_scale < 0 || l.ffn_scale < 0)
          throw config_error("layer " + std::to_string(i) + ": pinned scale token counts must be >= 0");
      }
      if (per_layer.front() != layer_zero_scalars())
        throw config_error("per-layer token counts: layer 0 must equal qkv_slot_num, proj_slot_num, ffn_slot_num");
    }
    if (architecture != Architecture::tokenformer && architecture != Architecture::fit &&
        architecture != Architecture::transformer)
      throw config_error("unknown architecture value " + std::to_string(static_cast<int>(architecture)));
    if (architecture == Architecture::fit) {
      fit.validate();
      const auto units = static_cast<index_t>(parse_fit_layers(fit.layers).size());
      if (num_layers != units)
        throw config_error("a FIT config's num_layers must be the number of units of fit_layers \"" + fit.layers +
                           "\" (" + std::to_string(units) + "), got " + std::to_string(num_layers));
    }
  }

  /// The run-time form of a fully static config.
  template <class Config>
  static ModelConfig from();

  /// Every field equal; `fit` compared only for FIT, the MLP size only for the transformer.
  friend bool operator==(const ModelConfig& a, const ModelConfig& b) {
    return a.num_layers == b.num_layers && a.hidden_size == b.hidden_size && a.num_heads == b.num_heads &&
           a.qkv_tokens == b.qkv_tokens && a.proj_tokens == b.proj_tokens && a.ffn_tokens == b.ffn_tokens &&
           a.vocab_size == b.vocab_size && a.rotary_pct == b.rotary_pct && a.normalization == b.normalization &&
           a.layernorm_epsilon == b.layernorm_epsilon && a.rotary_base == b.rotary_base &&
           a.qkv_scale_tokens == b.qkv_scale_tokens && a.proj_scale_tokens == b.proj_scale_tokens &&
           a.ffn_scale_tokens == b.ffn_scale_tokens && a.per_layer == b.per_layer && a.architecture == b.architecture &&
           (a.architecture != Architecture::fit || a.fit == b.fit) &&
           (a.architecture != Architecture::transformer || a.mlp_size() == b.mlp_size());
  }

 private:
  LayerTokens layer_zero_scalars() const {
    return LayerTokens{qkv_tokens, proj_tokens, ffn_tokens, qkv_scale_tokens, proj_scale_tokens, ffn_scale_tokens};
  }
};

/// A static config's normalization: Config::normalization is a Normalization, or a
/// std::optional<Normalization> that is std::nullopt where it is chosen at run time.
template <class Config>
constexpr std::optional<Normalization> static_normalization() {
  return std::optional<Normalization>(Config::normalization);
}

/// True when every member of a static config is known at compile time.
template <class Config>
constexpr bool is_fully_static() {
  return Config::num_layers != dynamic && Config::hidden_size != dynamic && Config::num_heads != dynamic &&
         Config::qkv_tokens != dynamic && Config::proj_tokens != dynamic && Config::ffn_tokens != dynamic &&
         Config::vocab_size != dynamic && Config::rotary_pct >= 0.0 && static_normalization<Config>().has_value();
}

/// Compile-time checks of a static config; instantiated by every model constructor.
template <class Config>
constexpr bool check_static_config() {
  static_assert(std::is_floating_point<typename Config::scalar>::value,
                "Config::scalar must be a floating-point type (float or double)");
  static_assert(Config::num_layers == dynamic || Config::num_layers > 0, "Config::num_layers must be positive");
  static_assert(Config::hidden_size == dynamic || Config::hidden_size > 0, "Config::hidden_size must be positive");
  static_assert(Config::num_heads == dynamic || Config::num_heads > 0, "Config::num_heads must be positive");
  static_assert(
      Config::hidden_size == dynamic || Config::num_heads == dynamic || Config::hidden_size % Config::num_heads == 0,
      "Config::num_heads must divide Config::hidden_size");
  static_assert(Config::qkv_tokens == dynamic || Config::qkv_tokens > 0, "Config::qkv_tokens must be positive");
  static_assert(Config::proj_tokens == dynamic || Config::proj_tokens > 0, "Config::proj_tokens must be positive");
  static_assert(Config::ffn_tokens == dynamic || Config::ffn_tokens > 0, "Config::ffn_tokens must be positive");
  static_assert(Config::vocab_size == dynamic || Config::vocab_size > 0, "Config::vocab_size must be positive");
  static_assert(Config::rotary_pct <= 1.0, "Config::rotary_pct must be at most 1 (negative means dynamic)");
  static_assert(Config::rotary_pct < 0.0 || Config::hidden_size == dynamic || Config::num_heads == dynamic ||
                    rotary_dims_of(Config::hidden_size / Config::num_heads, Config::rotary_pct) % 2 == 0,
                "rotary dims int(head_dim * rotary_pct) must be even: rotate-half pairs dim i with i + dims/2");
  static_assert(Config::layernorm_epsilon > 0.0, "Config::layernorm_epsilon must be positive");
  return true;
}

template <class Config>
ModelConfig ModelConfig::from() {
  static_assert(check_static_config<Config>());
  static_assert(is_fully_static<Config>(),
                "ModelConfig::from<Config>() needs a fully static config; give the run-time values instead");
  ModelConfig c;
  c.num_layers = Config::num_layers;
  c.hidden_size = Config::hidden_size;
  c.num_heads = Config::num_heads;
  c.qkv_tokens = Config::qkv_tokens;
  c.proj_tokens = Config::proj_tokens;
  c.ffn_tokens = Config::ffn_tokens;
  c.vocab_size = Config::vocab_size;
  c.rotary_pct = Config::rotary_pct;
  c.normalization = *static_normalization<Config>();
  c.layernorm_epsilon = Config::layernorm_epsilon;
  c.validate();
  return c;
}

/// Throws config_error unless the run-time config agrees with every static member of `Config`.
template <class Config>
void check_matches_static(const ModelConfig& c) {
  static_assert(check_static_config<Config>());
  auto same = [](index_t fixed, index_t value, const char* name) {
    if (fixed != dynamic && fixed != value)
      throw config_error(std::string(name) + " is fixed to " + std::to_string(fixed) +
                         " by the static config but the run-time config has " + std::to_string(value));
  };
  same(Config::num_layers, c.num_layers, "num_layers");
  same(Config::hidden_size, c.hidden_size, "hidden_size");
  same(Config::num_heads, c.num_heads, "num_heads");
  same(Config::vocab_size, c.vocab_size, "vocab_size");
  // Token counts are starting sizes only: a model may have grown since, so they are not compared.
  if (Config::rotary_pct >= 0.0 && Config::rotary_pct != c.rotary_pct)
    throw config_error("rotary_pct is fixed by the static config and differs from the run-time config");
  constexpr std::optional<Normalization> fixed = static_normalization<Config>();
  if (fixed && *fixed != c.normalization)
    throw config_error(std::string("normalization is fixed to ") + to_string(*fixed) +
                       " by the static config but the run-time config has " + to_string(c.normalization));
}

}  // namespace tokenformer

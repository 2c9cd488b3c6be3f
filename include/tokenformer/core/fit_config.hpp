// tokenformer/core/fit_config.hpp: what a FIT body looks like (arXiv 2305.12689, with Pattention
// projections).
//
// A FIT body cuts the T data tokens of a sequence into groups of `group_size` (n) consecutive tokens
// and keeps `latents_per_group` (m) latent tokens of width `latent_size` per group. Its layer string
// "(a0)b0(a1)b1...(ak)" lists blocks: block i runs a_i *local* TokenFormer layers within each group,
// then (every block but the last) a *read* (each group's latents attend to their group's tokens), b_i
// *global* TokenFormer layers over all latents of the sequence, and a *write* (each group's tokens
// attend to their group's latents). The last block is "(ak)": local layers only, because the language
// model reads its output from the tokens.
//
// The body's *units*, in execution order, are what the model config calls its layers: num_layers is
// the number of units, and per-layer token counts (after growth) index units. Example "(1)1(1)":
// local, read, global, write, local (5 units).
#pragma once

#include <cctype>
#include <string>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/error.hpp"

namespace tokenformer {

/// Which body a model has: the official TokenFormer stack, FIT, or the plain Transformer baseline
/// (Linear projections and a GeLU MLP: layers/transformer_layer.hpp).
enum class Architecture { tokenformer, fit, transformer };

/// The config value of `a`: "tokenformer", "fit" or "transformer".
inline const char* to_string(Architecture a) {
  switch (a) {
    case Architecture::tokenformer: return "tokenformer";
    case Architecture::fit: return "fit";
    case Architecture::transformer: return "transformer";
  }
  return "unknown";
}

/// Parses the config key "architecture"; throws config_error naming the accepted values.
inline Architecture parse_architecture(const std::string& name) {
  if (name == "tokenformer") return Architecture::tokenformer;
  if (name == "fit") return Architecture::fit;
  if (name == "transformer") return Architecture::transformer;
  throw config_error("unknown architecture '" + name + "' (expected tokenformer, fit or transformer)");
}

/// The kind of one unit of a FIT body.
enum class FitUnitKind { local, read, global, write };

/// The name of `k`: "local", "read", "global" or "write".
inline const char* to_string(FitUnitKind k) {
  switch (k) {
    case FitUnitKind::local: return "local";
    case FitUnitKind::read: return "read";
    case FitUnitKind::global: return "global";
    case FitUnitKind::write: return "write";
  }
  return "unknown";
}

/// One unit of a FIT body and the block it belongs to.
struct FitUnit {
  FitUnitKind kind = FitUnitKind::local;  ///< what the unit does
  index_t block = 0;                      ///< index of its block in the layer string, from 0
  /// The same kind in the same block.
  friend bool operator==(const FitUnit& a, const FitUnit& b) { return a.kind == b.kind && a.block == b.block; }
};

/// Parses a FIT layer string into its units; throws config_error saying what is wrong.
inline std::vector<FitUnit> parse_fit_layers(const std::string& text) {
  const auto fail = [&](const std::string& why) {
    throw config_error("fit_layers \"" + text + "\": " + why +
                       " (expected \"(local)global(local)global...(local)\", e.g. \"(2)2(2)\")");
  };
  constexpr index_t max_count = 1 << 16;
  std::size_t i = 0;
  const auto number = [&](const char* what) {
    if (i >= text.size() || !std::isdigit(static_cast<unsigned char>(text[i])))
      fail(std::string("expected the number of ") + what + " layers at character " + std::to_string(i));
    index_t v = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      v = v * 10 + (text[i++] - '0');
      if (v > max_count) fail(std::string("more than ") + std::to_string(max_count) + " " + what + " layers");
    }
    return v;
  };
  std::vector<FitUnit> units;
  index_t block = 0;
  if (text.empty()) fail("empty");
  while (i < text.size()) {
    if (text[i] != '(') fail("expected '(' at character " + std::to_string(i));
    ++i;
    const index_t local = number("local");
    if (i >= text.size() || text[i] != ')') fail("expected ')' at character " + std::to_string(i));
    ++i;
    for (index_t k = 0; k < local; ++k) units.push_back({FitUnitKind::local, block});
    if (i == text.size()) {
      if (local == 0) fail("the last block needs at least one local layer");
      return units;
    }
    const index_t global = number("global");
    if (global == 0) fail("every block but the last needs at least one global layer");
    units.push_back({FitUnitKind::read, block});
    for (index_t k = 0; k < global; ++k) units.push_back({FitUnitKind::global, block});
    units.push_back({FitUnitKind::write, block});
    ++block;
    if (i == text.size()) fail("the string must end with a block of local layers \"(k)\"");
  }
  fail("the string must end with a block of local layers \"(k)\"");
  return units;
}

/// The FIT-specific part of a model config (ModelConfig::fit; used when architecture is fit).
struct FitConfig {
  std::string layers;             ///< config key fit_layers, e.g. "(2)2(2)"
  index_t group_size = 0;         ///< n: data tokens per group
  index_t latents_per_group = 0;  ///< m: latent tokens per group
  index_t latent_size = 0;        ///< width of the latent tokens
  index_t latent_heads = 0;       ///< config key latent_attention_heads: heads over latents (global, read)
  index_t max_groups = 0;         ///< groups the learned latent initialization covers: T <= max_groups * n
  bool causal = true;             ///< true: autoregressive decoder (FITAR); false: bidirectional encoder

  /// Throws config_error with the first rule this config breaks.
  void validate() const {
    parse_fit_layers(layers);
    const auto positive = [](index_t v, const char* name) {
      if (v <= 0) throw config_error(std::string(name) + " must be positive, got " + std::to_string(v));
    };
    positive(group_size, "group_size");
    positive(latents_per_group, "latents_per_group");
    positive(latent_size, "latent_size");
    positive(latent_heads, "latent_attention_heads");
    positive(max_groups, "max_groups");
    if (latent_size % latent_heads != 0)
      throw config_error("latent_attention_heads (" + std::to_string(latent_heads) + ") must divide latent_size (" +
                         std::to_string(latent_size) + ")");
    constexpr index_t limit = index_t(1) << 31;
    for (index_t v : {group_size, latents_per_group, latent_size, max_groups})
      if (v > limit) throw config_error("FIT sizes must be at most 2^31");
    if (max_groups > limit / group_size || max_groups > limit / latents_per_group)
      throw config_error("max_groups * group_size and max_groups * latents_per_group must be at most 2^31");
    if (max_groups * latents_per_group > limit / latent_size)
      throw config_error(
          "the learned latents (max_groups * latents_per_group * latent_size values) must be at most "
          "2^31 values");
  }

  /// Every field equal.
  friend bool operator==(const FitConfig& a, const FitConfig& b) {
    return a.layers == b.layers && a.group_size == b.group_size && a.latents_per_group == b.latents_per_group &&
           a.latent_size == b.latent_size && a.latent_heads == b.latent_heads && a.max_groups == b.max_groups &&
           a.causal == b.causal;
  }
};

}  // namespace tokenformer

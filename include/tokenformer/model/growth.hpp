// tokenformer/model/growth.hpp: grow a TokenFormer in place by appending parameter tokens.
//
// Because a Pattention's token count is independent of its input and output sizes, a trained model
// grows by appending key/value tokens and keeps training (the TokenFormer paper's incremental
// scaling). grow() appends tokens to the Pattentions a GrowthSpec selects, in place: storage reserves
// capacity like std::vector, so growing within capacity moves no existing token. Gradients and AdamW
// moments grow with their parameters (new moments start at zero); the optimizer's step count, which
// lives in the AdamW object, is untouched.
//
// How new tokens start (TokenInit) decides whether the grown model computes what the old one did
// and whether the new tokens train. With a pinned scale (`pin_scale`) and zero new keys, every new
// score is exactly 0, Θ(0) = 0 under both GeLU normalizations, and a zero score changes no row norm,
// so the grown model's outputs are bit-for-bit the old ones; with random new *values*
// (`zero_keys`, the default for growing and training on) the new keys still get gradient. Softmax
// cannot be preserved exactly by any new token (exp(s) > 0 for every finite score): see
// TokenInit::zero_keys and the README's growth section for what it changes.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/model/language_model.hpp"

namespace tokenformer {

/// How new tokens start.
///  zero_keys:   keys zero, values N(0, value_std). Exactly function-preserving with a pinned scale
///               under l2_norm_gelu and gelu_l2_norm (each new score is 0, Θ(0) = 0, and a zero
///               score adds nothing to a row's norm), and the new keys get gradient at once through
///               the non-zero values (Θ'(0) ≠ 0). The new values' gradient is Θ(0)·… = 0 until
///               the keys move. The default for growing and training on.
///  zero:        keys and values zero. Also function-preserving with a pinned scale, but under the
///               GeLU normalizations the new tokens then get exactly zero gradient (Θ(0) = 0, and
///               the keys' gradient is multiplied by the zero values), so they never train: use it
///               to resize, not to add capacity.
///  random:      keys and values from the official initialization. Changes the function.
///  random_keys: keys from the official initialization, values zero. The new tokens add nothing to
///               the outputs, but their non-zero scores enter each row's L2 norm (l2_norm_gelu,
///               gelu_l2_norm) or softmax sum, so every old output changes: NOT function-preserving.
/// Under softmax no init preserves the function: a new token j takes probability p_j = e^{s_j}/Z' > 0
/// whatever its key, and moves each output row by p_j·(n·v_j − out); its key's gradient is
/// proportional to the same p_j, so a token that changes nothing also never trains (very negative
/// keys or a per-token score offset trade the one against the other). With zero keys and zero values
/// (p_j = 1/(Z + m) per row, Z the old row's sum of exp) each row shrinks by Z/(Z + m). The README's
/// growth section has the measured effect of each init on a trained softmax model.
enum class TokenInit { zero_keys, zero, random, random_keys };

/// The init's name: "zero_keys", "zero", "random" or "random_keys".
inline const char* to_string(TokenInit init) {
  switch (init) {
    case TokenInit::zero_keys: return "zero_keys";
    case TokenInit::zero: return "zero";
    case TokenInit::random: return "random";
    case TokenInit::random_keys: return "random_keys";
  }
  return "unknown";
}

/// The TokenInit named `name` (as to_string writes it); throws config_error for another name.
inline TokenInit parse_token_init(const std::string& name) {
  for (auto init : {TokenInit::zero_keys, TokenInit::zero, TokenInit::random, TokenInit::random_keys})
    if (name == to_string(init)) return init;
  throw config_error("unknown token initialization '" + name + "' (expected zero_keys, zero, random or random_keys)");
}

/// Which Pattentions grow, by how much, and how.
struct GrowthSpec {
  index_t qkv = 0;              ///< tokens added to each of the query, key and value Pattentions
  index_t proj = 0;             ///< tokens added to each output projection
  index_t ffn = 0;              ///< tokens added to each FFN
  std::vector<index_t> layers;  ///< the layers to grow (empty: all)
  /// Only the Pattentions whose path (for_each_pattention: "sequential.2.mlp", ...) starts with one
  /// of these grow (empty: all); with `layers`, a Pattention must match both.
  std::vector<std::string> paths;
  TokenInit init = TokenInit::zero_keys;  ///< how the new tokens start (see TokenInit)
  /// Standard deviation of the new values under `random` and `zero_keys`; unset: the official value
  /// initialization 2/(L·√C). Must be finite and >= 0.
  std::optional<double> value_std;
  bool pin_scale = false;   ///< keep Θ's √n at the count before growth (function-preserving)
  bool freeze_old = false;  ///< train only the new tokens (freeze the old ones in the optimizer)
  std::uint64_t seed = 0;   ///< for random initialization
};

/// The standard deviation of new values that `spec` asks for, `official` where it names none; throws
/// argument_error for a negative or non-finite one.
inline double growth_value_std(const GrowthSpec& spec, double official) {
  if (!spec.value_std) return official;
  const double v = *spec.value_std;
  if (!std::isfinite(v) || v < 0)
    throw argument_error("growth value_std must be finite and >= 0, got " + std::to_string(v));
  return v;
}

/// The tokens `spec` adds to a Pattention of `role`.
inline index_t growth_count(const GrowthSpec& spec, PattentionRole role) {
  switch (role) {
    case PattentionRole::qkv: return spec.qkv;
    case PattentionRole::proj: return spec.proj;
    case PattentionRole::ffn: return spec.ffn;
  }
  return 0;
}

/// Appends `count` tokens to one Pattention with the spec's options (`layers` is ignored);
/// `official_value_std` is used for the new values where the spec gives no value_std.
template <class T, class Device>
void grow(Pattention<T, Device>& p, index_t count, const GrowthSpec& spec, Rng& rng, double official_value_std) {
  if (count < 0) throw argument_error("cannot grow by a negative number of tokens");
  const double value_std = growth_value_std(spec, official_value_std);
  if (count == 0) return;
  if (spec.pin_scale && p.pinned_scale_tokens() == 0) p.pin_scale_tokens(p.tokens());
  const index_t old = p.tokens();
  switch (spec.init) {
    case TokenInit::zero_keys: {
      // Keys exactly +0 (not drawn with a zero deviation, which could give -0), values drawn.
      std::vector<T> keys(static_cast<std::size_t>(count * p.input_features()), T(0));
      std::vector<T> values(static_cast<std::size_t>(count * p.output_features()));
      for (auto& v : values) v = static_cast<T>(rng.normal(0.0, value_std));
      p.append_tokens(count, nullptr, 0.0, 0.0, keys.data(), values.data());
      break;
    }
    case TokenInit::random_keys:
      // keys ~ N(0, 0.02), values 0: draw both, then clear the values.
      p.append_tokens(count, &rng, 0.02, 0.0);
      break;
    case TokenInit::random: p.append_tokens(count, &rng, 0.02, value_std); break;
    case TokenInit::zero: p.append_tokens(count); break;
  }
  if (spec.freeze_old) {
    p.key_parameter().frozen_rows = old;
    p.value_parameter().frozen_rows = old;
  }
}

/// The most parameter tokens one Pattention may have after growth (the config's integer limit).
constexpr index_t max_pattention_tokens = index_t(1) << 31;

/// Grows the selected Pattentions of `model` in place; see GrowthSpec. Strong guarantee: the whole
/// spec is checked first (argument_error for a negative count, a bad value_std or layer, a token
/// count beyond max_pattention_tokens), and if growing fails midway (an allocation), every
/// Pattention is shrunk back, so the model and its config are as before.
template <class Config, class Device, template <class, class> class Block>
void grow(LanguageModel<Config, Device, Block>& model, const GrowthSpec& spec) {
  const index_t L = model.layer_count();
  if (model.config().architecture == Architecture::transformer)
    throw argument_error("a transformer has Linear layers and no parameter tokens: there is nothing to grow");
  growth_value_std(spec, 0.0);  // a bad value_std fails before anything grows
  for (const auto& [count, name] :
       {std::pair<index_t, const char*>{spec.qkv, "qkv"}, {spec.proj, "proj"}, {spec.ffn, "ffn"}})
    if (count < 0 || count > max_pattention_tokens)
      throw argument_error("cannot grow " + std::string(name) + " by " + std::to_string(count) +
                           " tokens (must be in [0, " + std::to_string(max_pattention_tokens) + "])");
  for (index_t layer : spec.layers)
    if (layer < 0 || layer >= L)
      throw argument_error("cannot grow layer " + std::to_string(layer) + ": the model has " + std::to_string(L));
  using T = typename LanguageModel<Config, Device, Block>::scalar;
  struct Selected {
    Pattention<T, Device>* p;
    index_t count, tokens, pinned, key_frozen_rows, value_frozen_rows;
  };
  std::vector<Selected> selected;
  for (index_t i = 0; i < L; ++i) {
    if (!spec.layers.empty() && std::find(spec.layers.begin(), spec.layers.end(), i) == spec.layers.end()) continue;
    model.for_each_pattention_of_layer(i, [&](const std::string& path, PattentionRole role, Pattention<T, Device>& p) {
      if (!spec.paths.empty() && std::none_of(spec.paths.begin(), spec.paths.end(), [&](const std::string& prefix) {
            return path.compare(0, prefix.size(), prefix) == 0;
          }))
        return;
      const index_t count = growth_count(spec, role);
      if (p.tokens() + count > max_pattention_tokens)
        throw argument_error(path + ": " + std::to_string(p.tokens()) + " + " + std::to_string(count) +
                             " tokens exceed the limit of " + std::to_string(max_pattention_tokens));
      selected.push_back({&p, count, p.tokens(), p.pinned_scale_tokens(), p.key_parameter().frozen_rows,
                          p.value_parameter().frozen_rows});
    });
  }
  Rng rng(spec.seed);
  const double wang = 2.0 / static_cast<double>(L) / std::sqrt(static_cast<double>(model.hidden_size()));
  try {
    for (const Selected& s : selected) grow(*s.p, s.count, spec, rng, wang);
    model.refresh_config_from_layers();
  } catch (...) {
    for (const Selected& s : selected) {  // shrinking never allocates
      s.p->key_parameter().resize_rows(s.tokens);
      s.p->value_parameter().resize_rows(s.tokens);
      s.p->pin_scale_tokens(s.pinned);
      s.p->key_parameter().frozen_rows = s.key_frozen_rows;
      s.p->value_parameter().frozen_rows = s.value_frozen_rows;
    }
    throw;
  }
}

}  // namespace tokenformer

// tokenformer/model/growth.hpp: grow a TokenFormer in place by appending parameter tokens.
//
// Because a Pattention's token count is independent of its input and output sizes, a trained model
// grows by appending key/value tokens and keeps training (the TokenFormer paper's incremental
// scaling). grow() appends tokens to the Pattentions a GrowthSpec selects, in place: storage reserves
// capacity like std::vector, so growing within capacity moves no existing token. Gradients and AdamW
// moments grow with their parameters (new moments start at zero); the optimizer's step count, which
// lives in the AdamW object, is untouched.
//
// New tokens are zero (the paper's choice), random (the official initialization: keys N(0, 0.02),
// values N(0, 2/(L·√C))), or copied from given tensors (Pattention::append_tokens). With zero new
// tokens and `pin_scale`, the normalization keeps using the token count before growth for its √n
// factor, and the grown model computes exactly what the old one did.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/model/language_model.hpp"

namespace tokenformer {

/// How new tokens start.
///  zero:        keys and values zero. Function-preserving with a pinned scale, but under the GeLU
///               normalizations the new tokens then get exactly zero gradient (Θ(0) = 0 and
///               Θ'·0 = 0), so they never train: use it to resize, not to add capacity.
///  random:      keys and values from the official initialization.
///  random_keys: keys from the official initialization, values zero. The new tokens contribute
///               nothing at first (zero values) and do get gradients; with a pinned scale the grown
///               model starts almost exactly where the old one was. The default for training on.
enum class TokenInit { zero, random, random_keys };

inline TokenInit parse_token_init(const std::string& name) {
  if (name == "zero") return TokenInit::zero;
  if (name == "random") return TokenInit::random;
  if (name == "random_keys") return TokenInit::random_keys;
  throw config_error("unknown token initialization '" + name + "' (expected zero, random or random_keys)");
}

/// Which Pattentions grow, by how much, and how.
struct GrowthSpec {
  index_t qkv = 0;              ///< tokens added to each of the query, key and value Pattentions
  index_t proj = 0;             ///< tokens added to each output projection
  index_t ffn = 0;              ///< tokens added to each FFN
  std::vector<index_t> layers;  ///< the layers to grow (empty: all)
  TokenInit init = TokenInit::zero;
  bool pin_scale = false;   ///< keep Θ's √n at the count before growth (function-preserving)
  bool freeze_old = false;  ///< train only the new tokens (freeze the old ones in the optimizer)
  std::uint64_t seed = 0;   ///< for random initialization
};

/// Appends `count` tokens to one Pattention with the spec's options (`layers` is ignored).
template <class T, class Device>
void grow(Pattention<T, Device>& p, index_t count, const GrowthSpec& spec, Rng& rng, double value_std) {
  if (count < 0) throw argument_error("cannot grow by a negative number of tokens");
  if (count == 0) return;
  if (spec.pin_scale && p.pinned_scale_tokens() == 0) p.pin_scale_tokens(p.tokens());
  const index_t old = p.tokens();
  if (spec.init == TokenInit::random_keys) {
    // keys ~ N(0, 0.02), values 0: draw both, then clear the values.
    p.append_tokens(count, &rng, 0.02, 0.0);
  } else {
    p.append_tokens(count, spec.init == TokenInit::random ? &rng : nullptr, 0.02, value_std);
  }
  if (spec.freeze_old) {
    p.key_parameter().frozen_rows = old;
    p.value_parameter().frozen_rows = old;
  }
}

/// Grows the selected Pattentions of `model` in place; see GrowthSpec.
template <class Config, class Device>
void grow(LanguageModel<Config, Device>& model, const GrowthSpec& spec) {
  const auto L = static_cast<index_t>(model.layers.size());
  for (index_t layer : spec.layers)
    if (layer < 0 || layer >= L)
      throw argument_error("cannot grow layer " + std::to_string(layer) + ": the model has " + std::to_string(L));
  Rng rng(spec.seed);
  const double wang = 2.0 / static_cast<double>(L) / std::sqrt(static_cast<double>(model.hidden_size()));
  for (index_t i = 0; i < L; ++i) {
    if (!spec.layers.empty() && std::find(spec.layers.begin(), spec.layers.end(), i) == spec.layers.end()) continue;
    auto& layer = model.layers[static_cast<std::size_t>(i)];
    for (auto* p : {&layer.attention.query, &layer.attention.key, &layer.attention.value})
      grow(*p, spec.qkv, spec, rng, wang);
    grow(layer.attention.proj, spec.proj, spec, rng, wang);
    grow(layer.ffn, spec.ffn, spec, rng, wang);
  }
  model.refresh_config_from_layers();
}

/// Loads a checkpoint of a smaller model into `model` (the official custom_load_fn_incremental
/// semantics): each parameter-token tensor of the file fills the first rows of the model's (which
/// keeps its own values in the rows after), and every other tensor must match exactly. A mismatch
/// that growth cannot explain (hidden size, layers, vocabulary) raises file_error naming the tensor.
template <class Config, class Device>
void load_weights_for_growth(LanguageModel<Config, Device>& model, io::SafetensorsReader& file) {
  using T = typename LanguageModel<Config, Device>::scalar;
  model.for_each_parameter([&](const std::string& name, Parameter<T, Device>& p) {
    const io::TensorInfo& info = file.info(name);
    const bool tokens = name.size() > 13 && name.compare(name.size() - 13, 13, "_param_tokens") == 0;
    if (info.shape == p.shape()) {
      file.read(name, p.value);
      return;
    }
    if (!tokens || info.shape.rank() != 2 || info.shape[1] != p.shape()[1] || info.shape[0] > p.shape()[0])
      throw file_error(file.path() + ": tensor '" + name + "' has shape " + info.shape.str() + ", the model has " +
                       p.shape().str() +
                       (tokens ? " (only the token count may grow)" : " (only parameter tokens may grow)"));
    std::vector<T> host(static_cast<std::size_t>(info.shape.numel()));
    file.read(name, info.shape, host.data());
    device_memory<Device>::copy_from_host(p.value.device(), p.value.data(), host.data(), host.size() * sizeof(T));
  });
}

}  // namespace tokenformer

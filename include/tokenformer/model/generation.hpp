// tokenformer/model/generation.hpp: sampling text from a language model.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/model/language_model.hpp"

namespace tokenformer {

struct SamplingOptions {
  double temperature = 0.8;   ///< divides the logits; 0 means greedy (argmax)
  index_t top_k = 0;          ///< keep only the k most likely tokens (0: all)
  index_t max_context = 256;  ///< at most this many most recent tokens are fed to the model

  /// Throws argument_error naming the first option out of range (a NaN or infinite temperature, a
  /// negative one, a negative top_k, a non-positive max_context).
  void validate() const {
    if (!(temperature >= 0.0 && std::isfinite(temperature)))
      throw argument_error("sampling temperature must be finite and >= 0 (0: greedy), got " +
                           std::to_string(temperature));
    if (top_k < 0) throw argument_error("sampling top_k must be >= 0 (0: all tokens), got " + std::to_string(top_k));
    if (max_context <= 0)
      throw argument_error("sampling max_context must be positive, got " + std::to_string(max_context));
  }
};

/// Appends `count` tokens sampled from the model to `prompt` (non-empty) and returns the new tokens.
/// Each step runs the model on the last max_context tokens and samples from the last position.
template <class Config, class Device, template <class, class> class Block>
std::vector<std::int32_t> generate(LanguageModel<Config, Device, Block>& model, std::vector<std::int32_t> prompt,
                                   index_t count, Rng& rng, const SamplingOptions& options = {}) {
  if (prompt.empty()) throw argument_error("generate needs a non-empty prompt");
  if (model.config().architecture == Architecture::fit && !model.config().fit.causal)
    throw argument_error("generate needs a decoder: this FIT model is an encoder (causal false) and sees later tokens");
  options.validate();
  using T = typename LanguageModel<Config, Device, Block>::scalar;
  const index_t V = model.vocab_size();
  std::vector<std::int32_t> produced;
  std::vector<T> last(static_cast<std::size_t>(V));
  std::vector<std::pair<double, std::int32_t>> ranked(static_cast<std::size_t>(V));
  for (index_t step = 0; step < count; ++step) {
    const auto begin = prompt.size() > static_cast<std::size_t>(options.max_context)
                           ? prompt.end() - static_cast<std::ptrdiff_t>(options.max_context)
                           : prompt.begin();
    const std::vector<std::int32_t> context(begin, prompt.end());
    const auto T_len = static_cast<index_t>(context.size());
    const auto logits = model.forward(context, 1, T_len);
    std::vector<T> all(static_cast<std::size_t>(logits.size()));
    logits.copy_to_host(all.data());
    std::copy(all.end() - V, all.end(), last.begin());
    std::int32_t next = 0;
    if (options.temperature == 0.0) {
      next = static_cast<std::int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    } else {
      for (index_t v = 0; v < V; ++v)
        ranked[static_cast<std::size_t>(v)] = {
            static_cast<double>(last[static_cast<std::size_t>(v)]) / options.temperature, static_cast<std::int32_t>(v)};
      std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      const index_t keep = options.top_k > 0 ? std::min(options.top_k, V) : V;
      double sum = 0.0;
      for (index_t i = 0; i < keep; ++i) sum += std::exp(ranked[static_cast<std::size_t>(i)].first - ranked[0].first);
      double u = rng.uniform() * sum;
      next = ranked[static_cast<std::size_t>(keep - 1)].second;
      for (index_t i = 0; i < keep; ++i) {
        u -= std::exp(ranked[static_cast<std::size_t>(i)].first - ranked[0].first);
        if (u <= 0) {
          next = ranked[static_cast<std::size_t>(i)].second;
          break;
        }
      }
    }
    prompt.push_back(next);
    produced.push_back(next);
  }
  return produced;
}

}  // namespace tokenformer

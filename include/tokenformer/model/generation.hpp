// tokenformer/model/generation.hpp: sampling text from a language model, with a KV cache.
//
// Generator holds one KV cache per attention layer, allocated once for `rows` sequences of at most
// `capacity` positions, and attaches it to the model's blocks (TokenFormerLayer, TransformerLayer:
// any block with a SelfAttention member `attention`). prefill() runs each prompt through the model in
// one forward (the prompts of equal length as one batch), writing their keys and values into the
// cache; step() then feeds one token per sequence through every layer, which attends to the cache
// (rotary at each sequence's own position). Both return the last position's logits, [rows, V] on the
// host. After prefill, a step allocates nothing on the CPU (tests/test_generation.cpp counts every
// malloc): the cache, the attention scratch, the layers' activations (sized by the prefill) and the
// host logits are all reused.
//
// generate() / generate_batch() sample with temperature, top-k and top-p (nucleus) from a seeded Rng, stops a sequence
// at its stop token, and streams each new token to a callback. Greedy decoding (temperature 0) with
// the cache picks, at every step, the argmax of the full-recompute forward (tested). Models whose
// blocks have no cacheable attention (FIT) recompute the whole context (its last max_context tokens)
// at every step instead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/span.hpp"
#include "tokenformer/model/language_model.hpp"

namespace tokenformer {

/// The weights a Generator decodes with: the model's own, or int8 copies (Q8_0: a float scale per 32
/// values) of every Pattention's key and value tokens and of the tied head, quantized once when the
/// Generator is made (a snapshot: train the model afterwards and the copies are stale until the next
/// Generator). int8 needs a float model on the CPU; backward refuses while it is in use.
enum class WeightFormat {
  model,  ///< the model's own weights
  int8,   ///< int8 copies, made when the Generator is constructed
};

/// How the next token is picked from the logits: temperature, top-k, top-p, context and stop token.
struct SamplingOptions {
  double temperature = 0.8;      ///< divides the logits; 0 means greedy (argmax)
  index_t top_k = 0;             ///< keep only the k most likely tokens (0: all)
  double top_p = 1.0;            ///< keep the most likely tokens whose probabilities sum to at least p (1: all)
  index_t max_context = 256;     ///< without a KV cache: at most this many most recent tokens are fed
  std::int32_t stop_token = -1;  ///< a sequence ends after producing this id (-1: never)
  WeightFormat weights = WeightFormat::model;  ///< int8: decode with int8 copies (KV-cache path only)

  /// Throws argument_error naming the first option out of range (a NaN or infinite temperature, a
  /// negative one, a negative top_k, top_p outside (0, 1], a non-positive max_context).
  void validate() const {
    if (!(temperature >= 0.0 && std::isfinite(temperature)))
      throw argument_error("sampling temperature must be finite and >= 0 (0: greedy), got " +
                           std::to_string(temperature));
    if (top_k < 0) throw argument_error("sampling top_k must be >= 0 (0: all tokens), got " + std::to_string(top_k));
    if (!(top_p > 0.0 && top_p <= 1.0))
      throw argument_error("sampling top_p must be in (0, 1] (1: all tokens), got " + std::to_string(top_p));
    if (max_context <= 0)
      throw argument_error("sampling max_context must be positive, got " + std::to_string(max_context));
  }
};

/// Picks the next token from one row of V logits (`logits.size()` = V > 0). `ranked` is scratch of V entries (reused,
/// so a caller that keeps it allocates nothing). Greedy: the first maximum. Otherwise softmax(logits / t) restricted to
/// the top_k most likely, then to the smallest prefix whose probability reaches top_p, sampled with one uniform draw.
template <class T>
std::int32_t sample_token(Span<const T> row, const SamplingOptions& options, Rng& rng,
                          std::vector<std::pair<double, std::int32_t>>& ranked) {
  const T* logits = row.data();
  const index_t V = row.size();
  if (V == 0) throw argument_error("sample_token needs at least one logit");
  if (options.temperature == 0.0) return static_cast<std::int32_t>(std::max_element(logits, logits + V) - logits);
  ranked.resize(static_cast<std::size_t>(V));
  for (index_t v = 0; v < V; ++v)
    ranked[static_cast<std::size_t>(v)] = {static_cast<double>(logits[v]) / options.temperature,
                                           static_cast<std::int32_t>(v)};
  const auto more_likely = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  const index_t keep = options.top_k > 0 ? std::min(options.top_k, V) : V;
  std::partial_sort(ranked.begin(), ranked.begin() + keep, ranked.end(), more_likely);
  const double top = ranked[0].first;
  double sum = 0.0;
  for (index_t i = 0; i < keep; ++i) {
    auto& entry = ranked[static_cast<std::size_t>(i)];
    entry.first = std::exp(entry.first - top);  // unnormalized probability, from here on
    sum += entry.first;
  }
  index_t nucleus = keep;
  if (options.top_p < 1.0) {
    double mass = 0.0;
    for (index_t i = 0; i < keep; ++i) {
      mass += ranked[static_cast<std::size_t>(i)].first;
      if (mass >= options.top_p * sum) {
        nucleus = i + 1;
        sum = mass;
        break;
      }
    }
  }
  double u = rng.uniform() * sum;
  for (index_t i = 0; i < nucleus; ++i) {
    u -= ranked[static_cast<std::size_t>(i)].first;
    if (u <= 0) return ranked[static_cast<std::size_t>(i)].second;
  }
  return ranked[static_cast<std::size_t>(nucleus - 1)].second;
}

/// True when Block<T, Device> has a SelfAttention member `attention` that takes a KV cache.
template <class Layer, class T, class Device, class = void>
struct block_supports_kv_cache : std::false_type {};
template <class Layer, class T, class Device>
struct block_supports_kv_cache<Layer, T, Device,
                               std::void_t<decltype(std::declval<Layer&>().attention.attach_cache(
                                   std::declval<const KvCacheBinding<T, Device>&>()))>> : std::true_type {};

/// KV-cache inference for a model whose blocks support it (see the header comment). The model must
/// outlive the generator and is used by it alone meanwhile (its blocks' attention reads the cache).
template <class Config, class Device, template <class, class> class Block>
class Generator {
 public:
  using Model = LanguageModel<Config, Device, Block>;  ///< the model type it runs
  using T = typename Model::scalar;                    ///< the model's scalar
  static_assert(block_supports_kv_cache<typename Model::Layer, T, Device>::value,
                "Generator needs blocks with a SelfAttention member `attention` (TokenFormerLayer, "
                "TransformerLayer); FIT recomputes instead (generate() does that)");

  /// Allocates the caches of `rows` sequences of at most `capacity` positions on the model's device;
  /// with WeightFormat::int8, also the int8 copies of the weights (see WeightFormat), which every
  /// forward of the model uses until the generator is destroyed.
  Generator(Model& model, index_t rows, index_t capacity, WeightFormat weights = WeightFormat::model) : model_(model) {
    const index_t C = model.hidden_size(), V = model.vocab_size();
    if (weights == WeightFormat::int8 && !(std::is_same<Device, cpu>::value && std::is_same<T, float>::value))
      throw argument_error("int8 weights need a float model on the CPU");
    if (model.has_int8_head())  // its forwards would use the other generator's int8 copies
      throw argument_error("the model is in use by a Generator with int8 weights");
    if (rows <= 0 || capacity <= 0)
      throw argument_error("a generator needs rows >= 1 and capacity >= 1, got " + std::to_string(rows) + " and " +
                           std::to_string(capacity));
    if (capacity > (index_t{1} << 40) / rows / C)
      throw argument_error("KV cache of " + std::to_string(rows) + " x " + std::to_string(capacity) +
                           " positions is too large");
    state_.rows = rows;
    state_.capacity = capacity;
    state_.lengths.assign(static_cast<std::size_t>(rows), 0);
    index_t heads = 1;
    for (auto& layer : model.layers) heads = std::max(heads, layer.attention.num_heads());
    scratch_ = Tensor<T, Device>(Shape{heads * capacity}, model.device());
    caches_.reserve(model.layers.size());
    for (std::size_t l = 0; l < model.layers.size(); ++l) {
      caches_.push_back({Tensor<T, Device>(Shape{rows * capacity, C}, model.device()),
                         Tensor<T, Device>(Shape{rows * capacity, C}, model.device())});
    }
    for (std::size_t l = 0; l < model.layers.size(); ++l)
      model.layers[l].attention.attach_cache(
          KvCacheBinding<T, Device>{caches_[l].keys.data(), caches_[l].values.data(), scratch_.data(), &state_});
    logits_ = Tensor<T, Device>(Shape{rows, V}, model.device());
    host_logits_.assign(static_cast<std::size_t>(rows * V), T(0));
    tokens_.assign(static_cast<std::size_t>(rows), 0);
    if (weights == WeightFormat::int8) {
      try {
        attach_int8();
      } catch (...) {
        for (auto& layer : model.layers) layer.attention.detach_cache();
        throw;
      }
    }
  }
  ~Generator() {
    for (auto& layer : model_.layers) layer.attention.detach_cache();
    detach_int8();
  }
  /// Bytes of the int8 copies (0 without WeightFormat::int8).
  std::size_t int8_bytes() const {
    std::size_t bytes = 0;
    for (const auto& m : int8_) bytes += m.bytes();
    return bytes;
  }
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  index_t rows() const { return state_.rows; }          ///< sequences the cache holds
  index_t capacity() const { return state_.capacity; }  ///< positions per sequence
  /// Positions cached for sequence `row`.
  index_t length(index_t row) const { return state_.lengths.at(static_cast<std::size_t>(row)); }
  /// Forgets every cached position.
  void reset() { std::fill(state_.lengths.begin(), state_.lengths.end(), index_t{0}); }

  /// Appends prompts[r] to sequence r (each non-empty; at most rows() prompts) and returns the logits
  /// of each prompt's last position, [rows, V] row-major (rows without a prompt are not updated).
  /// Prompts of equal length and cached length run as one batch, others one by one.
  const std::vector<T>& prefill(const std::vector<std::vector<std::int32_t>>& prompts) {
    const index_t n = static_cast<index_t>(prompts.size()), V = model_.vocab_size();
    if (n == 0 || n > state_.rows)
      throw argument_error("prefill needs 1 to " + std::to_string(state_.rows) + " prompts, got " + std::to_string(n));
    bool uniform = true;
    for (index_t r = 0; r < n; ++r) {
      const auto& p = prompts[static_cast<std::size_t>(r)];
      if (p.empty()) throw argument_error("prefill: prompt " + std::to_string(r) + " is empty");
      uniform = uniform && p.size() == prompts[0].size() && length(r) == length(0);
    }
    if (uniform) {
      const index_t T_len = static_cast<index_t>(prompts[0].size());
      std::vector<std::int32_t> batch;
      batch.reserve(static_cast<std::size_t>(n * T_len));
      for (const auto& p : prompts) batch.insert(batch.end(), p.begin(), p.end());
      run(batch.data(), 0, n, T_len);
      copy_logits(host_logits_.data(), n * V);
    } else {
      for (index_t r = 0; r < n; ++r) {
        const auto& p = prompts[static_cast<std::size_t>(r)];
        run(p.data(), r, 1, static_cast<index_t>(p.size()));
        copy_logits(host_logits_.data() + r * V, V);
      }
    }
    return host_logits_;
  }

  /// Feeds tokens[r] (one per sequence, rows() of them) at each sequence's next position and returns
  /// the logits there, [rows, V] row-major. Allocates nothing. Throws shape_error for another count.
  const std::vector<T>& step(Span<const std::int32_t> tokens) {
    if (tokens.size() != state_.rows)
      throw shape_error("step needs one token per sequence (" + std::to_string(state_.rows) + "), got " +
                        std::to_string(tokens.size()));
    run(tokens.data(), 0, state_.rows, 1);
    copy_logits(host_logits_.data(), state_.rows * model_.vocab_size());
    return host_logits_;
  }

 private:
  struct LayerCache {
    Tensor<T, Device> keys, values;  // (rows * capacity, C)
  };

  /// The first `count` logits of the last forward (at the start of logits_) into host memory.
  void copy_logits(T* host, index_t count) const {
    device_memory<Device>::copy_to_host(model_.device(), host, logits_.data(),
                                        static_cast<std::size_t>(count) * sizeof(T));
  }

  void run(const std::int32_t* tokens, index_t first_row, index_t B, index_t T_len) {
    for (index_t b = 0; b < B; ++b)
      if (length(first_row + b) + T_len > state_.capacity)
        throw argument_error("KV cache full: sequence " + std::to_string(first_row + b) + " holds " +
                             std::to_string(length(first_row + b)) + " of " + std::to_string(state_.capacity) +
                             " positions and needs " + std::to_string(T_len) + " more");
    state_.first_row = first_row;
    model_.forward_last(TensorView<T, Device>(logits_.data(), Shape{B, model_.vocab_size()}),
                        Span<const std::int32_t>(tokens, B * T_len), B, T_len);
    for (index_t b = 0; b < B; ++b) state_.lengths[static_cast<std::size_t>(first_row + b)] += T_len;
  }

  // Quantizes every Pattention's keys and values and the head, and attaches the copies.
  void attach_int8() {
    if constexpr (std::is_same<Device, cpu>::value && std::is_same<T, float>::value) {
      model_.for_each_pattention([&](const std::string&, PattentionRole, Pattention<T, Device>& p) {
        int8_.push_back(kernels::Q8Matrix::quantize(p.key_tokens().data(), p.tokens(), p.input_features()));
        int8_.push_back(kernels::Q8Matrix::quantize(p.value_tokens().data(), p.tokens(), p.output_features()));
      });
      int8_.push_back(
          kernels::Q8Matrix::quantize(model_.word_embeddings.value.data(), model_.vocab_size(), model_.hidden_size()));
      std::size_t next = 0;
      attached_.reserve((int8_.size() - 1) / 2);  // so that recording an attachment cannot fail
      try {
        model_.for_each_pattention([&](const std::string&, PattentionRole, Pattention<T, Device>& p) {
          p.attach_int8(&int8_[next], &int8_[next + 1]);
          attached_.push_back(&p);
          next += 2;
        });
        model_.attach_int8_head(&int8_.back());
        head_attached_ = true;
      } catch (...) {
        detach_int8();
        throw;
      }
    } else {
      throw argument_error("int8 weights need a float model on the CPU");
    }
  }
  // Detaches what this generator attached (allocates nothing: it runs in the destructor).
  void detach_int8() noexcept {
    for (auto* p : attached_) p->detach_int8();
    attached_.clear();
    if (head_attached_) model_.detach_int8_head();
    head_attached_ = false;
  }

  Model& model_;
  std::vector<kernels::Q8Matrix> int8_;  // key and value tokens of each Pattention in visiting order, then the head
  std::vector<Pattention<T, Device>*> attached_;  // the Pattentions this generator attached int8 copies to
  bool head_attached_ = false;
  KvCacheState state_;
  std::vector<LayerCache> caches_;
  Tensor<T, Device> scratch_;  // (heads * capacity) attention weights of a decode step
  Tensor<T, Device> logits_;   // (rows, V)
  std::vector<T> host_logits_;
  std::vector<std::int32_t> tokens_;
};

/// Called with (sequence, new token) as each token is produced.
using TokenCallback = std::function<void(index_t, std::int32_t)>;

/// generate_batch: continues each prompt (non-empty) by up to `count` sampled tokens and returns the new tokens of
/// each; a sequence stops early after options.stop_token. With a KV cache where the blocks support
/// one (capacity: longest prompt + count), else by recomputing the last max_context tokens.
template <class Config, class Device, template <class, class> class Block>
std::vector<std::vector<std::int32_t>> generate_batch(LanguageModel<Config, Device, Block>& model,
                                                      const std::vector<std::vector<std::int32_t>>& prompts,
                                                      index_t count, Rng& rng, const SamplingOptions& options = {},
                                                      const TokenCallback& on_token = {}) {
  using Model = LanguageModel<Config, Device, Block>;
  using T = typename Model::scalar;
  options.validate();
  if (prompts.empty()) throw argument_error("generate needs at least one prompt");
  for (const auto& p : prompts)
    if (p.empty()) throw argument_error("generate needs a non-empty prompt");
  if (count < 0) throw argument_error("generate: negative token count " + std::to_string(count));
  if (model.config().architecture == Architecture::fit && !model.config().fit.causal)
    throw argument_error("generate needs a decoder: this FIT model is an encoder (causal false) and sees later tokens");
  const index_t rows = static_cast<index_t>(prompts.size()), V = model.vocab_size();
  std::vector<std::vector<std::int32_t>> produced(prompts.size());
  if (count == 0) return produced;
  std::vector<std::pair<double, std::int32_t>> ranked(static_cast<std::size_t>(V));
  std::vector<char> done(prompts.size(), 0);
  std::vector<std::int32_t> next(prompts.size(), 0);
  // Samples each unfinished row's next token from `logits` [rows, V]; returns whether any is left.
  const auto sample_all = [&](const T* logits) {
    bool any = false;
    for (index_t r = 0; r < rows; ++r) {
      if (done[static_cast<std::size_t>(r)]) continue;
      const std::int32_t token = sample_token(Span<const T>(logits + r * V, V), options, rng, ranked);
      next[static_cast<std::size_t>(r)] = token;
      produced[static_cast<std::size_t>(r)].push_back(token);
      if (on_token) on_token(r, token);
      if (token == options.stop_token || static_cast<index_t>(produced[static_cast<std::size_t>(r)].size()) == count)
        done[static_cast<std::size_t>(r)] = 1;
      any = any || !done[static_cast<std::size_t>(r)];
    }
    return any;
  };
  if constexpr (block_supports_kv_cache<typename Model::Layer, T, Device>::value) {
    std::size_t longest = 0;
    for (const auto& p : prompts) longest = std::max(longest, p.size());
    for (auto& p : produced) p.reserve(static_cast<std::size_t>(count));
    Generator<Config, Device, Block> generator(model, rows, static_cast<index_t>(longest) + count, options.weights);
    bool more = sample_all(generator.prefill(prompts).data());
    while (more) more = sample_all(generator.step(next).data());  // finished rows run along, unread
  } else {
    if (options.weights == WeightFormat::int8)
      throw argument_error("int8 weights decode through the KV cache, which this model's blocks do not have");
    std::vector<std::vector<std::int32_t>> context(prompts);
    std::vector<T> all;
    std::vector<T> last(static_cast<std::size_t>(rows * V));
    bool more = true;
    while (more) {
      for (index_t r = 0; r < rows; ++r) {
        if (done[static_cast<std::size_t>(r)]) continue;
        auto& c = context[static_cast<std::size_t>(r)];
        const auto begin = c.size() > static_cast<std::size_t>(options.max_context)
                               ? c.end() - static_cast<std::ptrdiff_t>(options.max_context)
                               : c.begin();
        const std::vector<std::int32_t> window(begin, c.end());
        const auto logits = model.forward(window, 1, static_cast<index_t>(window.size()));
        all.resize(static_cast<std::size_t>(logits.size()));
        logits.copy_to_host(all.data());
        std::copy(all.end() - V, all.end(), last.begin() + r * V);
      }
      more = sample_all(last.data());
      for (index_t r = 0; r < rows; ++r)
        context[static_cast<std::size_t>(r)].push_back(next[static_cast<std::size_t>(r)]);
    }
  }
  return produced;
}

/// Continues `prompt` (non-empty) by up to `count` sampled tokens and returns them: generate_batch
/// of one sequence.
template <class Config, class Device, template <class, class> class Block>
std::vector<std::int32_t> generate(LanguageModel<Config, Device, Block>& model, std::vector<std::int32_t> prompt,
                                   index_t count, Rng& rng, const SamplingOptions& options = {},
                                   const TokenCallback& on_token = {}) {
  if (prompt.empty()) throw argument_error("generate needs a non-empty prompt");
  auto produced =
      generate_batch(model, std::vector<std::vector<std::int32_t>>{std::move(prompt)}, count, rng, options, on_token);
  return std::move(produced[0]);
}

}  // namespace tokenformer

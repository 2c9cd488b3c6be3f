// tokenformer/io/checkpoint.hpp: the one model-aware checkpoint module (namespace io): model weights
// in the official TokenFormer state-dict layout, loading a smaller model's weights for growth, and
// training checkpoints that resume exactly. The formats below it (json.hpp, safetensors.hpp,
// atomic_file.hpp, config_file.hpp) know nothing of models.
//
// The names are those of the official GPT-NeoX pipeline checkpoints, which LanguageModel's
// for_each_parameter already uses: `sequential.0.word_embeddings.weight`,
// `sequential.{i+2}.attention.{query,key,value,proj}.{key,value}_param_tokens`,
// `sequential.{i+2}.mlp.{key,value}_param_tokens`, `sequential.{L+3}.norm.{weight,bias}`.
// Loading requires every tensor to be present with the model's exact shape (file_error names the
// first that is missing or misshaped); saving writes F32 (F64 for double models) atomically.
// load_model checks before it allocates anything: the shapes the config implies
// (for_each_parameter_shape, computed without building the model) against the file's, so a hostile or
// mistaken config (hidden_size 2^31, a million FFN tokens) is a file_error naming the tensor, both
// shapes and the config, never std::bad_alloc; the tensors as stored must fit in the file (tensors of
// a .bin may alias one storage); and LoadOptions bound the parameter bytes (max_bytes), refuse tensors
// the model lacks (allow_unexpected_tensors = false; ignored by default) and check that every loaded
// value is finite (check_finite, off by default; require_finite does it for any model).
// Weights load from safetensors or torch.save checkpoints (pytorch_model.bin), told apart by content
// (io/weights_file.hpp); the functions taking an open file take any reader with that interface
// (SafetensorsReader, TorchCheckpointReader, WeightsFile). A model directory as the Hugging Face hub
// holds it (config.json with model.safetensors or pytorch_model.bin) loads with load_model(dir).
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/fit_config.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/io/weights_file.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/fit_body.hpp"
#include "tokenformer/layers/tokenformer_layer.hpp"
#include "tokenformer/layers/transformer_layer.hpp"
#include "tokenformer/model/language_model.hpp"

namespace tokenformer::io {

/// Name of the embedding tensor in the official layout.
inline const char* embedding_key() { return "sequential.0.word_embeddings.weight"; }

namespace detail {
/// True for the open weights files: SafetensorsReader, TorchCheckpointReader, WeightsFile (anything
/// with info(name) and tensors()).
template <class R, class = void>
struct is_weights_reader : std::false_type {};
template <class R>
struct is_weights_reader<
    R, std::void_t<decltype(std::declval<R&>().info(std::string())), decltype(std::declval<R&>().tensors())>>
    : std::true_type {};
}  // namespace detail

/// Loads every parameter of `model` from `file` (an open weights file of either format).
template <class Config, class Device, template <class, class> class Block, class Reader,
          std::enable_if_t<detail::is_weights_reader<Reader>::value, int> = 0>
void load_weights(LanguageModel<Config, Device, Block>& model, Reader& file) {
  model.for_each_parameter([&](const std::string& name, auto& parameter) { file.read(name, parameter.value); });
}
/// Loads every parameter of `model` from the weights file at `path` (safetensors or torch.save).
template <class Config, class Device, template <class, class> class Block>
void load_weights(LanguageModel<Config, Device, Block>& model, const std::string& path) {
  WeightsFile file(path);
  load_weights(model, file);
}

/// Saves every parameter of `model` to `path` (atomically).
template <class Config, class Device, template <class, class> class Block>
void save_weights(LanguageModel<Config, Device, Block>& model, const std::string& path) {
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  writer.set_metadata("producer", "tokenformer");
  model.for_each_parameter([&](const std::string& name, auto& parameter) { writer.add(name, parameter.value); });
  writer.write(path);
}

/// What load_model checks besides the shapes, which it always compares with the config's before
/// allocating the model (see the header comment).
struct LoadOptions {
  /// The most bytes of parameter values the model may allocate (the element counts of the config's
  /// tensors times sizeof(scalar), summed with overflow-safe arithmetic), checked before allocating.
  /// Default: no bound beyond the file's own size, which the tensors as stored must fit in.
  std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max();
  /// True (the default): tensors of the file that the model does not have are ignored (a training
  /// checkpoint's optimizer moments, buffers other tools save). False: file_error names the first.
  bool allow_unexpected_tensors = true;
  /// After loading, throw numeric_error naming the first tensor holding a NaN or an infinity (see
  /// require_finite). Off by default: it reads every value once more, 6-10% of load_model's time.
  bool check_finite = false;
};

/// The official name and shape of one parameter (an entry of parameter_shapes).
struct ParameterShape {
  std::string name;  ///< official name, as for_each_parameter visits it
  Shape shape;       ///< shape the model allocates
};

/// Visits (official name, shape) of every parameter of a model of `config` built with the library's
/// block of its architecture (TokenFormerLayer, TransformerLayer, FitBody), in for_each_parameter's
/// order, without building the model: what load_model compares a checkpoint with before allocating.
/// The work is proportional to the tensors visited; a visitor may throw to stop early. Requires a
/// valid config (ModelConfig::validate). A test checks it against for_each_parameter of built models
/// of every architecture, so a change to a block's parameters that is not made here too fails.
template <class Visitor>
void for_each_parameter_shape(const ModelConfig& config, Visitor&& visit) {
  const index_t C = config.hidden_size;
  visit(std::string(embedding_key()), Shape{config.vocab_size, C});
  // The Pattention at `path` with `tokens` tokens, `in` input and `out` output features.
  const auto pattention = [&](const std::string& path, index_t tokens, index_t in, index_t out) {
    visit(path + "key_param_tokens", Shape{tokens, in});
    visit(path + "value_param_tokens", Shape{tokens, out});
  };
  // A TokenFormerLayer of width `width`.
  const auto tokenformer_layer = [&](const std::string& prefix, const LayerTokens& tokens, index_t width) {
    for (const char* projection : {"attention.query.", "attention.key.", "attention.value."})
      pattention(prefix + projection, tokens.qkv, width, width);
    pattention(prefix + "attention.proj.", tokens.proj, width, width);
    pattention(prefix + "mlp.", tokens.ffn, width, width);
  };
  if (config.architecture == Architecture::fit) {  // FitBody: latents, then each unit
    const index_t latent = config.fit.latent_size;
    visit(std::string("fit.latents"), Shape{config.fit.max_groups, config.fit.latents_per_group, latent});
    const std::vector<FitUnit> units = parse_fit_layers(config.fit.layers);
    for (std::size_t j = 0; j < units.size(); ++j) {
      const FitUnitKind kind = units[j].kind;
      const std::string prefix = "fit." + std::to_string(j) + "." + to_string(kind) + ".";
      const LayerTokens tokens = config.layer(static_cast<index_t>(j));
      if (kind == FitUnitKind::local || kind == FitUnitKind::global) {
        tokenformer_layer(prefix, tokens, kind == FitUnitKind::local ? C : latent);
      } else {  // CrossAttention: read updates the latents from the tokens, write the reverse
        const index_t width = kind == FitUnitKind::read ? latent : C, source = kind == FitUnitKind::read ? C : latent;
        pattention(prefix + "query.", tokens.qkv, width, width);
        pattention(prefix + "key.", tokens.qkv, source, width);
        pattention(prefix + "value.", tokens.qkv, source, width);
        pattention(prefix + "proj.", tokens.proj, width, width);
      }
    }
    visit(std::string("final_norm.weight"), Shape{C});
    visit(std::string("final_norm.bias"), Shape{C});
    return;
  }
  for (index_t i = 0; i < config.num_layers; ++i) {
    const std::string prefix = "sequential." + std::to_string(i + 2) + ".";
    if (config.architecture != Architecture::transformer) {
      tokenformer_layer(prefix, config.layer(i), C);
      continue;
    }
    const index_t mlp = config.mlp_size();  // TransformerLayer: Linear weights [out, in] and biases [out]
    visit(prefix + "input_layernorm.weight", Shape{C});
    visit(prefix + "input_layernorm.bias", Shape{C});
    for (const char* projection : {"query", "key", "value", "proj"}) {
      visit(prefix + "attention." + projection + ".weight", Shape{C, C});
      visit(prefix + "attention." + projection + ".bias", Shape{C});
    }
    visit(prefix + "post_attention_layernorm.weight", Shape{C});
    visit(prefix + "post_attention_layernorm.bias", Shape{C});
    visit(prefix + "mlp.dense_h_to_4h.weight", Shape{mlp, C});
    visit(prefix + "mlp.dense_h_to_4h.bias", Shape{mlp});
    visit(prefix + "mlp.dense_4h_to_h.weight", Shape{C, mlp});
    visit(prefix + "mlp.dense_4h_to_h.bias", Shape{C});
  }
  const std::string norm = "sequential." + std::to_string(config.num_layers + 3) + ".norm.";
  visit(norm + "weight", Shape{C});
  visit(norm + "bias", Shape{C});
}

/// Every (name, shape) that for_each_parameter_shape visits, in order.
inline std::vector<ParameterShape> parameter_shapes(const ModelConfig& config) {
  std::vector<ParameterShape> shapes;
  for_each_parameter_shape(config, [&](const std::string& name, const Shape& shape) {
    shapes.push_back(ParameterShape{name, shape});
  });
  return shapes;
}

/// Throws numeric_error naming the first parameter of `model` (in for_each_parameter order) that
/// holds a NaN or an infinity, with the index of its first such element and its value:
/// "`source`: tensor 'sequential.3.mlp.value_param_tokens' element 70 (of 4608) is inf". One pass of
/// kernels::first_non_finite over every parameter on the model's device. Measured on a 2-core AMD
/// EPYC, a model of 152 M parameters (608 MB, F32 safetensors): 0.10-0.16 s, against 1.3-1.8 s for
/// its load_model (6-10% more).
template <class Model>
void require_finite(Model& model, const std::string& source = "") {
  model.for_each_parameter([&](const std::string& name, auto& parameter) {
    auto& values = parameter.value;
    const index_t bad = kernels::first_non_finite(values.device(), values.data(), values.size());
    if (bad < 0) return;
    using T = std::remove_const_t<std::remove_pointer_t<decltype(values.data())>>;
    using Device = std::decay_t<decltype(values.device())>;
    T value{};
    device_memory<Device>::copy_to_host(values.device(), &value, values.data() + bad, sizeof(T));
    throw numeric_error((source.empty() ? "" : source + ": ") +
                        detail::non_finite_text(name, bad, values.size(), static_cast<double>(value)));
  });
}

namespace detail {
/// a * b, or the largest uint64 where it would overflow.
inline std::uint64_t saturating_product(std::uint64_t a, std::uint64_t b) {
  return a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a ? std::numeric_limits<std::uint64_t>::max()
                                                                     : a * b;
}
/// a + b, or the largest uint64 where it would overflow.
inline std::uint64_t saturating_sum(std::uint64_t a, std::uint64_t b) {
  return b > std::numeric_limits<std::uint64_t>::max() - a ? std::numeric_limits<std::uint64_t>::max() : a + b;
}

/// True when Block is the library's block of an architecture, whose parameters
/// for_each_parameter_shape lists without building it.
template <template <class, class> class Block, class T, class Device>
constexpr bool is_library_block() {
  return std::is_same<Block<T, Device>, TokenFormerLayer<T, Device>>::value ||
         std::is_same<Block<T, Device>, TransformerLayer<T, Device>>::value ||
         std::is_same<Block<T, Device>, FitBody<T, Device>>::value;
}

/// load_model's checks of an open weights file, before any tensor is read: every (name, shape) that
/// for_each_expected(visit) visits is in the file with that shape (file_error names the first that
/// is missing or misshaped, with both shapes); their bytes as stored fit in the file's `file_bytes`
/// (tensors of a .bin may share storage); the model's bytes (`scalar_bytes` per value) are at most
/// options.max_bytes; and, unless options.allow_unexpected_tensors, the file has no other tensor.
template <class Reader, class ForEachExpected>
void check_checkpoint(const Reader& file, const std::string& config_path, std::uint64_t file_bytes,
                      std::size_t scalar_bytes, const LoadOptions& options, ForEachExpected&& for_each_expected) {
  const std::map<std::string, TensorInfo>& tensors = file.tensors();
  std::set<std::string> expected;  // filled only to name an unexpected tensor; at most the file's names
  std::uint64_t stored = 0, allocated = 0;
  for_each_expected([&](const std::string& name, const Shape& shape) {
    const auto found = tensors.find(name);
    if (found == tensors.end())
      throw file_error(file.path() + ": missing tensor '" + name + "' (" + config_path +
                       " describes a model with it, of shape " + shape.str() + ")");
    const TensorInfo& info = found->second;
    if (info.shape != shape)
      throw file_error(file.path() + ": tensor '" + name + "' has shape " + info.shape.str() + ", but " + config_path +
                       " expects " + shape.str());
    const auto count = static_cast<std::uint64_t>(shape.numel());
    stored = saturating_sum(stored, saturating_product(count, element_size(info.dtype)));
    allocated = saturating_sum(allocated, saturating_product(count, scalar_bytes));
    if (!options.allow_unexpected_tensors) expected.insert(name);
  });
  if (stored > file_bytes)
    throw file_error(file.path() + ": the tensors that " + config_path + " describes take " + std::to_string(stored) +
                     " bytes as stored, more than the file's " + std::to_string(file_bytes) +
                     " bytes (do tensors share their data?)");
  if (allocated > options.max_bytes)
    throw file_error(file.path() + ": the model of " + config_path + " needs " + std::to_string(allocated) +
                     " bytes of parameters, above LoadOptions::max_bytes = " + std::to_string(options.max_bytes));
  if (!options.allow_unexpected_tensors)
    for (const auto& entry : tensors)
      if (expected.count(entry.first) == 0)
        throw file_error(file.path() + ": tensor '" + entry.first + "' is not a parameter of the model that " +
                         config_path + " describes (LoadOptions::allow_unexpected_tensors is false)");
}
}  // namespace detail

/// Reads the config at `config_path` (vocabulary size from the embedding tensor of the weights),
/// checks the weights file against it before allocating (every tensor's shape, the size limits and,
/// if asked, unexpected tensors: see LoadOptions and detail::check_checkpoint), builds the model and
/// loads its weights (safetensors or a torch.save checkpoint); with options.check_finite, refuses a
/// NaN or an infinity (require_finite). A Block other than the library's three is built first, as
/// only it knows its parameters, and checked the same way before any weight is read.
template <class Config = presets::Dynamic<float>, class Device = cpu,
          template <class, class> class Block = TokenFormerLayer,
          std::enable_if_t<!std::is_same<Device, LoadOptions>::value, int> = 0>
LanguageModel<Config, Device, Block> load_model(const std::string& config_path, const std::string& weights_path,
                                                Device device = {}, const LoadOptions& options = {}) {
  using Model = LanguageModel<Config, Device, Block>;
  using T = typename Model::scalar;
  WeightsFile file(weights_path);
  const TensorInfo& embedding = file.info(embedding_key());
  if (embedding.shape.rank() != 2)
    throw file_error(weights_path + ": tensor '" + std::string(embedding_key()) + "' must be 2-D, has shape " +
                     embedding.shape.str());
  const ModelConfig config = read_config(config_path, embedding.shape[0]);
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(weights_path, ec);
  const std::uint64_t file_bytes = ec ? std::numeric_limits<std::uint64_t>::max() : static_cast<std::uint64_t>(size);
  const auto check = [&](auto&& for_each_expected) {
    detail::check_checkpoint(file, config_path, file_bytes, sizeof(T), options, for_each_expected);
  };
  constexpr bool listed = detail::is_library_block<Block, T, Device>();
  if constexpr (listed) {
    // A config the model refuses (another architecture, a static member it contradicts) is left to
    // the constructor's config_error, which comes before any allocation.
    check_matches_static<Config>(config);
    if (config.architecture == block_architecture<typename Model::Layer>::value)
      check([&](auto&& visit) { for_each_parameter_shape(config, visit); });
  }
  Model model(config, device);
  if constexpr (!listed)
    check([&](auto&& visit) {
      model.for_each_parameter([&](const std::string& name, auto& parameter) { visit(name, parameter.shape()); });
    });
  load_weights(model, file);
  if (options.check_finite) require_finite(model, weights_path);
  return model;
}
/// load_model(config_path, weights_path, Device{}, options).
template <class Config = presets::Dynamic<float>, class Device = cpu,
          template <class, class> class Block = TokenFormerLayer>
LanguageModel<Config, Device, Block> load_model(const std::string& config_path, const std::string& weights_path,
                                                const LoadOptions& options) {
  return load_model<Config, Device, Block>(config_path, weights_path, Device{}, options);
}

/// The config and weights files of a model directory as the Hugging Face hub holds it: config.json
/// and model.safetensors (preferred) or pytorch_model.bin. Throws file_error naming the directory
/// when it is not a directory or lacks either file (sharded checkpoints are not supported).
inline std::pair<std::string, std::string> model_directory_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw file_error(dir + " is not a directory (expected a model directory)");
  const auto in_dir = [&](const char* name) { return (fs::path(dir) / name).string(); };
  const auto exists = [&](const std::string& p) { return fs::is_regular_file(p, ec); };
  const std::string config = in_dir("config.json");
  if (!exists(config))
    throw file_error(dir +
                     ": the model directory has no config.json (it needs config.json and model.safetensors "
                     "or pytorch_model.bin)");
  for (const char* weights : {"model.safetensors", "pytorch_model.bin"})
    if (exists(in_dir(weights))) return {config, in_dir(weights)};
  const bool sharded = exists(in_dir("model.safetensors.index.json")) || exists(in_dir("pytorch_model.bin.index.json"));
  throw file_error(dir + ": the model directory has neither model.safetensors nor pytorch_model.bin" +
                   std::string(sharded ? " (sharded checkpoints, *.index.json, are not supported)" : ""));
}

/// Loads the model of a directory holding config.json and model.safetensors or pytorch_model.bin (a
/// Hugging Face hub download); see model_directory_files and load_model(config_path, weights_path).
template <class Config = presets::Dynamic<float>, class Device = cpu,
          template <class, class> class Block = TokenFormerLayer,
          std::enable_if_t<
              !std::is_convertible<Device, std::string>::value && !std::is_same<Device, LoadOptions>::value, int> = 0>
LanguageModel<Config, Device, Block> load_model(const std::string& dir, Device device = {},
                                                const LoadOptions& options = {}) {
  const auto [config, weights] = model_directory_files(dir);
  return load_model<Config, Device, Block>(config, weights, device, options);
}
/// load_model(dir, Device{}, options).
template <class Config = presets::Dynamic<float>, class Device = cpu,
          template <class, class> class Block = TokenFormerLayer>
LanguageModel<Config, Device, Block> load_model(const std::string& dir, const LoadOptions& options) {
  return load_model<Config, Device, Block>(dir, Device{}, options);
}

/// Loads a checkpoint of a smaller model into `model` (the official custom_load_fn_incremental
/// semantics): each parameter-token tensor of the file fills the first rows of the model's (which
/// keeps its own values in the rows after), and every other tensor must match exactly. A mismatch
/// that growth cannot explain (hidden size, layers, vocabulary) raises file_error naming the tensor.
template <class Config, class Device, template <class, class> class Block, class Reader,
          std::enable_if_t<detail::is_weights_reader<Reader>::value, int> = 0>
void load_weights_for_growth(LanguageModel<Config, Device, Block>& model, Reader& file) {
  using T = typename LanguageModel<Config, Device, Block>::scalar;
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
/// load_weights_for_growth from the weights file at `path` (safetensors or torch.save).
template <class Config, class Device, template <class, class> class Block>
void load_weights_for_growth(LanguageModel<Config, Device, Block>& model, const std::string& path) {
  WeightsFile file(path);
  load_weights_for_growth(model, file);
}

// ---- training checkpoints -----------------------------------------------------------------------
//
// Everything needed to resume training exactly, in one safetensors file: the weights under the
// official names (so it also loads as a plain checkpoint), the AdamW moments as
// "optimizer.exp_avg.<name>" and "optimizer.exp_avg_sq.<name>", and in its metadata the training
// step, the optimizer's step count, the data sampler's RNG state and the model config. Written
// atomically (temporary file + rename): a crash while saving leaves the previous checkpoint intact.
// Loading into a model of another shape fails with file_error naming the first tensor that does not
// fit.

/// The non-tensor part of a training checkpoint.
struct TrainingState {
  long step = 0;                            ///< completed training steps
  std::array<std::uint64_t, 4> data_rng{};  ///< state of the batch sampler's Rng
};

namespace detail {
inline std::string rng_to_text(const std::array<std::uint64_t, 4>& s) {
  char buffer[80];
  std::snprintf(buffer, sizeof buffer, "%016llx%016llx%016llx%016llx", static_cast<unsigned long long>(s[0]),
                static_cast<unsigned long long>(s[1]), static_cast<unsigned long long>(s[2]),
                static_cast<unsigned long long>(s[3]));
  return buffer;
}
inline std::array<std::uint64_t, 4> rng_from_text(const std::string& text, const std::string& path) {
  if (text.size() != 64 || text.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw file_error(path + ": malformed RNG state in the metadata");
  std::array<std::uint64_t, 4> s{};
  for (std::size_t i = 0; i < 4; ++i) s[i] = std::stoull(text.substr(i * 16, 16), nullptr, 16);
  return s;
}
inline long metadata_integer(const SafetensorsReader& file, const std::string& key) {
  auto it = file.metadata().find(key);
  if (it == file.metadata().end()) throw file_error(file.path() + ": not a training checkpoint (no " + key + ")");
  std::size_t used = 0;
  long value = 0;
  try {
    value = std::stol(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size() || value < 0) throw file_error(file.path() + ": malformed " + key + " in the metadata");
  return value;
}
}  // namespace detail

/// Saves model weights, AdamW moments and the training state to `path`, atomically.
/// `optimizer` is anything with step_count() (AdamW).
template <class Model, class Optimizer>
void save_training_checkpoint(const std::string& path, Model& model, const Optimizer& optimizer,
                              const TrainingState& state) {
  SafetensorsWriter writer;
  model.for_each_parameter([&](const std::string& name, auto& p) {
    if (!p.training_enabled()) p.enable_training();
    writer.add(name, p.value);
    writer.add("optimizer.exp_avg." + name, p.first_moment);
    writer.add("optimizer.exp_avg_sq." + name, p.second_moment);
  });
  writer.set_metadata("format", "pt");
  writer.set_metadata("tokenformer.step", std::to_string(state.step));
  writer.set_metadata("tokenformer.optimizer_step", std::to_string(optimizer.step_count()));
  writer.set_metadata("tokenformer.data_rng", detail::rng_to_text(state.data_rng));
  writer.set_metadata("tokenformer.config", config_to_json(model.config()));
  writer.write(path);
}

/// Restores what save_training_checkpoint wrote, opened as `file` (from a path or from memory), into
/// `model` (which must have the same shape) and `optimizer` (anything with set_step_count(long), as
/// AdamW); returns the training state. Every tensor's name and shape, and the metadata, are checked
/// before anything is written: a checkpoint that does not fit (file_error naming the tensor) leaves
/// the model and the optimizer as they were.
template <class Model, class Optimizer>
TrainingState load_training_checkpoint(SafetensorsReader& file, Model& model, Optimizer& optimizer) {
  const std::string& path = file.path();
  TrainingState state;
  state.step = detail::metadata_integer(file, "tokenformer.step");
  const long optimizer_step = detail::metadata_integer(file, "tokenformer.optimizer_step");
  auto rng = file.metadata().find("tokenformer.data_rng");
  if (rng == file.metadata().end()) throw file_error(path + ": not a training checkpoint (no tokenformer.data_rng)");
  state.data_rng = detail::rng_from_text(rng->second, path);
  std::size_t expected = 0;
  model.for_each_parameter([&](const std::string& name, auto& p) {
    for (const std::string& key : {name, "optimizer.exp_avg." + name, "optimizer.exp_avg_sq." + name}) {
      if (!file.contains(key))
        throw file_error("cannot resume: the checkpoint does not fit this model: " + path + " has no tensor '" + key +
                         "'");
      if (file.info(key).shape != p.value.shape())
        throw file_error("cannot resume: the checkpoint does not fit this model: " + path + ": tensor '" + key +
                         "' has shape " + file.info(key).shape.str() + ", expected " + p.value.shape().str());
      ++expected;
    }
  });
  if (file.tensors().size() != expected)
    throw file_error("cannot resume: the checkpoint does not fit this model: " + path + " has " +
                     std::to_string(file.tensors().size()) + " tensors, the model and its AdamW moments " +
                     std::to_string(expected));
  model.for_each_parameter([&](const std::string& name, auto& p) {
    p.enable_training();
    file.read(name, p.value);
    file.read("optimizer.exp_avg." + name, p.first_moment);
    file.read("optimizer.exp_avg_sq." + name, p.second_moment);
    p.zero_grad();
  });
  optimizer.set_step_count(optimizer_step);
  return state;
}

/// load_training_checkpoint of the file at `path`.
template <class Model, class Optimizer>
TrainingState load_training_checkpoint(const std::string& path, Model& model, Optimizer& optimizer) {
  SafetensorsReader file(path);
  return load_training_checkpoint(file, model, optimizer);
}

}  // namespace tokenformer::io

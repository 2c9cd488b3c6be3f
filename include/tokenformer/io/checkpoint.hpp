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
// Weights load from safetensors or torch.save checkpoints (pytorch_model.bin), told apart by content
// (io/weights_file.hpp); the functions taking an open file take any reader with that interface
// (SafetensorsReader, TorchCheckpointReader, WeightsFile). A model directory as the Hugging Face hub
// holds it (config.json with model.safetensors or pytorch_model.bin) loads with load_model(dir).
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/io/weights_file.hpp"
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

/// Reads the config at `config_path` (vocabulary size from the embedding tensor of the weights),
/// builds the model and loads its weights (safetensors or a torch.save checkpoint).
template <class Config = presets::Dynamic<float>, class Device = cpu,
          template <class, class> class Block = TokenFormerLayer>
LanguageModel<Config, Device, Block> load_model(const std::string& config_path, const std::string& weights_path,
                                                Device device = {}) {
  WeightsFile file(weights_path);
  const TensorInfo& embedding = file.info(embedding_key());
  if (embedding.shape.rank() != 2)
    throw file_error(weights_path + ": tensor '" + std::string(embedding_key()) + "' must be 2-D, has shape " +
                     embedding.shape.str());
  const ModelConfig config = read_config(config_path, embedding.shape[0]);
  LanguageModel<Config, Device, Block> model(config, device);
  load_weights(model, file);
  return model;
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
          std::enable_if_t<!std::is_convertible<Device, std::string>::value, int> = 0>
LanguageModel<Config, Device, Block> load_model(const std::string& dir, Device device = {}) {
  const auto [config, weights] = model_directory_files(dir);
  return load_model<Config, Device, Block>(config, weights, device);
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

/// Restores what save_training_checkpoint wrote into `model` (which must have the same shape) and
/// `optimizer`; returns the training state.
/// `optimizer` is anything with set_step_count(long) (AdamW).
template <class Model, class Optimizer>
TrainingState load_training_checkpoint(const std::string& path, Model& model, Optimizer& optimizer) {
  SafetensorsReader file(path);
  TrainingState state;
  state.step = detail::metadata_integer(file, "tokenformer.step");
  const long optimizer_step = detail::metadata_integer(file, "tokenformer.optimizer_step");
  auto rng = file.metadata().find("tokenformer.data_rng");
  if (rng == file.metadata().end()) throw file_error(path + ": not a training checkpoint (no tokenformer.data_rng)");
  state.data_rng = detail::rng_from_text(rng->second, path);
  try {
    model.for_each_parameter([&](const std::string& name, auto& p) {
      p.enable_training();
      file.read(name, p.value);
      file.read("optimizer.exp_avg." + name, p.first_moment);
      file.read("optimizer.exp_avg_sq." + name, p.second_moment);
      p.zero_grad();
    });
  } catch (const file_error& e) {
    throw file_error(std::string("cannot resume: the checkpoint does not fit this model: ") + e.what());
  }
  optimizer.set_step_count(optimizer_step);
  return state;
}

}  // namespace tokenformer::io

// tokenformer/train/checkpoint.hpp: everything needed to resume training exactly, in one
// safetensors file.
//
// The file holds the weights under the official names (so it also loads as a plain checkpoint),
// the AdamW moments as "optimizer.exp_avg.<name>" and "optimizer.exp_avg_sq.<name>", and in its
// metadata the training step, the optimizer's step count, the data sampler's RNG state and the model
// config. It is written atomically (temporary file + rename): a crash while saving leaves the
// previous checkpoint intact. Loading into a model of another shape fails with file_error naming the
// first tensor that does not fit.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/train/optimizer.hpp"

namespace tokenformer::io {

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
template <class Model>
void save_training_checkpoint(const std::string& path, Model& model, const AdamW& optimizer,
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
template <class Model>
TrainingState load_training_checkpoint(const std::string& path, Model& model, AdamW& optimizer) {
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

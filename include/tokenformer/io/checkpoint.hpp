// tokenformer/io/checkpoint.hpp: model weights in the official TokenFormer state-dict layout.
//
// The names are those of the official GPT-NeoX pipeline checkpoints, which LanguageModel's
// for_each_parameter already uses: `sequential.0.word_embeddings.weight`,
// `sequential.{i+2}.attention.{query,key,value,proj}.{key,value}_param_tokens`,
// `sequential.{i+2}.mlp.{key,value}_param_tokens`, `sequential.{L+3}.norm.{weight,bias}`.
// Loading requires every tensor to be present with the model's exact shape (file_error names the
// first that is missing or misshaped); saving writes F32 (F64 for double models) atomically.
#pragma once

#include <string>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/model/language_model.hpp"

namespace tokenformer::io {

/// Name of the embedding tensor in the official layout.
inline const char* embedding_key() { return "sequential.0.word_embeddings.weight"; }

/// Loads every parameter of `model` from `file`.
template <class Config, class Device, template <class, class> class Block>
void load_weights(LanguageModel<Config, Device, Block>& model, SafetensorsReader& file) {
  model.for_each_parameter([&](const std::string& name, auto& parameter) { file.read(name, parameter.value); });
}
template <class Config, class Device, template <class, class> class Block>
void load_weights(LanguageModel<Config, Device, Block>& model, const std::string& path) {
  SafetensorsReader file(path);
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
/// builds the model and loads its weights.
template <class Config = presets::Dynamic<float>, class Device = cpu,
          template <class, class> class Block = TokenFormerLayer>
LanguageModel<Config, Device, Block> load_model(const std::string& config_path, const std::string& weights_path,
                                                Device device = {}) {
  SafetensorsReader file(weights_path);
  const TensorInfo& embedding = file.info(embedding_key());
  if (embedding.shape.rank() != 2)
    throw file_error(weights_path + ": tensor '" + std::string(embedding_key()) + "' must be 2-D, has shape " +
                     embedding.shape.str());
  const ModelConfig config = read_config(config_path, embedding.shape[0]);
  LanguageModel<Config, Device, Block> model(config, device);
  load_weights(model, file);
  return model;
}

}  // namespace tokenformer::io

// Checkpoints of the golden models: reload with identical logits, F64 bit for bit, shape mismatches named.
#include "io_test_util.hpp"

using namespace tokenformer;
using namespace io_test;

// ================================================================================================
// Checkpoints
// ================================================================================================

TEST_CASE("save_weights of the golden model reloads into a fresh model with identical logits", "[io][checkpoint]") {
  const std::string gdir = golden_dir() + "/l2_norm_gelu_f32";
  auto model = io::load_model(gdir + "/config.json", gdir + "/model.safetensors");
  CHECK(model.vocab_size() == 128);  // padded: rows of the embedding, not vocab_size 100
  TempDir dir;
  const std::string weights = dir.file("model.safetensors");
  const std::string config = dir.file("config.json");
  io::save_weights(model, weights);
  io::write_config(model.config(), config);
  CHECK(dir.entries() == std::vector<std::string>{"config.json", "model.safetensors"});

  // The saved file: the official names, F32, the model's shapes, and the producer metadata.
  io::SafetensorsReader saved(weights);
  io::SafetensorsReader original(gdir + "/model.safetensors");
  CHECK(saved.metadata().at("format") == "pt");
  CHECK(saved.metadata().at("producer") == "tokenformer");
  REQUIRE(saved.tensors().size() == original.tensors().size());
  for (const auto& [name, info] : original.tensors()) {
    INFO(name);
    REQUIRE(saved.contains(name));
    CHECK(saved.info(name).dtype == io::DType::F32);
    CHECK(saved.info(name).shape == info.shape);
  }

  auto reloaded = io::load_model(config, weights);
  CHECK(reloaded.config() == model.config());
  const auto expected = parameters_of(model);
  const auto actual = parameters_of(reloaded);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO(actual[i].first);
    CHECK(actual[i].first == expected[i].first);
    CHECK(same_bits(actual[i].second, expected[i].second));
  }
  const auto a = logits_of(model);
  const auto b = logits_of(reloaded);
  REQUIRE(a.size() == static_cast<std::size_t>(2 * 8 * 128));
  CHECK(same_bits(a, b));

  // Loading the saved weights into an existing model of the same shape gives the same logits too.
  FloatModel fresh(model.config());
  io::load_weights(fresh, weights);
  CHECK(same_bits(logits_of(fresh), a));
}

TEST_CASE("a double model saves F64 and reloads bit for bit", "[io][checkpoint]") {
  const std::string gdir = golden_dir() + "/softmax_f32";
  auto model = io::load_model<presets::Dynamic<double>>(gdir + "/config.json", gdir + "/model.safetensors");
  TempDir dir;
  io::save_weights(model, dir.file("model.safetensors"));
  io::SafetensorsReader saved(dir.file("model.safetensors"));
  for (const auto& [name, info] : saved.tensors()) {
    INFO(name);
    CHECK(info.dtype == io::DType::F64);
  }
  auto reloaded = io::load_model<presets::Dynamic<double>>(gdir + "/config.json", dir.file("model.safetensors"));
  const auto expected = parameters_of(model);
  const auto actual = parameters_of(reloaded);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) CHECK(same_bits(actual[i].second, expected[i].second));
  CHECK(same_bits(logits_of(model), logits_of(reloaded)));
}

TEST_CASE("loading a checkpoint into a model of another shape names the first mismatched tensor", "[io][checkpoint]") {
  const std::string l2 = golden_dir() + "/l2_norm_gelu_f32";
  const std::string softmax = golden_dir() + "/softmax_f32";
  const std::string gelu = golden_dir() + "/gelu_l2_norm_f32";

  // softmax_f32 weights (C = 48, V = 64) into the l2_norm_gelu_f32 model (C = 64, V = 128).
  FloatModel model(io::read_config(l2 + "/config.json", 128));
  CHECK(message_of<file_error>([&] { io::load_weights(model, softmax + "/model.safetensors"); }) ==
        "file error: " + softmax +
            "/model.safetensors: tensor 'sequential.0.word_embeddings.weight' has shape [64, 48], expected [128, 64]");
  // load_model reads the vocabulary from the embedding: 64 rows cannot hold vocab_size 100.
  CHECK_THAT(message_of<config_error>([&] { io::load_model(l2 + "/config.json", softmax + "/model.safetensors"); }),
             Contains("vocab_size 100 exceeds the 64 rows of the embedding"));

  // The same sizes but fewer FFN tokens: the first parameter tokens that differ are named.
  ModelConfig fewer = io::read_config(l2 + "/config.json", 128);
  fewer.ffn_tokens = 71;
  FloatModel small_ffn(fewer);
  CHECK_THAT(message_of<file_error>([&] { io::load_weights(small_ffn, l2 + "/model.safetensors"); }),
             Contains("tensor 'sequential.2.mlp.key_param_tokens' has shape [72, 64], expected [71, 64]"));

  // More layers than the file (3): the first tensor of the 4th layer is missing.
  ModelConfig deeper = io::read_config(gelu + "/config.json", 77);
  deeper.num_layers = 4;
  FloatModel four_layers(deeper);
  CHECK_THAT(message_of<file_error>([&] { io::load_weights(four_layers, gelu + "/model.safetensors"); }),
             Contains("missing tensor 'sequential.5.attention.query.key_param_tokens'"));
  // Fewer layers: the final norm sits at sequential.{L+3}, which the file does not have.
  ModelConfig shallower = io::read_config(gelu + "/config.json", 77);
  shallower.num_layers = 2;
  FloatModel two_layers(shallower);
  CHECK_THAT(message_of<file_error>([&] { io::load_weights(two_layers, gelu + "/model.safetensors"); }),
             Contains("missing tensor 'sequential.5.norm.weight'"));

  // A weights file without an embedding, or with a 1-D one, cannot make a model.
  TempDir dir;
  const std::vector<float> v(5, 0.0f);
  io::SafetensorsWriter no_embedding;
  no_embedding.add("x", Shape{5}, v.data());
  no_embedding.write(dir.file("a.safetensors"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(l2 + "/config.json", dir.file("a.safetensors")); }),
             Contains("missing tensor 'sequential.0.word_embeddings.weight'"));
  io::SafetensorsWriter flat_embedding;
  flat_embedding.add(io::embedding_key(), Shape{5}, v.data());
  flat_embedding.write(dir.file("b.safetensors"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(l2 + "/config.json", dir.file("b.safetensors")); }),
             Contains("tensor 'sequential.0.word_embeddings.weight' must be 2-D, has shape [5]"));
}

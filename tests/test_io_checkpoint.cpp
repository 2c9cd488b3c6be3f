// Checkpoints of the golden models: reload with identical logits, F64 bit for bit, shape mismatches named.
#include <atomic>

#include "io_test_util.hpp"
#include "tokenformer/layers/fit_body.hpp"
#include "tokenformer/layers/transformer_layer.hpp"

// ---- the largest single allocation while watching: every malloc-family call of the process --------
#include "malloc_hooks.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_io_checkpoint {

using namespace tokenformer;
using namespace io_test;

namespace {
/// Watches the allocations of its lifetime; largest() is the largest single request (in bytes).
class AllocationWatch {
 public:
  AllocationWatch() {
    malloc_hooks::largest_request = 0;
    malloc_hooks::watching = true;
  }
  ~AllocationWatch() { malloc_hooks::watching = false; }
  AllocationWatch(const AllocationWatch&) = delete;
  AllocationWatch& operator=(const AllocationWatch&) = delete;
  std::size_t largest() const { return malloc_hooks::largest_request.load(); }
  static constexpr bool available = malloc_hooks::available;
};
}  // namespace

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

// ================================================================================================
// Loading checks: shapes before allocation, size limits, unexpected tensors, finite values
// ================================================================================================

namespace {
/// (name, shape) of every parameter of a built model, in visiting order.
template <class Model>
std::vector<std::pair<std::string, Shape>> built_shapes(Model& model) {
  std::vector<std::pair<std::string, Shape>> out;
  model.for_each_parameter([&](const std::string& name, auto& p) { out.emplace_back(name, p.shape()); });
  return out;
}
std::vector<std::pair<std::string, Shape>> listed_shapes(const ModelConfig& config) {
  std::vector<std::pair<std::string, Shape>> out;
  for (const io::ParameterShape& p : io::parameter_shapes(config)) out.emplace_back(p.name, p.shape);
  return out;
}
}  // namespace

TEST_CASE("parameter_shapes lists, without building a model, what for_each_parameter visits for every architecture",
          "[io][checkpoint]") {
  ModelConfig tokenformer;
  tokenformer.num_layers = 3;
  tokenformer.hidden_size = 16;
  tokenformer.num_heads = 2;
  tokenformer.vocab_size = 37;
  tokenformer.set_layers({LayerTokens{4, 5, 6, 0, 0, 0}, LayerTokens{7, 5, 9, 4, 0, 6}, LayerTokens{4, 8, 6, 0, 5, 0}});
  FloatModel a(tokenformer);
  CHECK(listed_shapes(tokenformer) == built_shapes(a));
  CHECK(listed_shapes(tokenformer).size() == 1 + 3 * 10 + 2);

  ModelConfig transformer;
  transformer.architecture = Architecture::transformer;
  transformer.num_layers = 2;
  transformer.hidden_size = 16;
  transformer.num_heads = 2;
  transformer.vocab_size = 23;
  transformer.intermediate_size = 40;
  LanguageModel<presets::Dynamic<float>, cpu, TransformerLayer> b(transformer);
  CHECK(listed_shapes(transformer) == built_shapes(b));
  transformer.intermediate_size = 0;  // 4 * hidden_size
  LanguageModel<presets::Dynamic<float>, cpu, TransformerLayer> b4(transformer);
  CHECK(listed_shapes(transformer) == built_shapes(b4));

  for (const char* layers : {"(1)1(1)", "(2)2(1)1(1)"}) {
    INFO(layers);
    ModelConfig fit;
    fit.architecture = Architecture::fit;
    fit.hidden_size = 16;
    fit.num_heads = 2;
    fit.vocab_size = 29;
    fit.fit.layers = layers;
    fit.fit.group_size = 4;
    fit.fit.latents_per_group = 2;
    fit.fit.latent_size = 12;
    fit.fit.latent_heads = 3;
    fit.fit.max_groups = 5;
    fit.num_layers = static_cast<index_t>(parse_fit_layers(layers).size());
    std::vector<LayerTokens> tokens;
    for (index_t j = 0; j < fit.num_layers; ++j) tokens.push_back(LayerTokens{3 + j, 2 + 2 * j, 5 + j, 0, 0, 0});
    fit.set_layers(tokens);
    LanguageModel<presets::Dynamic<float>, cpu, FitBody> c(fit);
    CHECK(listed_shapes(fit) == built_shapes(c));
  }
  // The golden models too.
  FloatModel golden(io::read_config(golden_dir() + "/l2_norm_gelu_f32/config.json", 128));
  CHECK(listed_shapes(golden.config()) == built_shapes(golden));
}

TEST_CASE("load_model compares the checkpoint's shapes with the config before allocating the model",
          "[io][checkpoint][hostile]") {
  const std::string l2 = golden_dir() + "/l2_norm_gelu_f32";
  const std::string weights = l2 + "/model.safetensors";
  TempDir dir;
  const std::string config = dir.file("config.json");
  std::size_t largest = 0;
  const auto load_with = [&](const std::string& key, const io::Json& value) {
    write_bytes(config, golden_config_with(key, value));
    AllocationWatch watch;
    const std::string message = message_of<file_error>([&] { io::load_model(config, weights); });
    largest = watch.largest();
    return message;
  };
  const std::size_t small = std::size_t{1} << 20;  // the golden file is 150 KB; the models below need GBs or TBs

  // hidden_size 2^31: the embedding alone would take 128 x 2^31 floats (1 TiB); std::bad_alloc before.
  CHECK(load_with("hidden_size", io::Json(2147483648.0)) ==
        "file error: " + weights + ": tensor 'sequential.0.word_embeddings.weight' has shape [128, 64], but " + config +
            " expects [128, 2147483648]");
  if (AllocationWatch::available) CHECK(largest < small);
  // 2^20 FFN tokens: 256 MiB per FFN tensor, which the model used to allocate before comparing shapes.
  CHECK(load_with("ffn_slot_num", io::Json(1048576)) ==
        "file error: " + weights + ": tensor 'sequential.2.mlp.key_param_tokens' has shape [72, 64], but " + config +
            " expects [1048576, 64]");
  if (AllocationWatch::available) CHECK(largest < small);
  // 2^31 - 1 layers: the third layer's first tensor is missing (the model used to reserve 2^31 layers).
  CHECK(load_with("num_layers", io::Json(2147483647)) ==
        "file error: " + weights + ": missing tensor 'sequential.4.attention.query.key_param_tokens' (" + config +
            " describes a model with it, of shape [24, 64])");
  if (AllocationWatch::available) CHECK(largest < small);
  if (AllocationWatch::available) {  // the watch sees the model's allocations when it is built
    AllocationWatch watch;
    io::load_model(l2 + "/config.json", weights);
    CHECK(watch.largest() >= 128 * 64 * sizeof(float));
  } else {
    WARN("allocations are not measured in this build (AddressSanitizer)");
  }
  // A config of another architecture names the first tensor it expects and the file lacks... unless its
  // block type is not the model's, which the model's constructor reports first.
  write_bytes(config, golden_config_with("intermediate_size", io::Json(128)));
  CHECK_THAT(message_of<config_error>([&] { io::load_model(config, weights); }), Contains("intermediate_size"));
  CHECK_THAT(message_of<config_error>(
                 [&] { io::load_model<presets::Dynamic<float>, cpu, TransformerLayer>(l2 + "/config.json", weights); }),
             Contains("needs its block type"));
}

TEST_CASE("load_model's limits: the tensors must fit in the file, and LoadOptions::max_bytes", "[io][checkpoint]") {
  const std::string l2 = golden_dir() + "/l2_norm_gelu_f32";
  const std::string config = l2 + "/config.json", weights = l2 + "/model.safetensors";
  const auto bytes = static_cast<std::uint64_t>(io::read_config(config, 128).parameter_count()) * sizeof(float);
  io::LoadOptions limited;
  limited.max_bytes = bytes - 1;
  CHECK(message_of<file_error>([&] { io::load_model(config, weights, limited); }) ==
        "file error: " + weights + ": the model of " + config + " needs " + std::to_string(bytes) +
            " bytes of parameters, above LoadOptions::max_bytes = " + std::to_string(bytes - 1));
  limited.max_bytes = bytes;
  CHECK(io::load_model(config, weights, limited).parameter_count() * 4 == static_cast<index_t>(bytes));
  // A double model needs twice the bytes.
  CHECK_THAT(message_of<file_error>([&] { io::load_model<presets::Dynamic<double>>(config, weights, limited); }),
             Contains("needs " + std::to_string(2 * bytes) + " bytes of parameters"));
  CHECK(io::load_model<presets::Dynamic<double>>(config, weights, cpu{}, io::LoadOptions{}).vocab_size() == 128);
}

TEST_CASE("tensors the model does not have are ignored, or named with allow_unexpected_tensors = false",
          "[io][checkpoint]") {
  const std::string l2 = golden_dir() + "/l2_norm_gelu_f32";
  const std::string config = l2 + "/config.json";
  auto model = io::load_model(config, l2 + "/model.safetensors");
  TempDir dir;
  const std::string extra = dir.file("extra.safetensors");
  const std::vector<float> three{1, 2, 3};
  io::SafetensorsWriter w;
  model.for_each_parameter([&](const std::string& name, Parameter<float>& p) { w.add(name, p.value); });
  w.add("optimizer.step_size", Shape{3}, three.data());
  w.write(extra);
  auto lenient = io::load_model(config, extra);
  CHECK(same_bits(logits_of(lenient), logits_of(model)));
  io::LoadOptions strict;
  strict.allow_unexpected_tensors = false;
  CHECK(message_of<file_error>([&] { io::load_model(config, extra, strict); }) ==
        "file error: " + extra + ": tensor 'optimizer.step_size' is not a parameter of the model that " + config +
            " describes (LoadOptions::allow_unexpected_tensors is false)");
  auto strict_model = io::load_model(config, l2 + "/model.safetensors", strict);
  CHECK(same_bits(logits_of(strict_model), logits_of(model)));
  // The hub-directory form takes the options too.
  std::filesystem::copy_file(config, dir.file("config.json"));
  std::filesystem::copy_file(extra, dir.file("model.safetensors"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(dir.str(), strict); }), Contains("'optimizer.step_size'"));
  CHECK(io::load_model(dir.str()).vocab_size() == 128);
}

TEST_CASE("the opt-in finite check names the first tensor holding NaN or Inf and its first bad element",
          "[io][checkpoint]") {
  const std::string l2 = golden_dir() + "/l2_norm_gelu_f32";
  const std::string config = l2 + "/config.json";
  auto model = io::load_model(config, l2 + "/model.safetensors");
  io::require_finite(model);  // the golden weights are finite
  TempDir dir;
  const std::string path = dir.file("nan.safetensors");
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  Parameter<float>* value_tokens = nullptr;
  model.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
    if (name == "sequential.3.mlp.value_param_tokens") value_tokens = &p;
  });
  REQUIRE(value_tokens != nullptr);
  value_tokens->value.data()[70] = inf;
  value_tokens->value.data()[71] = nan;
  io::save_weights(model, path);

  // Off by default: the values load as they are.
  auto loaded = io::load_model(config, path);
  CHECK(std::isinf(parameters_of(loaded)[parameters_of(loaded).size() - 3].second[70]));
  io::LoadOptions finite;
  finite.check_finite = true;
  CHECK(message_of<numeric_error>([&] { io::load_model(config, path, finite); }) ==
        "numeric error: " + path + ": tensor 'sequential.3.mlp.value_param_tokens' element 70 (of 4608) is inf");
  // NaN in an earlier tensor is named first; require_finite works on any model.
  model.word_embeddings.value.data()[129] = -nan;
  io::save_weights(model, path);
  CHECK(message_of<numeric_error>([&] { io::load_model(config, path, finite); }) ==
        "numeric error: " + path + ": tensor 'sequential.0.word_embeddings.weight' element 129 (of 8192) is nan");
  CHECK(message_of<numeric_error>([&] { io::require_finite(model); }) ==
        "numeric error: tensor 'sequential.0.word_embeddings.weight' element 129 (of 8192) is nan");
  model.word_embeddings.value.data()[129] = -inf;
  CHECK_THAT(message_of<numeric_error>([&] { io::require_finite(model, "after step 3"); }),
             Contains("after step 3: tensor 'sequential.0.word_embeddings.weight' element 129 (of 8192) is -inf"));
}

}  // namespace test_io_checkpoint

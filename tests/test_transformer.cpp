// The plain Transformer baseline (layers/transformer_layer.hpp, layers/linear.hpp): configs, names,
// the Linear layer by hand, logits and gradients against the independent PyTorch reference
// (tests/reference/transformer_reference.py, golden files in tests/reference/golden/transformer_*),
// training, and the CLI. The gradient check is in test_gradcheck_layers.cpp, the comparison with the
// reference device in test_layers.cpp (and test_cuda.cu).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "golden_model.hpp"
#include "io_test_util.hpp"
#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/layers/linear.hpp"
#include "tokenformer/layers/transformer_layer.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/train/optimizer.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_transformer {

using namespace tokenformer;
using io_test::TempDir;

namespace {

template <class T>
using TransformerModel = LanguageModel<presets::Dynamic<T>, cpu, TransformerLayer>;

ModelConfig small_transformer() {
  ModelConfig c;
  c.architecture = Architecture::transformer;
  c.num_layers = 2;
  c.hidden_size = 16;
  c.num_heads = 2;
  c.intermediate_size = 24;
  c.vocab_size = 37;
  c.rotary_pct = 0.5;
  return c;
}

}  // namespace

TEST_CASE("Linear computes x·Wᵀ + b by hand, and its backward", "[transformer][linear]") {
  Linear<double> linear(2, 3);
  const std::vector<double> w{1, 2, 3, 4, 5, 6}, b{0.5, -1, 2};  // W [3, 2]
  linear.weight.value.copy_from_host(w.data());
  linear.bias.value.copy_from_host(b.data());
  Tensor<double> x(Shape{2, 2}), y(Shape{2, 3});
  const std::vector<double> xs{1, -1, 2, 0.5};
  x.copy_from_host(xs.data());
  linear.forward(y, x);
  // row 0: [1-2, 3-4, 5-6] + b; row 1: [2+1, 6+2, 10+3] + b
  CHECK(std::vector<double>(y.data(), y.data() + 6) == std::vector<double>{-0.5, -2, 1, 3.5, 7, 15});
  linear.weight.enable_training();
  linear.bias.enable_training();
  Tensor<double> dy(Shape{2, 3}), dx(Shape{2, 2});
  const std::vector<double> g{1, 0, 0, 0, 1, 1};
  dy.copy_from_host(g.data());
  linear.backward(dx, dy, x);
  CHECK(std::vector<double>(dx.data(), dx.data() + 4) == std::vector<double>{1, 2, 8, 10});  // dy · W
  CHECK(std::vector<double>(linear.bias.grad.data(), linear.bias.grad.data() + 3) == std::vector<double>{1, 1, 1});
  // dW = dyᵀ · x: row 0 = x0, rows 1 and 2 = x1
  CHECK(std::vector<double>(linear.weight.grad.data(), linear.weight.grad.data() + 6) ==
        std::vector<double>{1, -1, 2, 0.5, 2, 0.5});
  CHECK_THROWS_AS(Linear<float>(0, 3), config_error);
  Tensor<double> wrong(Shape{2, 3});
  CHECK_THROWS_AS(linear.forward(y, wrong), shape_error);
}

TEST_CASE("Transformer configs: JSON round trip, intermediate_size, and keys of other architectures refused",
          "[transformer][config]") {
  const ModelConfig c = small_transformer();
  const ModelConfig back = io::parse_config(io::config_to_json(c));
  CHECK(back == c);
  CHECK(back.mlp_size() == 24);
  CHECK(io::config_to_json(c).find("slot_num") == std::string::npos);
  // intermediate_size defaults to 4 · hidden_size
  const std::string base =
      R"({"architecture": "transformer", "num_layers": 2, "hidden_size": 16, "num_attention_heads": 2, )"
      R"("vocab_size": 37)";
  CHECK(io::parse_config(base + "}").mlp_size() == 64);
  ModelConfig unset = c;
  unset.intermediate_size = 0;  // 4 · hidden_size, written as such: the same config after a round trip
  CHECK(io::parse_config(io::config_to_json(unset)) == unset);
  ModelConfig stray = io::parse_config(base + "}");
  stray.architecture = Architecture::tokenformer;
  stray.qkv_tokens = stray.proj_tokens = stray.ffn_tokens = 4;
  stray.intermediate_size = 32;
  CHECK_THROWS_WITH(stray.validate(), Catch::Contains("intermediate_size is a transformer setting"));
  const auto refused = [&](const std::string& extra, const std::string& words) {
    INFO(extra);
    CHECK_THROWS_WITH(io::parse_config(base + ", " + extra + "}"), Catch::Contains(words));
  };
  refused(R"("qkv_slot_num": 4)", "qkv_slot_num is a Pattention key");
  refused(R"("norm_activation_type": "softmax")", "norm_activation_type is a Pattention key");
  refused(R"("intermediate_size": 0)", "intermediate_size must be a positive integer");
  refused(R"("norm": "layernorm_nonparam")", "norm");
  CHECK_THROWS_WITH(io::parse_config(R"({"num_layers": 1, "hidden_size": 8, "num_attention_heads": 2, )"
                                     R"("qkv_slot_num": 2, "proj_slot_num": 2, "ffn_slot_num": 2, "vocab_size": 9, )"
                                     R"("intermediate_size": 32})"),
                    Catch::Contains("intermediate_size is a transformer key"));
  // parameter count = the tensors' sizes
  TransformerModel<float> model(c);
  CHECK(model.parameter_count() == c.parameter_count());
  // a model of another block refuses the config, and the other way round
  CHECK_THROWS_WITH(LanguageModel<presets::Dynamic<float>>(c), Catch::Contains("TransformerLayer for transformer"));
  ModelConfig tf = c;
  tf.architecture = Architecture::tokenformer;
  tf.intermediate_size = 0;
  tf.qkv_tokens = tf.proj_tokens = tf.ffn_tokens = 4;
  CHECK_THROWS_AS(TransformerModel<float>(tf), config_error);
}

TEST_CASE("Transformer parameters have GPT-NeoX's names, in order", "[transformer][names]") {
  TransformerModel<float> model(small_transformer());
  std::vector<std::string> names;
  model.for_each_parameter([&](const std::string& name, Parameter<float>&) { names.push_back(name); });
  REQUIRE(names.size() == 1 + 2 * 16 + 2);
  CHECK(names[0] == "sequential.0.word_embeddings.weight");
  const std::vector<std::string> layer{"input_layernorm.weight",
                                       "input_layernorm.bias",
                                       "attention.query.weight",
                                       "attention.query.bias",
                                       "attention.key.weight",
                                       "attention.key.bias",
                                       "attention.value.weight",
                                       "attention.value.bias",
                                       "attention.proj.weight",
                                       "attention.proj.bias",
                                       "post_attention_layernorm.weight",
                                       "post_attention_layernorm.bias",
                                       "mlp.dense_h_to_4h.weight",
                                       "mlp.dense_h_to_4h.bias",
                                       "mlp.dense_4h_to_h.weight",
                                       "mlp.dense_4h_to_h.bias"};
  for (std::size_t i = 0; i < layer.size(); ++i) {
    CHECK(names[1 + i] == "sequential.2." + layer[i]);
    CHECK(names[17 + i] == "sequential.3." + layer[i]);
  }
  CHECK(names[33] == "sequential.5.norm.weight");
}

TEST_CASE("Transformer initialization: 0.02, the wang std on output layers, zero biases, unit norms",
          "[transformer][init]") {
  ModelConfig c = small_transformer();
  c.hidden_size = 64;
  c.num_heads = 4;
  c.intermediate_size = 256;
  TransformerModel<double> model(c);
  Rng rng(5);
  model.initialize(rng);
  const double wang = 2.0 / 2.0 / std::sqrt(64.0);
  auto& layer = model.layers[1];
  const auto stddev = [](const Parameter<double>& p) {
    double s = 0;
    for (index_t i = 0; i < p.size(); ++i) s += p.value.data()[i] * p.value.data()[i];
    return std::sqrt(s / static_cast<double>(p.size()));
  };
  CHECK(stddev(layer.attention.query.weight) == Approx(0.02).epsilon(0.05));
  CHECK(stddev(layer.mlp_in.weight) == Approx(0.02).epsilon(0.05));
  CHECK(stddev(layer.attention.proj.weight) == Approx(wang).epsilon(0.05));
  CHECK(stddev(layer.mlp_out.weight) == Approx(wang).epsilon(0.05));
  CHECK(stddev(layer.mlp_in.bias) == 0.0);
  CHECK(layer.input_norm_weight.value.data()[7] == 1.0);
  CHECK(layer.post_norm_bias.value.data()[7] == 0.0);
  CHECK(!layer.attention.query.bias.weight_decay);
  CHECK(layer.attention.query.weight.weight_decay);
}

TEST_CASE("Transformer logits and gradients match the independent PyTorch reference", "[transformer][golden]") {
  // transformer_f32: 2 layers, rotary on half of each head; transformer_norope_f32: 1 layer, 3 heads,
  // no rotary (its key biases get exactly zero gradient: softmax cancels them).
  for (const char* name : {"transformer_f32", "transformer_norope_f32"})
    golden_model::check_case<TransformerLayer>(test_util::data_dir() + "/" + std::string(name));
}

TEST_CASE("a Transformer trains, saves and reloads, growth refuses it", "[transformer][training]") {
  ModelConfig c = small_transformer();
  TransformerModel<float> model(c);
  Rng rng(3);
  model.initialize(rng);
  std::vector<std::int32_t> tokens(2 * 12), targets(2 * 12);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((i * 5) % 7);
  for (std::size_t i = 0; i < tokens.size(); ++i) targets[i] = i % 12 == 11 ? -1 : tokens[i + 1];
  AdamW adamw;
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    model.zero_grad();
    last = model.forward_backward(tokens, targets, 2, 12);
    if (step == 0) first = last;
    adamw.step(model, 1e-2);
  }
  CHECK(last < 0.5 * first);
  TempDir dir;
  const std::string d = dir.str();
  io::write_config(model.config(), d + "/config.json");
  io::save_weights(model, d + "/model.safetensors");
  auto loaded =
      io::load_model<presets::Dynamic<float>, cpu, TransformerLayer>(d + "/config.json", d + "/model.safetensors");
  const auto a = model.forward(tokens, 2, 12), b = loaded.forward(tokens, 2, 12);
  CHECK(std::vector<float>(a.data(), a.data() + a.size()) == std::vector<float>(b.data(), b.data() + b.size()));
  GrowthSpec spec;
  spec.ffn = 4;
  CHECK_THROWS_WITH(grow(model, spec), Catch::Contains("nothing to grow"));
}

TEST_CASE("tokenformer-cli reads transformer configs: init, logits, grad, train", "[transformer][cli]") {
#ifdef TOKENFORMER_CLI
  const std::string cli = TOKENFORMER_CLI;
  const std::string golden = test_util::data_dir() + "/transformer_f32";
  TempDir dir;
  const std::string d = dir.str();
  const auto run = [](const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); };
  const auto sequences = test_util::read_sequences(golden + "/tokens.txt");
  std::string ids;
  for (auto t : sequences[0]) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  REQUIRE(run(cli + " logits --config " + golden + "/config.json --weights " + golden + "/model.safetensors --tokens " +
              ids + " --out " + d + "/golden.f32") == 0);
  const auto ours = test_util::read_floats(d + "/golden.f32"), all = test_util::read_floats(golden + "/logits.f32");
  REQUIRE(!ours.empty());
  CHECK(test_util::max_abs_diff(ours, std::vector<float>(all.begin(), all.begin() + static_cast<long>(ours.size()))) <=
        1e-4);
  REQUIRE(run(cli + " grad --config " + golden + "/config.json --weights " + golden + "/model.safetensors --tokens " +
              ids + " --out " + d + "/grads.safetensors") == 0);
  {
    io::SafetensorsReader grads(d + "/grads.safetensors");
    auto model = io::load_model<presets::Dynamic<float>, cpu, TransformerLayer>(golden + "/config.json",
                                                                                golden + "/model.safetensors");
    std::size_t found = 0;
    model.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
      std::vector<float> g(static_cast<std::size_t>(p.size()));
      grads.read(name, p.shape(), g.data());  // throws if missing or of another shape
      ++found;
    });
    CHECK(found == grads.tensors().size());
  }
  REQUIRE(run(cli + " init --config " + golden + "/config.json --out " + d + "/init.safetensors --seed 3") == 0);
  CHECK(run(cli + " grow --config " + golden + "/config.json --weights " + d + "/init.safetensors --out " + d +
            "/grown.safetensors --ffn +3") != 0);
  ModelConfig c = io::read_config(golden + "/config.json");
  c.vocab_size = 257;
  io::write_config(c, d + "/byte.json");
  {
    std::ofstream corpus(d + "/corpus.txt");
    for (int i = 0; i < 400; ++i) corpus << "the quick brown fox " << i << " jumps over the lazy dog.\n";
  }
  CHECK(run(cli + " train --config " + d + "/byte.json --corpus " + d + "/corpus.txt --checkpoint-dir " + d +
            "/run --steps 3 --batch 2 --seq 20 --eval-every 3") == 0);
  CHECK(io::read_config(d + "/run/config.json").architecture == Architecture::transformer);
#else
  WARN("tokenformer-cli is not built; skipped");
#endif
}

}  // namespace test_transformer

// The language model is generic over its block type: a block defined here, in the test file alone
// (a pre-norm block with one Pattention FFN and no attention), trains, grows, saves and reloads
// through the library's unchanged model, growth, checkpoint and copy functions.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/model/copy_parameters.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/train/optimizer.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_generic_model {

using namespace tokenformer;

// (No anonymous namespace here: in a unity build, GCC warns (-Wsubobject-linkage) when the model class
// template of a header holds a block type from one.)

/// out = x + FFN(LN(x)), FFN one Pattention C -> C with the layer's ffn token count.
template <class T, class Device = cpu>
class FfnBlock {
 public:
  FfnBlock(const ModelConfig& config, Device device, index_t layer)
      : ffn(config.hidden_size, config.hidden_size, config.layer(layer).ffn, config.normalization, device),
        device_(device),
        hidden_(config.hidden_size),
        eps_(config.layernorm_epsilon) {
    ffn.pin_scale_tokens(config.layer(layer).ffn_scale);
  }

  Pattention<T, Device> ffn;

  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    ffn.for_each_parameter([&](const std::string& name, Parameter<T, Device>& p) { visit("ffn." + name, p); });
  }
  template <class Visitor>
  void for_each_pattention(Visitor&& visit) {
    visit(std::string("ffn"), PattentionRole::ffn, ffn);
  }

  void forward(TensorView<T, Device> out, TensorView<const T, Device> x, index_t B, index_t T_len, index_t) {
    const index_t M = B * T_len;
    normed_.resize(Shape{M, hidden_});
    mean_.resize(Shape{M});
    rstd_.resize(Shape{M});
    kernels::layer_norm_forward(device_, normed_.data(), mean_.data(), rstd_.data(), x.data(),
                                static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), M, hidden_, eps_);
    kernels::copy(device_, out.data(), x.data(), M * hidden_);
    ffn.forward(out, normed_, /*accumulate=*/true);
  }

  void backward(TensorView<T, Device> d_x, TensorView<const T, Device> d_out, TensorView<const T, Device> x) {
    const index_t M = normed_.rows();
    d_normed_.resize(Shape{M, hidden_});
    ffn.backward(d_normed_, d_out, normed_);
    if (d_x.data() != d_out.data()) kernels::copy(device_, d_x.data(), d_out.data(), M * hidden_);
    kernels::layer_norm_backward(device_, d_x.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                                 d_normed_.data(), x.data(), static_cast<const T*>(nullptr), mean_.data(), rstd_.data(),
                                 M, hidden_, /*accumulate=*/true);
  }

 private:
  Device device_{};
  index_t hidden_ = 0;
  double eps_ = 1e-5;
  Tensor<T, Device> normed_, mean_, rstd_, d_normed_;
};

using ToyModel = LanguageModel<presets::Dynamic<double>, cpu, FfnBlock>;

ModelConfig toy_config() {
  ModelConfig c;
  c.num_layers = 2;
  c.hidden_size = 16;
  c.num_heads = 2;  // unused by the toy block, still validated
  c.qkv_tokens = 6;
  c.proj_tokens = 6;
  c.ffn_tokens = 24;
  c.vocab_size = 20;
  c.normalization = Normalization::l2_norm_gelu;
  return c;
}

std::vector<double> logits_of(ToyModel& model) {
  const std::vector<std::int32_t> tokens{3, 14, 15, 9, 2, 6, 5, 3, 5, 8, 9, 7};
  const auto t = model.forward(tokens, 2, 6);
  return std::vector<double>(t.data(), t.data() + t.size());
}

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("tokenformer_generic_" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST_CASE("a block type defined in a test file trains, grows, saves and reloads", "[model][generic]") {
  ToyModel model(toy_config());
  Rng rng(7);
  model.initialize(rng);

  SECTION("its parameters carry its own names inside the pipeline's") {
    std::vector<std::string> names;
    model.for_each_parameter([&](const std::string& name, Parameter<double>&) { names.push_back(name); });
    CHECK(names == std::vector<std::string>{"sequential.0.word_embeddings.weight", "sequential.2.ffn.key_param_tokens",
                                            "sequential.2.ffn.value_param_tokens", "sequential.3.ffn.key_param_tokens",
                                            "sequential.3.ffn.value_param_tokens", "sequential.5.norm.weight",
                                            "sequential.5.norm.bias"});
  }

  SECTION("it trains: the loss of a repeating sequence falls") {
    std::vector<std::int32_t> tokens(32), targets(32);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = static_cast<std::int32_t>(i % 5);
      targets[i] = static_cast<std::int32_t>((i + 1) % 5);
    }
    AdamW adamw(AdamWOptions{1e-2, 0.9, 0.95, 1e-8, 0.0});
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
      model.zero_grad();
      last = model.forward_backward(tokens, targets, 2, 16);
      if (step == 0) first = last;
      adamw.step(model, 1e-2);
    }
    INFO("loss " << first << " -> " << last);
    CHECK(first > 2.5);       // about log(20) at the start
    CHECK(last < first / 4);  // next token of a period-5 sequence is predictable from the current one
  }

  SECTION("growth of one layer keeps the function, the config records it, and it saves and reloads exactly") {
    const auto before = logits_of(model);
    GrowthSpec spec;
    spec.ffn = 8;
    spec.qkv = 5;  // no block has a qkv Pattention: nothing to grow, nothing fails
    spec.layers = {1};
    spec.pin_scale = true;
    grow(model, spec);
    CHECK(model.layers[0].ffn.tokens() == 24);
    CHECK(model.layers[1].ffn.tokens() == 32);
    CHECK(test_util::max_scaled_diff(logits_of(model), before) <= 1e-12);
    CHECK(model.config().per_layer.size() == 2);
    CHECK(model.config().layer(0).ffn == 24);
    CHECK(model.config().layer(1).ffn == 32);
    CHECK(model.config().layer(1).ffn_scale == 24);
    CHECK(model.config().layer(1).qkv == 6);  // a role the block lacks keeps the config's value

    TempDir dir;
    const std::string config_path = (dir.path / "config.json").string(),
                      weights_path = (dir.path / "model.safetensors").string();
    io::write_config(model.config(), config_path);
    io::save_weights(model, weights_path);
    auto loaded = io::load_model<presets::Dynamic<double>, cpu, FfnBlock>(config_path, weights_path);
    CHECK(loaded.layers[1].ffn.tokens() == 32);
    CHECK(loaded.layers[1].ffn.pinned_scale_tokens() == 24);
    CHECK(logits_of(loaded) == logits_of(model));  // bit-identical

    ToyModel copy(model.config());
    copy_parameters(copy, model);
    CHECK(logits_of(copy) == logits_of(model));
  }
}

}  // namespace test_generic_model

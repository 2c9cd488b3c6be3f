// Growth in place: function preservation, no moves within capacity, gradients and moments grow,
// frozen old tokens, growth from a smaller checkpoint, and the errors growth cannot explain.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include <unistd.h>

#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/train/trainer.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_growth {

using namespace tokenformer;

namespace {

using Model = LanguageModel<presets::Dynamic<float>>;
using DoubleModel = LanguageModel<presets::Dynamic<double>>;

ModelConfig small_config(Normalization kind = Normalization::l2_norm_gelu) {
  ModelConfig c;
  c.num_layers = 2;
  c.hidden_size = 32;
  c.num_heads = 4;
  c.qkv_tokens = 12;
  c.proj_tokens = 10;
  c.ffn_tokens = 40;
  c.vocab_size = 50;
  c.rotary_pct = 0.5;
  c.normalization = kind;
  return c;
}

/// A model with weights large enough that every normalization is far from trivial.
template <class M = Model>
M random_model(const ModelConfig& config, std::uint64_t seed) {
  using T = typename M::scalar;
  M model(config);
  Rng rng(seed);
  model.for_each_parameter([&](const std::string&, Parameter<T>& p) {
    std::vector<T> v(static_cast<std::size_t>(p.size()));
    for (auto& x : v) x = static_cast<T>(rng.normal(0.0, 0.3));
    p.value.copy_from_host(v.data());
  });
  return model;
}

template <class M>
std::vector<typename M::scalar> logits_of(M& model) {
  const std::vector<std::int32_t> tokens{3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 3};
  const auto t = model.forward(tokens, 2, 6);
  return std::vector<typename M::scalar>(t.data(), t.data() + t.size());
}

/// The Pattentions of a model's layers with the role each plays, for tests that check every role.
template <class M, class Visitor>
void each_role(M& model, Visitor&& visit) {
  for (std::size_t i = 0; i < model.layers.size(); ++i) {
    auto& layer = model.layers[i];
    visit("layer " + std::to_string(i) + " query", "qkv", layer.attention.query);
    visit("layer " + std::to_string(i) + " key", "qkv", layer.attention.key);
    visit("layer " + std::to_string(i) + " value", "qkv", layer.attention.value);
    visit("layer " + std::to_string(i) + " proj", "proj", layer.attention.proj);
    visit("layer " + std::to_string(i) + " ffn", "ffn", layer.ffn);
  }
}

/// Σ|x| over rows [from, rows) of a [rows, cols] tensor.
template <class T>
double abs_sum_of_rows(const Tensor<T>& t, index_t from) {
  double sum = 0;
  for (index_t i = from * t.dim(1); i < t.size(); ++i) sum += std::fabs(static_cast<double>(t[i]));
  return sum;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("tokenformer_growth_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

}  // namespace

TEST_CASE("zero-initialized growth with a pinned scale preserves the model's function", "[growth]") {
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm}) {
    INFO(to_string(kind));
    Model model = random_model(small_config(kind), 1);
    const auto before = logits_of(model);
    GrowthSpec spec;
    spec.qkv = 12;
    spec.proj = 30;
    spec.ffn = 120;
    spec.init = TokenInit::zero;
    spec.pin_scale = true;
    grow(model, spec);
    CHECK(model.layers[1].ffn.tokens() == 160);
    CHECK(model.config().ffn_tokens == 160);
    CHECK(model.config().ffn_scale_tokens == 40);
    CHECK(test_util::max_abs_diff(logits_of(model), before) <= 1e-6);

    // The official √n semantics (no pinning) change the function.
    Model unpinned = random_model(small_config(kind), 1);
    spec.pin_scale = false;
    grow(unpinned, spec);
    CHECK(test_util::max_abs_diff(logits_of(unpinned), before) > 1e-3);
  }
}

TEST_CASE("softmax growth is function-preserving only in the limit: zero keys still get weight", "[growth]") {
  // exp(0) = 1 > 0, so zero tokens take probability mass under softmax; the values being zero
  // removes their contribution but the normalization of the old tokens changes. Document it.
  Model model = random_model(small_config(Normalization::softmax), 2);
  const auto before = logits_of(model);
  GrowthSpec spec;
  spec.ffn = 40;
  spec.init = TokenInit::zero;
  spec.pin_scale = true;
  grow(model, spec);
  CHECK(test_util::max_abs_diff(logits_of(model), before) > 1e-4);
}

TEST_CASE("growing within capacity moves no token, past capacity the storage at least doubles", "[growth]") {
  Pattention<float> p(8, 6, 10, Normalization::l2_norm_gelu);
  Rng rng(3);
  p.initialize(rng, 0.5, 0.5);
  p.key_parameter().enable_training();
  p.value_parameter().enable_training();
  p.key_parameter().reserve_rows(64);
  p.value_parameter().reserve_rows(64);
  const float* keys = p.key_tokens().data();
  const float* values = p.value_tokens().data();
  const float* key_moments = p.key_parameter().first_moment.data();
  const std::vector<float> old_keys(keys, keys + 80);
  for (int i = 0; i < 9; ++i) p.append_tokens(6);  // 10 -> 64 tokens, all within capacity
  CHECK(p.tokens() == 64);
  CHECK(p.key_tokens().data() == keys);
  CHECK(p.value_tokens().data() == values);
  CHECK(p.key_parameter().first_moment.data() == key_moments);
  CHECK(std::vector<float>(p.key_tokens().data(), p.key_tokens().data() + 80) == old_keys);
  p.append_tokens(1);  // past capacity: moves once, and reserves at least twice as much
  CHECK(p.key_tokens().capacity() >= 2 * 64 * 8);
  CHECK(std::vector<float>(p.key_tokens().data(), p.key_tokens().data() + 80) == old_keys);
  const float* moved = p.key_tokens().data();
  p.append_tokens(50);
  CHECK(p.key_tokens().data() == moved);
}

TEST_CASE("gradients and AdamW moments grow with their parameters, new moments start at zero", "[growth]") {
  Model model = random_model(small_config(), 4);
  model.enable_training();
  auto& ffn_keys = model.layers[0].ffn.key_parameter();
  for (index_t i = 0; i < ffn_keys.size(); ++i) {
    ffn_keys.first_moment[i] = 1.0f + static_cast<float>(i);
    ffn_keys.second_moment[i] = 2.0f;
  }
  const index_t old_size = ffn_keys.size();
  GrowthSpec spec;
  spec.ffn = 8;
  spec.init = TokenInit::random;
  spec.seed = 5;
  grow(model, spec);
  CHECK(ffn_keys.grad.shape() == ffn_keys.shape());
  CHECK(ffn_keys.first_moment.shape() == (Shape{48, 32}));
  for (index_t i = 0; i < old_size; ++i) REQUIRE(ffn_keys.first_moment[i] == 1.0f + static_cast<float>(i));
  for (index_t i = old_size; i < ffn_keys.size(); ++i) {
    REQUIRE(ffn_keys.first_moment[i] == 0.0f);
    REQUIRE(ffn_keys.second_moment[i] == 0.0f);
  }
  // Random keys ~ N(0, 0.02): small but not zero.
  double sum2 = 0;
  for (index_t i = old_size; i < ffn_keys.size(); ++i) sum2 += ffn_keys.value[i] * ffn_keys.value[i];
  CHECK(std::sqrt(sum2 / static_cast<double>(ffn_keys.size() - old_size)) == Approx(0.02).epsilon(0.25));
  // Training continues: one step over the grown model works and keeps every shape.
  const std::vector<std::int32_t> tokens{1, 2, 3, 4}, targets{2, 3, 4, 5};
  model.zero_grad();
  CHECK(std::isfinite(model.forward_backward(tokens, targets, 1, 4)));
  AdamW adamw;
  adamw.set_step_count(7);
  adamw.step(model, 1e-3);
  CHECK(adamw.step_count() == 8);
}

TEST_CASE("frozen old tokens stay bit-identical while the new ones train", "[growth][freeze]") {
  const std::string corpus_path = temp_path("corpus.txt");
  {
    std::ofstream out(corpus_path);
    for (int i = 0; i < 200; ++i) out << "parameter tokens grow in place " << i << "\n";
  }
  TextCorpus corpus({corpus_path});
  ModelConfig config = small_config();
  config.vocab_size = 257;
  Model model(config);
  Rng rng(6);
  model.initialize(rng);
  GrowthSpec spec;
  spec.qkv = 4;
  spec.proj = 4;
  spec.ffn = 16;
  spec.init = TokenInit::random;
  spec.freeze_old = true;
  grow(model, spec);
  auto& keys = model.layers[1].ffn.key_parameter();
  const std::vector<float> old_rows(keys.value.data(), keys.value.data() + 40 * 32);
  const std::vector<float> new_rows(keys.value.data() + 40 * 32, keys.value.data() + keys.size());
  TrainerOptions options;
  options.batch_size = 2;
  options.sequence_length = 16;
  options.steps = 4;
  options.warmup_steps = 1;
  options.adamw.lr = 1e-2;
  options.eval_every = 0;
  options.eval_batches = 1;
  Trainer<Model> trainer(model, corpus, options);
  while (!trainer.done()) trainer.train_step();
  CHECK(std::vector<float>(keys.value.data(), keys.value.data() + 40 * 32) == old_rows);
  CHECK(std::vector<float>(keys.value.data() + 40 * 32, keys.value.data() + keys.size()) != new_rows);
  std::remove(corpus_path.c_str());
}

TEST_CASE("a smaller checkpoint loads into a larger configuration, other mismatches are errors", "[growth][io]") {
  const std::string path = temp_path("small.safetensors");
  Model small = random_model(small_config(), 7);
  io::save_weights(small, path);
  ModelConfig larger = small_config();
  larger.qkv_tokens = 20;
  larger.ffn_tokens = 64;
  Model big(larger);
  io::SafetensorsReader file(path);
  io::load_weights_for_growth(big, file);
  const auto& small_keys = small.layers[0].ffn.key_tokens();
  const auto& big_keys = big.layers[0].ffn.key_tokens();
  for (index_t i = 0; i < small_keys.size(); ++i) REQUIRE(big_keys[i] == small_keys[i]);
  for (index_t i = small_keys.size(); i < big_keys.size(); ++i) REQUIRE(big_keys[i] == 0.0f);

  ModelConfig wider = small_config();
  wider.hidden_size = 48;
  wider.num_heads = 4;
  Model other(wider);
  CHECK_THROWS_WITH(
      io::load_weights_for_growth(other, file),
      Catch::Contains("'sequential.0.word_embeddings.weight' has shape [50, 32], the model has [50, 48]"));
  ModelConfig deeper = small_config();
  deeper.num_layers = 3;
  Model deep(deeper);
  CHECK_THROWS_WITH(io::load_weights_for_growth(deep, file), Catch::Contains("missing tensor 'sequential.4."));
  ModelConfig smaller = small_config();
  smaller.ffn_tokens = 20;
  Model shrunk(smaller);
  CHECK_THROWS_WITH(io::load_weights_for_growth(shrunk, file), Catch::Contains("only the token count may grow"));
  std::remove(path.c_str());
}

TEST_CASE("a grown model with a pinned scale saves and reloads with the same function", "[growth][io]") {
  const std::string weights = temp_path("grown.safetensors"), config_path = temp_path("grown.json");
  Model model = random_model(small_config(), 8);
  GrowthSpec spec;
  spec.qkv = 4;
  spec.proj = 2;
  spec.ffn = 24;
  spec.pin_scale = true;
  grow(model, spec);
  const auto before = logits_of(model);
  io::save_weights(model, weights);
  io::write_config(model.config(), config_path);
  auto reloaded = io::load_model(config_path, weights);
  CHECK(reloaded.config() == model.config());
  CHECK(logits_of(reloaded) == before);
  std::remove(weights.c_str());
  std::remove(config_path.c_str());
}

TEST_CASE("growth rejects bad requests", "[growth]") {
  Model model = random_model(small_config(), 9);
  GrowthSpec spec;
  spec.ffn = 4;
  spec.layers = {0, 5};
  CHECK_THROWS_WITH(grow(model, spec), Catch::Contains("cannot grow layer 5: the model has 2"));
  spec.layers = {};
  spec.ffn = -1;
  CHECK_THROWS_AS(grow(model, spec), argument_error);
  CHECK_THROWS_WITH(parse_token_init("ones"), Catch::Contains("unknown token initialization 'ones'"));
}

#ifdef TOKENFORMER_CLI
TEST_CASE("tokenformer-cli grow writes a grown checkpoint and config that compute the same logits", "[growth][cli]") {
  const std::string dir = test_util::data_dir() + "/l2_norm_gelu_f32";
  const std::string out = temp_path("cli_grown.safetensors"), out_config = temp_path("cli_grown.json");
  const std::string grow_command = std::string(TOKENFORMER_CLI) + " grow --weights " + dir +
                                   "/model.safetensors --config " + dir + "/config.json --out " + out;
  for (const std::string init : {"--init zero", "--init zero_keys --value-std 0.05", ""}) {
    INFO("tokenformer-cli grow " << init);
    const std::string command = grow_command + " --qkv +8 --proj +4 --ffn +72 --pin-scale " + init + " 2>/dev/null";
    REQUIRE(std::system(command.c_str()) == 0);
    // Both run in float64: the float32 weights are exact in double, so the only difference left is
    // double rounding of sums in another order (the zero scores add exact zeros), ~1e-15 relative,
    // while any growth error shows at 1e-3 or more. (In float32 the same reordering reaches a few
    // ulps of the largest logit, |18|, and depends on the machine's GEMM blocking.)
    auto original = io::load_model<presets::Dynamic<double>>(dir + "/config.json", dir + "/model.safetensors");
    auto grown = io::load_model<presets::Dynamic<double>>(out_config, out);
    CHECK(grown.config().ffn_tokens == 144);
    CHECK(grown.config().qkv_tokens == 32);
    const auto& ffn = grown.layers[0].ffn;
    CHECK(abs_sum_of_rows(ffn.key_tokens(), 72) == 0.0);
    // zero leaves the new values zero; zero_keys (also the default) draws them.
    CHECK((abs_sum_of_rows(ffn.value_tokens(), 72) == 0.0) == (init == "--init zero"));
    const std::vector<std::int32_t> tokens{90, 7, 31, 73, 10, 73, 44};
    const auto a = original.forward(tokens, 1, 7), b = grown.forward(tokens, 1, 7);
    double diff = 0, scale = 0;
    for (index_t i = 0; i < a.size(); ++i) {
      diff = std::max(diff, std::fabs(a[i] - b[i]));
      scale = std::max(scale, std::fabs(a[i]));
    }
    CHECK(scale > 1.0);
    CHECK(diff <= 1e-12 * scale);
  }
  {  // --layers: one layer grows, the config gets per-layer lists, and the function is kept
    const std::string command = grow_command + " --ffn +16 --pin-scale --layers 1 2>/dev/null";
    REQUIRE(std::system(command.c_str()) == 0);
    auto original = io::load_model<presets::Dynamic<double>>(dir + "/config.json", dir + "/model.safetensors");
    auto grown = io::load_model<presets::Dynamic<double>>(out_config, out);
    CHECK(grown.layers[1].ffn.tokens() == grown.layers[0].ffn.tokens() + 16);
    CHECK(!grown.config().per_layer.empty());
    const std::vector<std::int32_t> tokens{90, 7, 31, 73, 10, 73, 44};
    const auto a = original.forward(tokens, 1, 7), b = grown.forward(tokens, 1, 7);
    CHECK(test_util::max_abs_diff(std::vector<double>(a.data(), a.data() + a.size()),
                                  std::vector<double>(b.data(), b.data() + b.size())) <= 1e-11);
  }
  for (const std::string bad :
       {"--ffn -3", "--ffn 3 --value-std nan", "--ffn 3 --value-std -1", "--ffn 3 --value-std x",
        "--ffn 3 --init zero_key", "--ffn 3 --layers 1,x", "--ffn 3 --layers 99"}) {
    INFO("tokenformer-cli grow " << bad);
    CHECK(std::system((grow_command + " " + bad + " 2>/dev/null").c_str()) != 0);
  }
  std::remove(out.c_str());
  std::remove(out_config.c_str());
}
#endif

TEST_CASE("under l2_norm_gelu, zero-initialized tokens get exactly zero gradient, random_keys tokens train",
          "[growth]") {
  for (auto init : {TokenInit::zero, TokenInit::random_keys}) {
    Model model = random_model(small_config(), 10);
    GrowthSpec spec;
    spec.ffn = 8;
    spec.init = init;
    spec.pin_scale = true;
    spec.seed = 3;
    grow(model, spec);
    model.enable_training();
    model.zero_grad();
    const std::vector<std::int32_t> tokens{1, 2, 3, 4, 5, 6}, targets{2, 3, 4, 5, 6, 7};
    model.forward_backward(tokens, targets, 1, 6);
    const auto& values = model.layers[0].ffn.value_parameter();
    double new_gradient = 0;
    for (index_t i = 40 * 32; i < values.size(); ++i) new_gradient += std::fabs(values.grad[i]);
    if (init == TokenInit::zero)
      CHECK(new_gradient == 0.0);
    else
      CHECK(new_gradient > 0.0);
  }
}

// ---- zero_keys: exact growth that trains ----------------------------------------------------------

TEST_CASE("zero_keys growth with a pinned scale preserves the model's function on every Pattention role",
          "[growth][zero_keys]") {
  // Each new score is exactly 0, Θ(0) = 0, and a zero score adds nothing to a row's norm: the same
  // function. The outputs are not always the same bits: Eigen's GEMM picks its kernel path (and so
  // the grouping of the old products) by matrix shape, and the compiler contracts a*b+c into FMAs
  // differently in vector and scalar code, so they agree to the rounding of another summation order
  // (measured up to 2e-15 here; random_keys and an unpinned scale change them by > 1e-4 and 1e-6).
  struct Case {
    const char* name;
    index_t qkv, proj, ffn;
  };
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm})
    for (const Case c : {Case{"qkv", 20, 0, 0}, Case{"proj", 0, 33, 0}, Case{"ffn", 0, 0, 64}, Case{"all", 5, 7, 100}})
      for (bool freeze_old : {false, true}) {
        INFO(to_string(kind) << ", growing " << c.name << (freeze_old ? ", old tokens frozen" : ""));
        auto model = random_model<DoubleModel>(small_config(kind), 11);
        const auto before = logits_of(model);
        GrowthSpec spec;
        spec.qkv = c.qkv;
        spec.proj = c.proj;
        spec.ffn = c.ffn;
        spec.init = TokenInit::zero_keys;
        spec.value_std = 0.02;
        spec.pin_scale = true;
        spec.freeze_old = freeze_old;
        spec.seed = 12;
        grow(model, spec);
        CHECK(model.layers[0].ffn.tokens() == 40 + c.ffn);
        CHECK(test_util::max_abs_diff(logits_of(model), before) <= 1e-13);  // logits are O(1): ~100 ulps
        // The new values are drawn (N(0, 0.02)), the new keys are exactly zero.
        each_role(model, [&](const std::string& where, const std::string& role, Pattention<double>& p) {
          const index_t added = role == "qkv" ? c.qkv : role == "proj" ? c.proj : c.ffn;
          if (added == 0) return;
          INFO(where);
          const index_t old = p.tokens() - added;
          CHECK(abs_sum_of_rows(p.key_tokens(), old) == 0.0);
          const double mean_abs =
              abs_sum_of_rows(p.value_tokens(), old) / static_cast<double>(added * p.output_features());
          CHECK(mean_abs == Approx(0.02 * std::sqrt(2 / M_PI)).epsilon(0.3));  // E|N(0, σ)| = σ·√(2/π)
        });
        // Without the pinned scale the function changes (√n grows), so the test above can fail.
        auto unpinned = random_model<DoubleModel>(small_config(kind), 11);
        spec.pin_scale = false;
        grow(unpinned, spec);
        CHECK(test_util::max_abs_diff(logits_of(unpinned), before) > 1e-6);
      }
}

TEST_CASE("zero_keys tokens get gradient on their keys at once, also with the old tokens frozen",
          "[growth][zero_keys]") {
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm})
    for (bool freeze_old : {false, true}) {
      INFO(to_string(kind) << (freeze_old ? ", old tokens frozen" : ""));
      auto model = random_model<DoubleModel>(small_config(kind), 13);
      GrowthSpec spec;
      spec.qkv = 6;
      spec.proj = 6;
      spec.ffn = 24;
      spec.init = TokenInit::zero_keys;
      spec.pin_scale = true;
      spec.freeze_old = freeze_old;
      grow(model, spec);
      model.enable_training();
      model.zero_grad();
      const std::vector<std::int32_t> tokens{1, 2, 3, 4, 5, 6, 7, 8}, targets{2, 3, 4, 5, 6, 7, 8, 9};
      model.forward_backward(tokens, targets, 2, 4);
      each_role(model, [&](const std::string& where, const std::string& role, Pattention<double>& p) {
        INFO(where);
        const index_t old = p.tokens() - (role == "qkv" ? 6 : role == "proj" ? 6 : 24);
        CHECK(abs_sum_of_rows(p.key_parameter().grad, old) > 0.0);
        // Θ(0) = 0: the new values get no gradient until their keys have moved.
        CHECK(abs_sum_of_rows(p.value_parameter().grad, old) == 0.0);
      });
      // One AdamW step moves the new keys (and, under freeze_old, only them); then the new values train too.
      auto& ffn = model.layers[1].ffn.key_parameter();
      const std::vector<double> old_rows(ffn.value.data(), ffn.value.data() + 40 * 32);
      AdamW adamw;
      adamw.step(model, 1e-2);
      CHECK(abs_sum_of_rows(ffn.value, 40) > 0.0);
      CHECK((std::vector<double>(ffn.value.data(), ffn.value.data() + 40 * 32) == old_rows) == freeze_old);
      model.zero_grad();
      model.forward_backward(tokens, targets, 2, 4);
      CHECK(abs_sum_of_rows(model.layers[1].ffn.value_parameter().grad, 40) > 0.0);
    }
}

TEST_CASE("random_keys growth is not function-preserving: new scores enter each row's norm", "[growth][zero_keys]") {
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm}) {
    INFO(to_string(kind));
    auto model = random_model<DoubleModel>(small_config(kind), 14);
    const auto before = logits_of(model);
    GrowthSpec spec;
    spec.ffn = 64;
    spec.init = TokenInit::random_keys;
    spec.pin_scale = true;
    grow(model, spec);
    CHECK(abs_sum_of_rows(model.layers[0].ffn.value_tokens(), 40) == 0.0);  // zero values ...
    CHECK(test_util::max_abs_diff(logits_of(model), before) > 1e-4);        // ... and still a change
    auto other = random_model<DoubleModel>(small_config(kind), 14);
    spec.init = TokenInit::random;
    grow(other, spec);
    CHECK(test_util::max_abs_diff(logits_of(other), before) > 1e-4);
  }
}

TEST_CASE("under softmax, zero growth scales each output row by Z/(Z + m), so nothing preserves it",
          "[growth][zero_keys]") {
  // Θ = exp(s)/Σexp(s)·n: m new tokens with zero keys add m·e⁰ = m to every row's sum Z, so with
  // zero values each output row shrinks by Z/(Z + m). No init keeps it (exp(s) > 0 for any key).
  const index_t din = 8, dout = 5, P = 12, m = 7, M = 6;
  {
    Pattention<double> p(din, dout, P, Normalization::softmax);
    Rng rng(15);
    p.initialize(rng, 0.5, 0.5);
    p.pin_scale_tokens(P);
    Tensor<double> x(Shape{M, din}), before(Shape{M, dout}), after(Shape{M, dout});
    for (index_t i = 0; i < x.size(); ++i) x[i] = rng.normal(0.0, 1.0);
    p.forward(before, x);
    GrowthSpec spec;
    spec.init = TokenInit::zero;
    grow(p, m, spec, rng, 0.0);
    CHECK(abs_sum_of_rows(p.key_tokens(), P) == 0.0);
    p.forward(after, x);
    double worst = 0, largest_change = 0;
    for (index_t r = 0; r < M; ++r) {
      double z = 0;
      for (index_t t = 0; t < P; ++t) {
        double s = 0;
        for (index_t k = 0; k < din; ++k) s += x[r * din + k] * p.key_tokens()[t * din + k];
        z += std::exp(s);
      }
      for (index_t c = 0; c < dout; ++c) {
        const double expected = before[r * dout + c] * z / (z + static_cast<double>(m));
        worst = std::max(worst, std::fabs(after[r * dout + c] - expected));
        largest_change = std::max(largest_change, std::fabs(after[r * dout + c] - before[r * dout + c]));
      }
    }
    CHECK(worst <= 1e-12);
    CHECK(largest_change > 1e-3);
  }
}

TEST_CASE("growth options are checked before anything grows", "[growth][zero_keys]") {
  Model model = random_model(small_config(), 16);
  for (auto init : {TokenInit::zero_keys, TokenInit::zero, TokenInit::random, TokenInit::random_keys})
    CHECK(parse_token_init(to_string(init)) == init);
  CHECK(GrowthSpec{}.init == TokenInit::zero_keys);
  CHECK_THROWS_WITH(parse_token_init("zeros"), Catch::Contains("expected zero_keys, zero, random or random_keys"));
  for (double bad : {std::nan(""), -0.5, HUGE_VAL}) {
    GrowthSpec spec;
    spec.ffn = 4;
    spec.value_std = bad;
    CHECK_THROWS_WITH(grow(model, spec), Catch::Contains("value_std must be finite and >= 0"));
    CHECK(model.layers[0].ffn.tokens() == 40);
  }
}

TEST_CASE("grow has the strong guarantee: a failing spec leaves the model and its config as they were",
          "[growth][strong]") {
  Model model = random_model(small_config(), 17);
  const auto before = logits_of(model);
  const ModelConfig config = model.config();
  const auto unchanged = [&] {
    CHECK(model.config() == config);
    CHECK(model.layers[0].attention.query.tokens() == config.qkv_tokens);
    CHECK(model.layers[1].ffn.tokens() == config.ffn_tokens);
    CHECK(model.layers[0].attention.query.key_parameter().value.shape() ==
          Shape{config.qkv_tokens, config.hidden_size});
    CHECK(logits_of(model) == before);
  };
  GrowthSpec spec;
  spec.qkv = 8;   // valid, but checked together with ...
  spec.ffn = -1;  // ... this one before anything grows (it used to grow Q/K/V of layer 0 first)
  CHECK_THROWS_WITH(grow(model, spec), Catch::Contains("cannot grow ffn by -1 tokens"));
  unchanged();
  spec.ffn = index_t(1) << 58;  // used to overflow the sizes
  CHECK_THROWS_WITH(grow(model, spec), Catch::Contains("cannot grow ffn by 288230376151711744 tokens"));
  unchanged();
  spec.ffn = (index_t(1) << 31) - 10;  // within the per-call limit, but the FFN's 40 tokens + it exceed it
  CHECK_THROWS_WITH(grow(model, spec), Catch::Contains("exceed the limit"));
  unchanged();
  // A failure after tokens were appended: growing the query Pattention alone makes Q and K differ,
  // which a config cannot describe (refresh_config_from_layers throws); the query shrinks back.
  GrowthSpec query_only;
  query_only.qkv = 4;
  query_only.paths = {"sequential.2.attention.query"};
  CHECK_THROWS_WITH(grow(model, query_only), Catch::Contains("different token counts"));
  unchanged();
  // and the model still saves, reloads and grows
  GrowthSpec fine;
  fine.ffn = 4;
  fine.pin_scale = true;
  grow(model, fine);
  CHECK(model.layers[1].ffn.tokens() == config.ffn_tokens + 4);
  CHECK(test_util::max_abs_diff(logits_of(model), before) <= 1e-5);
}

// ---- per-layer token counts ------------------------------------------------------------------------

TEST_CASE("a model grown on one layer only saves and reloads exactly, with per-layer counts in its config",
          "[growth][io]") {
  const std::string weights = temp_path("one_layer.safetensors"), config_path = temp_path("one_layer.json");
  for (bool pin : {true, false}) {
    INFO((pin ? "scale pinned" : "scale not pinned"));
    Model model = random_model(small_config(), 18);
    GrowthSpec spec;
    spec.qkv = 4;
    spec.ffn = 24;
    spec.layers = {1};
    spec.pin_scale = pin;
    grow(model, spec);
    CHECK(model.layers[0].ffn.tokens() == 40);
    CHECK(model.layers[1].ffn.tokens() == 64);
    const ModelConfig& c = model.config();
    REQUIRE(c.per_layer.size() == 2);
    CHECK(c.layer(0) == LayerTokens{12, 10, 40, 0, 0, 0});
    CHECK(c.layer(1) == LayerTokens{16, 10, 64, pin ? 12 : 0, 0, pin ? 40 : 0});  // proj did not grow: not pinned
    CHECK(c.ffn_tokens == 40);                                                    // the scalar fields are layer 0's
    CHECK(c.parameter_count() == model.parameter_count());
    const auto before = logits_of(model);
    io::save_weights(model, weights);
    io::write_config(c, config_path);
    // Lists only for the keys whose layers differ; proj_slot_num stays the official scalar.
    const std::string json = io::read_text_file(config_path);
    CHECK(json.find("\"ffn_slot_num\": [40,64]") != std::string::npos);
    CHECK(json.find("\"qkv_slot_num\": [12,16]") != std::string::npos);
    CHECK(json.find("\"proj_slot_num\": 10") != std::string::npos);
    CHECK((json.find("\"ffn_scale_slot_num\": [0,40]") != std::string::npos) == pin);
    auto reloaded = io::load_model(config_path, weights);
    CHECK(reloaded.config() == c);
    CHECK(reloaded.layers[1].ffn.pinned_scale_tokens() == (pin ? 40 : 0));
    CHECK(logits_of(reloaded) == before);  // the same shapes and weights: the same bits
    // Growing the other layer to the same counts makes the layers agree again: scalar keys.
    spec.layers = {0};
    grow(model, spec);
    CHECK(model.config().per_layer.empty());
    CHECK(model.config().ffn_tokens == 64);
    CHECK(io::config_to_json(model.config()).find("\"ffn_slot_num\": 64") != std::string::npos);
  }
  std::remove(weights.c_str());
  std::remove(config_path.c_str());
}

TEST_CASE("per-layer token lists in a config are checked", "[growth][io]") {
  const std::string base = R"({"num_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "vocab_size": 50, )";
  const auto parse = [&](const std::string& tokens) { return io::parse_config(base + tokens + "}", "c.json"); };
  const ModelConfig ok = parse(R"("qkv_slot_num": [12, 16], "proj_slot_num": 10, "ffn_slot_num": [40, 40],
                                  "ffn_scale_slot_num": [0, 40])");
  CHECK(ok.layer(1) == LayerTokens{16, 10, 40, 0, 0, 40});
  CHECK(ok.qkv_tokens == 12);
  // Lists that agree collapse to the scalar form.
  CHECK(parse(R"("qkv_slot_num": [12, 12], "proj_slot_num": 10, "ffn_slot_num": 40)").per_layer.empty());
  CHECK_THROWS_WITH(parse(R"("qkv_slot_num": [12], "proj_slot_num": 10, "ffn_slot_num": 40)"),
                    Catch::Contains("qkv_slot_num has 1 entries for 2 layers"));
  CHECK_THROWS_WITH(parse(R"("qkv_slot_num": [12, 0], "proj_slot_num": 10, "ffn_slot_num": 40)"),
                    Catch::Contains("qkv_slot_num must be a positive integer or a list of one per layer"));
  CHECK_THROWS_WITH(parse(R"("qkv_slot_num": [12, "x"], "proj_slot_num": 10, "ffn_slot_num": 40)"),
                    Catch::Contains("qkv_slot_num must be a positive integer"));
  CHECK_THROWS_WITH(
      parse(R"("qkv_slot_num": 12, "proj_slot_num": 10, "ffn_slot_num": 40, "ffn_scale_slot_num": [0, -1])"),
      Catch::Contains("ffn_scale_slot_num must be a non-negative integer"));
  CHECK_THROWS_WITH(parse(R"("qkv_slot_num": 12, "proj_slot_num": [10, [3]], "ffn_slot_num": 40)"),
                    Catch::Contains("proj_slot_num must be a positive integer"));
  // A run-time config whose per-layer list does not fit is refused.
  ModelConfig bad = small_config();
  bad.per_layer = {LayerTokens{12, 10, 40, 0, 0, 0}};
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("1 entries for 2 layers"));
  bad.per_layer = {LayerTokens{12, 10, 40, 0, 0, 0}, LayerTokens{12, 10, -4, 0, 0, 0}};
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("layer 1: token counts must be positive"));
  bad.per_layer = {LayerTokens{13, 10, 40, 0, 0, 0}, LayerTokens{12, 10, 40, 0, 0, 0}};
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("layer 0 must equal"));
  // Q, K and V of one layer must agree for a config to describe the model.
  Model model = random_model(small_config(), 19);
  model.layers[0].attention.key.append_tokens(2);
  CHECK_THROWS_WITH(model.refresh_config_from_layers(),
                    Catch::Contains("sequential.2.attention.key: the qkv Pattentions of one layer have different"));
}

TEST_CASE("for_each_pattention visits every Pattention with its path and role, growth selects by path", "[growth]") {
  Model model = random_model(small_config(), 20);
  std::vector<std::string> paths;
  int qkv = 0, proj = 0, ffn = 0;
  model.for_each_pattention([&](const std::string& path, PattentionRole role, Pattention<float>&) {
    paths.push_back(path);
    qkv += role == PattentionRole::qkv;
    proj += role == PattentionRole::proj;
    ffn += role == PattentionRole::ffn;
  });
  CHECK(paths == std::vector<std::string>{"sequential.2.attention.query", "sequential.2.attention.key",
                                          "sequential.2.attention.value", "sequential.2.attention.proj",
                                          "sequential.2.mlp", "sequential.3.attention.query",
                                          "sequential.3.attention.key", "sequential.3.attention.value",
                                          "sequential.3.attention.proj", "sequential.3.mlp"});
  CHECK((qkv == 6 && proj == 2 && ffn == 2));
  // Every path names parameters of for_each_parameter.
  std::vector<std::string> names;
  model.for_each_parameter([&](const std::string& name, Parameter<float>&) { names.push_back(name); });
  for (const auto& path : paths)
    CHECK(std::find(names.begin(), names.end(), path + ".key_param_tokens") != names.end());

  GrowthSpec spec;
  spec.ffn = 8;
  spec.proj = 3;
  spec.paths = {"sequential.3."};
  grow(model, spec);
  CHECK(model.layers[0].ffn.tokens() == 40);
  CHECK(model.layers[1].ffn.tokens() == 48);
  CHECK(model.layers[1].attention.proj.tokens() == 13);
  spec.paths = {"sequential.2.mlp"};
  grow(model, spec);
  CHECK(model.layers[0].ffn.tokens() == 48);
  CHECK(model.layers[0].attention.proj.tokens() == 10);
  CHECK(model.config().layer(0) == LayerTokens{12, 10, 48, 0, 0, 0});
  CHECK(model.config().layer(1) == LayerTokens{12, 13, 48, 0, 0, 0});
}

}  // namespace test_growth

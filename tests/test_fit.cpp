// FIT (layers/fit_body.hpp) as the body of the language model: layer strings and configs, the
// decoder's causality in float64, growth with pinned scales, checkpoints, training, the padded last
// group, and logits and gradients against the independent PyTorch reference
// (tests/reference/fit_reference.py, golden files in tests/reference/golden/fit_*).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "golden_model.hpp"
#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/layers/fit_body.hpp"
#include "tokenformer/model/copy_parameters.hpp"
#include "tokenformer/model/generation.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/train/optimizer.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_fit {

using namespace tokenformer;

namespace {

template <class T>
using FitModel = LanguageModel<presets::Dynamic<T>, cpu, FitBody>;

/// A small FIT config: C 16, 2 heads, latents of width 8 with 2 heads, groups of 4 tokens, 2 latents
/// per group, up to 5 groups.
ModelConfig small_fit(const std::string& layers = "(1)1(1)1(1)", bool causal = true,
                      Normalization kind = Normalization::l2_norm_gelu) {
  ModelConfig c;
  c.architecture = Architecture::fit;
  c.fit.layers = layers;
  c.fit.group_size = 4;
  c.fit.latents_per_group = 2;
  c.fit.latent_size = 8;
  c.fit.latent_heads = 2;
  c.fit.max_groups = 5;
  c.fit.causal = causal;
  c.num_layers = static_cast<index_t>(parse_fit_layers(layers).size());
  c.hidden_size = 16;
  c.num_heads = 2;
  c.qkv_tokens = 6;
  c.proj_tokens = 5;
  c.ffn_tokens = 7;
  c.vocab_size = 37;
  c.rotary_pct = 0.5;
  c.normalization = kind;
  return c;
}

/// Parameters ~ N(0, 0.5) (larger than the official init, so every unit matters to the logits).
template <class Model>
void randomize(Model& model, std::uint64_t seed) {
  Rng rng(seed);
  using T = typename Model::scalar;
  model.for_each_parameter([&](const std::string& name, Parameter<T>& p) {
    std::vector<T> v(static_cast<std::size_t>(p.size()));
    for (auto& x : v) x = static_cast<T>(rng.normal(name.find("norm.weight") != std::string::npos ? 1.0 : 0.0, 0.5));
    p.value.copy_from_host(v.data());
  });
}

std::vector<std::int32_t> some_tokens(index_t count, std::int32_t vocab = 37) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < t.size(); ++i)
    t[i] = static_cast<std::int32_t>((i * 11 + 3) % static_cast<std::size_t>(vocab));
  return t;
}

template <class T>
std::vector<double> logits_of(FitModel<T>& model, const std::vector<std::int32_t>& tokens, index_t B, index_t T_len) {
  const auto t = model.forward(tokens, B, T_len);
  return std::vector<double>(t.data(), t.data() + t.size());
}

struct TempDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("tokenformer_fit_" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("FIT layer strings give the units in execution order, and bad strings a clear error", "[fit][config]") {
  using K = FitUnitKind;
  const auto kinds = [](const std::string& s) {
    std::vector<K> k;
    for (const auto& u : parse_fit_layers(s)) k.push_back(u.kind);
    return k;
  };
  CHECK(kinds("(2)2(2)") ==
        std::vector<K>{K::local, K::local, K::read, K::global, K::global, K::write, K::local, K::local});
  CHECK(kinds("(1)") == std::vector<K>{K::local});
  CHECK(kinds("(0)1(1)") == std::vector<K>{K::read, K::global, K::write, K::local});
  CHECK(parse_fit_layers("(2)2(2)2(2)").size() == 14);
  CHECK(parse_fit_layers("(2)2(2)2(2)")[8].block == 1);
  for (const char* bad : {"", "2", "(2)", "(2)2", "(2)0(2)", "(0)", "(2)2(2", "(a)2(2)", "(2)2(2)x", "(99999999)"}) {
    if (std::string(bad) == "(2)") continue;  // valid: one block of local layers
    INFO(bad);
    CHECK_THROWS_AS(parse_fit_layers(bad), config_error);
  }
  CHECK_THROWS_WITH(parse_fit_layers("(2)2"), Catch::Contains("must end with a block of local layers"));
}

TEST_CASE("FIT configs: JSON keys round-trip, and wrong ones are refused by name", "[fit][config]") {
  const ModelConfig c = small_fit("(2)2(1)", false, Normalization::softmax);
  CHECK(c.num_layers == 7);
  const ModelConfig back = io::parse_config(io::config_to_json(c));
  CHECK(back == c);
  CHECK(back.architecture == Architecture::fit);
  CHECK_FALSE(back.fit.causal);

  std::string text = io::config_to_json(c);
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    const auto at = t.find(from);
    REQUIRE(at != std::string::npos);
    return t.replace(at, from.size(), to);
  };
  CHECK_THROWS_WITH(io::parse_config(replaced("\"fit\"", "\"fitt\"")), Catch::Contains("unknown architecture"));
  CHECK_THROWS_WITH(io::parse_config(replaced("\"num_layers\": 7", "\"num_layers\": 6")),
                    Catch::Contains("number of units"));
  CHECK_THROWS_WITH(io::parse_config(replaced("\"latent_attention_heads\": 2", "\"latent_attention_heads\": 3")),
                    Catch::Contains("must divide latent_size"));
  CHECK_THROWS_WITH(io::parse_config(replaced("\"causal\": false", "\"causal\": 0")),
                    Catch::Contains("causal must be true or false"));
  CHECK_THROWS_WITH(io::parse_config(replaced("\"architecture\": \"fit\",", "")),
                    Catch::Contains("is a FIT key but architecture is not"));
  // num_layers may be left out: it follows from fit_layers.
  CHECK(io::parse_config(replaced("\"num_layers\": 7,", "")).num_layers == 7);
  // A FIT config needs the FIT body, and the FIT body a FIT config.
  CHECK_THROWS_WITH(LanguageModel<presets::Dynamic<float>>(c), Catch::Contains("needs its block type"));
  ModelConfig plain = c;
  plain.architecture = Architecture::tokenformer;
  CHECK_THROWS_AS(FitModel<float>(plain), config_error);
  // The parameter count of the config is the model's.
  FitModel<float> model(c);
  CHECK(model.parameter_count() == c.parameter_count());
  // Training FLOPs: a FIT config of local layers alone is a TokenFormer stack whose attention stays
  // within groups: the stack's count at T = n, and independent of T.
  ModelConfig local = small_fit("(3)");
  ModelConfig stack = local;
  stack.architecture = Architecture::tokenformer;
  CHECK(local.training_flops_per_token(4) == Approx(stack.training_flops_per_token(4)));
  CHECK(local.training_flops_per_token(4000) == Approx(stack.training_flops_per_token(4)));  // linear in T
  CHECK(c.training_flops_per_token(64) > 0);
}

TEST_CASE("FIT parameters carry the documented names", "[fit]") {
  FitModel<float> model(small_fit("(1)1(1)"));
  std::vector<std::string> names;
  model.for_each_parameter([&](const std::string& name, Parameter<float>&) { names.push_back(name); });
  REQUIRE(names.size() == 1 + 1 + 10 + 8 + 10 + 8 + 10 + 2);
  CHECK(names[0] == "sequential.0.word_embeddings.weight");
  CHECK(names[1] == "fit.latents");
  CHECK(names[2] == "fit.0.local.attention.query.key_param_tokens");
  CHECK(names[11] == "fit.0.local.mlp.value_param_tokens");
  CHECK(names[12] == "fit.1.read.query.key_param_tokens");
  CHECK(names[20] == "fit.2.global.attention.query.key_param_tokens");
  CHECK(names[30] == "fit.3.write.query.key_param_tokens");
  CHECK(names[37] == "fit.3.write.proj.value_param_tokens");
  CHECK(names[38] == "fit.4.local.attention.query.key_param_tokens");
  CHECK(names.back() == "final_norm.bias");
}

TEST_CASE("the FIT decoder is causal: changing token t changes no logit before t (float64, exactly)",
          "[fit][causality]") {
  for (const char* layers : {"(1)1(1)1(1)", "(0)2(2)"}) {
    FitModel<double> model(small_fit(layers, true));
    randomize(model, 3);
    for (index_t T_len : {16, 14, 5, 3}) {  // a multiple of the group size 4, not, and one group
      const auto tokens = some_tokens(T_len);
      const auto base = logits_of(model, tokens, 1, T_len);
      const index_t V = model.vocab_size();
      for (index_t t = 0; t < T_len; ++t) {
        auto changed = tokens;
        changed[static_cast<std::size_t>(t)] = (changed[static_cast<std::size_t>(t)] + 5) % 37;
        const auto after = logits_of(model, changed, 1, T_len);
        INFO(layers << ", T = " << T_len << ", changed token " << t);
        double before_t = 0.0, at_t = 0.0;
        for (index_t i = 0; i < T_len * V; ++i) {
          const double d = std::abs(after[static_cast<std::size_t>(i)] - base[static_cast<std::size_t>(i)]);
          if (i < t * V) before_t = std::max(before_t, d);
          if (i >= t * V && i < (t + 1) * V) at_t = std::max(at_t, d);
        }
        CHECK(before_t == 0.0);
        CHECK(at_t > 0.0);  // the test can fail: the change is visible where it should be
      }
    }
  }
}

TEST_CASE("the FIT encoder is bidirectional, and the sequences of a batch do not interact", "[fit]") {
  FitModel<double> model(small_fit("(1)1(1)", false));
  randomize(model, 5);
  const index_t T_len = 14;  // groups of 4: the last group holds 2 tokens and 2 padding rows
  const auto tokens = some_tokens(T_len);
  const auto base = logits_of(model, tokens, 1, T_len);
  auto changed = tokens;
  changed.back() = (changed.back() + 1) % 37;
  const auto after = logits_of(model, changed, 1, T_len);
  // Changing the last token changes the first position's logits (through the latents).
  double first = 0.0;
  for (index_t v = 0; v < model.vocab_size(); ++v)
    first = std::max(first, std::abs(after[static_cast<std::size_t>(v)] - base[static_cast<std::size_t>(v)]));
  CHECK(first > 0.0);
  // Batched and alone give the same logits (the padding of one sequence never leaks into another).
  auto two = tokens;
  two.insert(two.end(), changed.begin(), changed.end());
  const auto both = logits_of(model, two, 2, T_len);
  CHECK(test_util::max_abs_diff(std::vector<double>(both.begin(), both.begin() + static_cast<long>(base.size())),
                                base) <= 1e-12);
}

TEST_CASE("FIT growth with zero keys and pinned scales keeps the logits, the model saves and reloads",
          "[fit][growth]") {
  for (bool causal : {true, false}) {
    FitModel<double> model(small_fit("(1)1(1)1(1)", causal));
    Rng rng(2);
    model.initialize(rng);
    randomize(model, 8);
    const auto tokens = some_tokens(2 * 14);
    const auto before = logits_of(model, tokens, 2, 14);
    GrowthSpec spec;
    spec.qkv = 3;
    spec.proj = 2;
    spec.ffn = 4;
    spec.pin_scale = true;
    spec.seed = 4;
    grow(model, spec);
    INFO((causal ? "decoder" : "encoder"));
    CHECK(model.layers[0].layer(0).ffn.tokens() == 11);
    CHECK(model.layers[0].cross_attention(1).key.tokens() == 9);
    CHECK(model.layers[0].cross_attention(3).proj.tokens() == 7);
    CHECK(model.config().qkv_tokens == 9);
    CHECK(model.config().qkv_scale_tokens == 6);
    CHECK(test_util::max_scaled_diff(logits_of(model, tokens, 2, 14), before) <= 1e-12);

    // Grow one unit only: per-unit token counts.
    GrowthSpec one;
    one.ffn = 2;
    one.layers = {2};
    one.pin_scale = true;
    grow(model, one);
    CHECK(model.config().layer(2).ffn == 13);
    CHECK(model.config().layer(0).ffn == 11);
    CHECK(test_util::max_scaled_diff(logits_of(model, tokens, 2, 14), before) <= 1e-12);

    TempDir dir;
    const std::string config_path = (dir.path / "config.json").string(),
                      weights_path = (dir.path / "model.safetensors").string();
    io::write_config(model.config(), config_path);
    io::save_weights(model, weights_path);
    auto loaded = io::load_model<presets::Dynamic<double>, cpu, FitBody>(config_path, weights_path);
    CHECK(loaded.config() == model.config());
    CHECK(logits_of(loaded, tokens, 2, 14) == logits_of(model, tokens, 2, 14));  // bit-identical
    FitModel<double> copy(model.config());
    copy_parameters(copy, model);
    CHECK(logits_of(copy, tokens, 2, 14) == logits_of(model, tokens, 2, 14));
  }
}

TEST_CASE("a FIT decoder trains: the loss of a repeating sequence falls", "[fit][training]") {
  FitModel<float> model(small_fit("(1)1(1)"));
  Rng rng(7);
  model.initialize(rng);
  const index_t B = 2, T_len = 18;
  std::vector<std::int32_t> tokens(B * T_len), targets(B * T_len);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<std::int32_t>(i % 7);
    targets[i] = static_cast<std::int32_t>((i + 1) % 7);
  }
  AdamW adamw(AdamWOptions{1e-2, 0.9, 0.95, 1e-8, 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    model.zero_grad();
    last = model.forward_backward(tokens, targets, B, T_len);
    if (step == 0) first = last;
    adamw.step(model, 1e-2);
  }
  INFO("loss " << first << " -> " << last);
  CHECK(first > 3.0);  // about log(37)
  CHECK(last < first / 4);
}

TEST_CASE("FIT refuses sequences beyond max_groups, a position offset, and generating from an encoder", "[fit]") {
  FitModel<float> model(small_fit());
  const auto tokens = some_tokens(21);  // 6 groups of 4 > max_groups 5
  CHECK_THROWS_WITH(model.forward(tokens, 1, 21), Catch::Contains("more than max_groups = 5"));
  CHECK_NOTHROW(model.forward(some_tokens(20), 1, 20));
  Tensor<float> x(Shape{4, 16}), out(Shape{4, 16});
  x.set_zero();
  CHECK_THROWS_WITH(model.layers[0].forward(out, x, 1, 4, 1), Catch::Contains("position_offset must be 0"));
  FitModel<float> encoder(small_fit("(1)1(1)", false));
  Rng rng(1);
  CHECK_THROWS_WITH(generate(encoder, {1, 2}, 3, rng), Catch::Contains("needs a decoder"));
  ModelConfig huge = small_fit();
  huge.fit.max_groups = index_t(1) << 20;
  huge.fit.latent_size = 1 << 11;  // 2^20 groups * 2 latents * 2^11 values = 2^32 > 2^31
  CHECK_THROWS_WITH(huge.validate(), Catch::Contains("learned latents"));
}

TEST_CASE("padding rows of a group are invisible: self-attention and cross-attention with the mask none",
          "[fit][layers]") {
  // Changing the padding rows of the input changes no output row that is real, exactly; without the
  // padding rule the same change does (so the test can fail).
  const index_t T = 8, C = 8;
  std::vector<double> base = test_util::random_vector<double>(T * C, 3), changed = base;
  for (index_t i = 6 * C; i < T * C; ++i) changed[static_cast<std::size_t>(i)] += 0.3 * static_cast<double>(i % C);
  const auto real_rows_change = [&](index_t valid) {
    SelfAttention<double> layer(C, 2, 5, 4, 0.5, Normalization::l2_norm_gelu);
    Rng rng(4);
    layer.for_each_pattention(
        [&](const std::string&, PattentionRole, Pattention<double>& p) { p.initialize(rng, 0.5, 0.5); });
    layer.set_layout(AttentionLayout{kernels::AttentionMask::none, 4, 1, valid});
    Tensor<double> x(Shape{T, C}), a(Shape{T, C}), b(Shape{T, C});
    x.copy_from_host(base.data());
    layer.forward(a, x, 1, T);
    x.copy_from_host(changed.data());
    layer.forward(b, x, 1, T);
    return test_util::max_abs_diff(std::vector<double>(a.data(), a.data() + 6 * C),
                                   std::vector<double>(b.data(), b.data() + 6 * C));
  };
  CHECK(real_rows_change(6) == 0.0);
  CHECK(real_rows_change(0) > 1e-6);
  CHECK_THROWS_AS(SelfAttention<double>(C, 2, 5, 4, 0.5, Normalization::l2_norm_gelu)
                      .set_layout(AttentionLayout{kernels::AttentionMask::causal, 4, 1, 6}),
                  config_error);

  // Cross-attention: 2 groups of 3 queries read 4 source rows each; the last group has 2 real ones.
  const auto cross_change = [&](index_t last_keys) {
    CrossAttention<double> layer(8, 6, 2, 5, 4, Normalization::l2_norm_gelu, 1e-5);
    Rng rng(5);
    layer.for_each_pattention(
        [&](const std::string&, PattentionRole, Pattention<double>& p) { p.initialize(rng, 0.5, 0.5); });
    auto source = test_util::random_vector<double>(8 * 6, 6);
    const auto queries = test_util::random_vector<double>(6 * 8, 7);
    Tensor<double> q(Shape{6, 8}), s(Shape{8, 6}), a(Shape{6, 8}), b(Shape{6, 8});
    q.copy_from_host(queries.data());
    s.copy_from_host(source.data());
    layer.forward(a, q, s, 2, 3, 4, 2, last_keys);
    // rows 6 and 7, by values that differ along the row (a constant shift would vanish in LayerNorm)
    for (index_t i = 6 * 6; i < 8 * 6; ++i) source[static_cast<std::size_t>(i)] += 0.3 * static_cast<double>(i % 6);
    s.copy_from_host(source.data());
    layer.forward(b, q, s, 2, 3, 4, 2, last_keys);
    return test_util::max_abs_diff(std::vector<double>(a.data(), a.data() + a.size()),
                                   std::vector<double>(b.data(), b.data() + b.size()));
  };
  CHECK(cross_change(2) == 0.0);
  CHECK(cross_change(0) > 1e-6);
}

TEST_CASE("grouped attention splits calls of more than 65535 groups, padded or not, with the same result",
          "[fit][layers]") {
  const index_t groups = 70001, Q = 2, K = 3, H = 1, D = 2;
  const kernels::AttentionShape s{groups, Q, K, H, D, kernels::AttentionMask::none, 1, 1};
  const auto q = test_util::random_vector<float>(static_cast<std::size_t>(groups * Q * D), 1),
             k = test_util::random_vector<float>(static_cast<std::size_t>(groups * K * D), 2),
             v = test_util::random_vector<float>(static_cast<std::size_t>(groups * K * D), 3);
  std::vector<float> direct(q.size()), lse_direct(static_cast<std::size_t>(groups * Q)), split(q.size()),
      lse_split(lse_direct.size());
  kernels::attention_forward(cpu{}, direct.data(), lse_direct.data(), q.data(), k.data(), v.data(), s);
  grouped_attention_forward(cpu{}, split.data(), lse_split.data(), q.data(), k.data(), v.data(), s, groups, 0);
  CHECK(split == direct);
  CHECK(lse_split == lse_direct);
  // One sequence of 70001 groups whose last group has 1 real key: the full groups as before, the last
  // one as a call of its own with 1 key.
  grouped_attention_forward(cpu{}, split.data(), lse_split.data(), q.data(), k.data(), v.data(), s, groups, 1);
  const auto last = static_cast<std::size_t>((groups - 1) * Q * D);
  CHECK(std::vector<float>(split.begin(), split.begin() + static_cast<long>(last)) ==
        std::vector<float>(direct.begin(), direct.begin() + static_cast<long>(last)));
  kernels::AttentionShape one{1, Q, 1, H, D, kernels::AttentionMask::none, 1, 1};
  std::vector<float> tail(static_cast<std::size_t>(Q * D)), tail_lse(static_cast<std::size_t>(Q));
  kernels::attention_forward(cpu{}, tail.data(), tail_lse.data(), q.data() + last, k.data() + (groups - 1) * K * D,
                             v.data() + (groups - 1) * K * D, one);
  CHECK(std::vector<float>(split.begin() + static_cast<long>(last), split.end()) == tail);
}

TEST_CASE("FIT logits and gradients match the independent PyTorch reference", "[fit][golden]") {
  // Decoder (T = 14, not a multiple of the group size), encoder with a padded last group, and a
  // softmax decoder with groups of 3: see tests/reference/make_golden_fit.py.
  for (const char* name : {"fit_ar_f32", "fit_enc_f32", "fit_ar_softmax_f32"})
    golden_model::check_case<FitBody>(test_util::data_dir() + "/" + std::string(name));
}

TEST_CASE("tokenformer-cli reads FIT configs: init, logits, grow and train", "[fit][cli]") {
#ifdef TOKENFORMER_CLI
  const std::string cli = TOKENFORMER_CLI;
  const std::string golden = test_util::data_dir() + "/fit_ar_f32";
  TempDir dir;
  const std::string d = dir.path.string();
  const auto run = [](const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); };
  using test_util::read_floats;
  // logits of the golden decoder's first sequence, against the reference's.
  const auto sequences = test_util::read_sequences(golden + "/tokens.txt");
  std::string ids;
  for (auto t : sequences[0]) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  REQUIRE(run(cli + " logits --config " + golden + "/config.json --weights " + golden + "/model.safetensors --tokens " +
              ids + " --out " + d + "/golden.f32") == 0);
  const auto ours = read_floats(d + "/golden.f32"), all = read_floats(golden + "/logits.f32");
  REQUIRE(!ours.empty());
  CHECK(test_util::max_abs_diff(ours, std::vector<float>(all.begin(), all.begin() + static_cast<long>(ours.size()))) <=
        1e-4);

  // A TokenFormer config may leave vocab_size to the weights: the CLI reads the architecture alone first.
  {
    const std::string plain = test_util::data_dir() + "/softmax_f32";
    std::string text = io::read_text_file(plain + "/config.json");
    const auto key = text.find("\"vocab_size\"");
    REQUIRE(key != std::string::npos);
    const auto end = text.find_first_of(",}", key);
    text.erase(key, end - key + (text[end] == ',' ? 1 : 0));
    REQUIRE(text.find("vocab_size") == std::string::npos);
    {
      std::ofstream out(d + "/no_vocab.json");
      out << text;
    }
    CHECK(run(cli + " logits --config " + d + "/no_vocab.json --weights " + plain +
              "/model.safetensors --tokens 1,2,3 --out " + d + "/plain.f32") == 0);
  }

  // grad: every parameter's gradient under its name.
  REQUIRE(run(cli + " grad --config " + golden + "/config.json --weights " + golden + "/model.safetensors --tokens " +
              ids + " --out " + d + "/grads.safetensors") == 0);
  {
    io::SafetensorsReader grads(d + "/grads.safetensors");
    auto model =
        io::load_model<presets::Dynamic<float>, cpu, FitBody>(golden + "/config.json", golden + "/model.safetensors");
    std::size_t found = 0;
    model.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
      std::vector<float> g(static_cast<std::size_t>(p.size()));
      grads.read(name, p.shape(), g.data());
      ++found;
    });
    CHECK(found == grads.tensors().size());
  }

  // init, then grow with zero keys and pinned scales: the same logits.
  REQUIRE(run(cli + " init --config " + golden + "/config.json --out " + d + "/init.safetensors --seed 3") == 0);
  REQUIRE(run(cli + " grow --config " + golden + "/config.json --weights " + d + "/init.safetensors --out " + d +
              "/grown.safetensors --qkv +2 --ffn +3 --pin-scale") == 0);
  REQUIRE(run(cli + " logits --config " + golden + "/config.json --weights " + d + "/init.safetensors --tokens " + ids +
              " --out " + d + "/init.f32") == 0);
  REQUIRE(run(cli + " logits --config " + d + "/grown.json --weights " + d + "/grown.safetensors --tokens " + ids +
              " --out " + d + "/grown.f32") == 0);
  const auto before = read_floats(d + "/init.f32"), after = read_floats(d + "/grown.f32");
  REQUIRE(!before.empty());
  CHECK(test_util::max_abs_diff(before, after) <= 1e-6);
  CHECK(io::read_config(d + "/grown.json").qkv_tokens == 8);

  // train a small byte-level FIT model for a few steps from a config.
  ModelConfig c = io::read_config(golden + "/config.json");
  c.vocab_size = 257;
  io::write_config(c, d + "/byte.json");
  {
    std::ofstream corpus(d + "/corpus.txt");
    for (int i = 0; i < 400; ++i) corpus << "the quick brown fox " << i << " jumps over the lazy dog.\n";
  }
  CHECK(run(cli + " train --config " + d + "/byte.json --corpus " + d + "/corpus.txt --checkpoint-dir " + d +
            "/run --steps 3 --batch 2 --seq 20 --eval-every 3") == 0);
  CHECK(std::filesystem::exists(d + "/run/checkpoint.safetensors"));
  CHECK(io::read_config(d + "/run/config.json").architecture == Architecture::fit);
  // a byte corpus needs 257 ids
  CHECK(run(cli + " train --config " + golden + "/config.json --checkpoint-dir " + d + "/bad --steps 1") == 2 * 256);
  // bf16 mixed precision trains it too; an unknown precision is a usage error (status 2)
  CHECK(run(cli + " train --config " + d + "/byte.json --corpus " + d + "/corpus.txt --checkpoint-dir " + d +
            "/run_bf16 --steps 3 --batch 2 --seq 20 --eval-every 3 --precision bf16") == 0);
  CHECK(std::filesystem::exists(d + "/run_bf16/checkpoint.safetensors"));
  const auto read_text = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string curve32 = read_text(d + "/run/curve.csv"), curve16 = read_text(d + "/run_bf16/curve.csv");
  CHECK(!curve32.empty());
  CHECK(curve16 != curve32);  // the option reached the trainer: other losses
  CHECK(run(cli + " train --config " + d + "/byte.json --corpus " + d + "/corpus.txt --checkpoint-dir " + d +
            "/bad16 --steps 1 --precision fp16") == 2 * 256);
#else
  WARN("tokenformer-cli is not built; skipped");
#endif
}

}  // namespace test_fit

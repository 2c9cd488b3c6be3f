// Cross-architecture transfer (model/transfer.hpp): bit-exact copies by role and layer between the
// TokenFormer LM, FIT and the plain Transformer, the default and explicit layer maps, token counts
// that differ (prefix copies that preserve the function, truncation), the Linear -> Pattention
// conversions, skip switches, width errors, freezing and unfreezing, and the CLI.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/layers/fit_body.hpp"
#include "tokenformer/layers/transformer_layer.hpp"
#include "tokenformer/model/transfer.hpp"
#include "tokenformer/train/optimizer.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_transfer {

using namespace tokenformer;
using io_test::TempDir;

namespace {

using TokenFormerModel = LanguageModel<presets::Dynamic<float>>;
using FitModel = LanguageModel<presets::Dynamic<float>, cpu, FitBody>;
using TransformerModel = LanguageModel<presets::Dynamic<float>, cpu, TransformerLayer>;

ModelConfig tokenformer_config(index_t layers = 2, index_t qkv = 6, index_t ffn = 10) {
  ModelConfig c;
  c.num_layers = layers;
  c.hidden_size = 16;
  c.num_heads = 2;
  c.qkv_tokens = qkv;
  c.proj_tokens = 5;
  c.ffn_tokens = ffn;
  c.vocab_size = 37;
  c.rotary_pct = 0.5;
  return c;
}
ModelConfig fit_config(index_t latent = 16) {
  ModelConfig c = tokenformer_config();
  c.architecture = Architecture::fit;
  c.fit.layers = "(1)1(1)";
  c.fit.group_size = 4;
  c.fit.latents_per_group = 2;
  c.fit.latent_size = latent;
  c.fit.latent_heads = 2;
  c.fit.max_groups = 4;
  c.num_layers = 5;
  return c;
}
ModelConfig transformer_config(index_t layers = 2, index_t mlp = 10) {
  ModelConfig c;
  c.architecture = Architecture::transformer;
  c.num_layers = layers;
  c.hidden_size = 16;
  c.num_heads = 2;
  c.intermediate_size = mlp;
  c.vocab_size = 37;
  c.rotary_pct = 0.5;
  return c;
}

/// Every parameter's values by name.
template <class Model>
std::map<std::string, std::vector<float>> values_of(Model& model) {
  std::map<std::string, std::vector<float>> out;
  model.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
    out[name] = std::vector<float>(p.value.data(), p.value.data() + p.size());
  });
  return out;
}

template <class Model>
Model initialized(const ModelConfig& c, std::uint64_t seed) {
  Model m(c);
  Rng rng(seed);
  m.initialize(rng);
  return m;
}

template <class Model>
std::vector<float> logits_of(Model& model) {
  std::vector<std::int32_t> tokens(12);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((i * 7 + 2) % 37);
  const auto t = model.forward(tokens, 1, 12);
  return std::vector<float>(t.data(), t.data() + t.size());
}

}  // namespace

TEST_CASE("transfer between two TokenFormer LMs of one config copies everything: the same function", "[transfer]") {
  auto source = initialized<TokenFormerModel>(tokenformer_config(), 1);
  auto target = initialized<TokenFormerModel>(tokenformer_config(), 2);
  const TransferReport report = transfer(source, target);
  CHECK(report.count(TransferAction::copied) == static_cast<index_t>(report.entries.size()));
  CHECK(values_of(target) == values_of(source));
  CHECK(logits_of(target) == logits_of(source));
  CHECK(report.str().find("copied 23,") != std::string::npos);  // 1 + 2 x 10 + 2 tensors
}

TEST_CASE("TokenFormer LM -> FIT: the default map fills local and global layers in order, bit for bit",
          "[transfer][fit]") {
  auto source = initialized<TokenFormerModel>(tokenformer_config(3), 1);
  auto target = initialized<FitModel>(fit_config(), 2);
  const auto before = values_of(target);
  // units: local, read, global, write, local -> source layers 0, -, 1, -, 2
  CHECK(default_layer_map(source, target) == std::vector<index_t>{0, -1, 1, -1, 2});
  const TransferReport report = transfer(source, target);
  const auto from = values_of(source), to = values_of(target);
  CHECK(to.at("fit.0.local.attention.query.key_param_tokens") ==
        from.at("sequential.2.attention.query.key_param_tokens"));
  CHECK(to.at("fit.2.global.mlp.value_param_tokens") == from.at("sequential.3.mlp.value_param_tokens"));
  CHECK(to.at("fit.4.local.attention.proj.value_param_tokens") ==
        from.at("sequential.4.attention.proj.value_param_tokens"));
  CHECK(to.at("sequential.0.word_embeddings.weight") == from.at("sequential.0.word_embeddings.weight"));
  CHECK(to.at("final_norm.weight") == from.at("sequential.6.norm.weight"));
  // no source: unchanged and reported as initialized
  CHECK(to.at("fit.latents") == before.at("fit.latents"));
  CHECK(to.at("fit.1.read.query.key_param_tokens") == before.at("fit.1.read.query.key_param_tokens"));
  const TransferEntry* read = report.find("fit.1.read.key.value_param_tokens");
  REQUIRE(read != nullptr);
  CHECK(read->action == TransferAction::initialized);
  const TransferEntry* local = report.find("fit.0.local.attention.key.key_param_tokens");
  REQUIRE(local != nullptr);
  CHECK(local->action == TransferAction::copied);
  CHECK(local->source == "sequential.2.attention.key.key_param_tokens");
  // FIT -> TokenFormer LM, the other way: local and global layers go back to layers 0, 1, 2.
  auto back = initialized<TokenFormerModel>(tokenformer_config(3), 3);
  transfer(target, back);
  CHECK(values_of(back) == from);

  // A latent width that differs: the default map leaves the global layer; an explicit map into it
  // is an error naming the tensor.
  auto narrow = initialized<FitModel>(fit_config(8), 2);
  CHECK(default_layer_map(source, narrow) == std::vector<index_t>{0, -1, -1, -1, 1});
  TransferSpec spec;
  spec.layer_map = {0, -1, 1, -1, 2};
  CHECK_THROWS_WITH(transfer(source, narrow, spec),
                    Catch::Contains("fit.2.global.attention.query.key_param_tokens has width 8") &&
                        Catch::Contains("sequential.3.attention.query.key_param_tokens has 16"));
  spec.layer_map = {0, 1};
  CHECK_THROWS_WITH(transfer(source, narrow, spec), Catch::Contains("2 entries for 5 target layers"));
  // and as a source: its 8-wide global unit is not paired with a 16-wide layer
  CHECK(default_layer_map(narrow, source) == std::vector<index_t>{0, 4, -1});
  auto from_narrow = initialized<TokenFormerModel>(tokenformer_config(3), 3);
  CHECK(transfer(narrow, from_narrow).find("sequential.4.mlp.key_param_tokens")->action == TransferAction::initialized);
  spec.layer_map = {0, -1, 3, -1, 1};
  CHECK_THROWS_WITH(transfer(source, narrow, spec), Catch::Contains("entry 3 is not a source layer"));
}

TEST_CASE(
    "transfer into more tokens copies a prefix the growth way (function-preserving with a pinned scale), "
    "into fewer truncates",
    "[transfer][growth]") {
  auto source = initialized<TokenFormerModel>(tokenformer_config(2, 6, 10), 1);
  auto bigger = initialized<TokenFormerModel>(tokenformer_config(2, 9, 16), 2);
  TransferSpec spec;
  spec.pin_scale = true;  // new_tokens zero_keys by default
  const TransferReport report = transfer(source, bigger, spec);
  CHECK(test_util::max_abs_diff(logits_of(bigger), logits_of(source)) <= 1e-5);
  CHECK(bigger.config().qkv_scale_tokens == 6);
  CHECK(bigger.config().ffn_scale_tokens == 10);
  const TransferEntry* ffn = report.find("sequential.2.mlp.key_param_tokens");
  REQUIRE(ffn != nullptr);
  CHECK(ffn->action == TransferAction::prefix_copied);
  CHECK(ffn->note == "10 of 16 tokens from the source");
  // without the pinned scale the prefix is the same but the function changes (Θ's √n)
  auto unpinned = initialized<TokenFormerModel>(tokenformer_config(2, 9, 16), 2);
  transfer(source, unpinned);
  CHECK(values_of(unpinned) == values_of(bigger));
  CHECK(test_util::max_abs_diff(logits_of(unpinned), logits_of(source)) > 1e-3);
  CHECK(unpinned.config().qkv_scale_tokens == 0);
  // a whole copy takes the source's pinned scale (and so its function), here from the pinned model
  auto again = initialized<TokenFormerModel>(tokenformer_config(2, 9, 16), 4);
  transfer(bigger, again);
  CHECK(again.config().ffn_scale_tokens == 10);
  CHECK(logits_of(again) == logits_of(bigger));

  auto smaller = initialized<TokenFormerModel>(tokenformer_config(2, 4, 7), 2);
  const TransferReport cut = transfer(source, smaller);
  CHECK(cut.find("sequential.3.mlp.value_param_tokens")->action == TransferAction::truncated);
  const auto s = values_of(source), t = values_of(smaller);
  const auto& full = s.at("sequential.3.mlp.value_param_tokens");
  CHECK(t.at("sequential.3.mlp.value_param_tokens") == std::vector<float>(full.begin(), full.begin() + 7 * 16));
}

TEST_CASE("skip switches leave their groups as initialized, unknown names are refused", "[transfer]") {
  auto source = initialized<TokenFormerModel>(tokenformer_config(), 1);
  auto target = initialized<TokenFormerModel>(tokenformer_config(), 2);
  const auto before = values_of(target);
  TransferSpec spec;
  spec.skip("qkv,proj,embeddings");
  const TransferReport report = transfer(source, target, spec);
  const auto after = values_of(target), from = values_of(source);
  for (const auto& [name, v] : after) {
    INFO(name);
    const bool skipped = name.find("attention") != std::string::npos || name.find("embeddings") != std::string::npos;
    CHECK(v == (skipped ? before.at(name) : from.at(name)));
    CHECK(report.find(name)->action == (skipped ? TransferAction::skipped : TransferAction::copied));
  }
  CHECK_THROWS_WITH(spec.skip("qkv,mlp"), Catch::Contains("unknown transfer group 'mlp'"));
}

TEST_CASE("plain Transformer -> TokenFormer: the MLP becomes the FFN's tokens, Linear rows become keys",
          "[transfer][transformer]") {
  auto source = initialized<TransformerModel>(transformer_config(2, 12), 1);
  Rng rng(4);
  source.for_each_parameter([&](const std::string&, Parameter<float>& p) {  // non-zero biases and norms
    std::vector<float> v(static_cast<std::size_t>(p.size()));
    for (auto& x : v) x = static_cast<float>(rng.normal(0.0, 0.3));
    p.value.copy_from_host(v.data());
  });
  auto target = initialized<TokenFormerModel>(tokenformer_config(2, 16, 12), 2);
  const TransferReport report = transfer(source, target);
  const auto s = values_of(source), t = values_of(target);
  // FFN: key token i = row i of W1 [12, 16]; value token i = column i of W2 [16, 12]
  CHECK(t.at("sequential.3.mlp.key_param_tokens") == s.at("sequential.3.mlp.dense_h_to_4h.weight"));
  const auto& w2 = s.at("sequential.3.mlp.dense_4h_to_h.weight");
  const auto& values = t.at("sequential.3.mlp.value_param_tokens");
  for (std::size_t i = 0; i < 12; ++i)
    for (std::size_t o = 0; o < 16; ++o) CHECK(values[i * 16 + o] == w2[o * 12 + i]);
  // attention: key token i = row i of W [16, 16], value token i = e_i
  CHECK(t.at("sequential.2.attention.key.key_param_tokens") == s.at("sequential.2.attention.key.weight"));
  const auto& unit = t.at("sequential.2.attention.key.value_param_tokens");
  for (std::size_t i = 0; i < 16; ++i)
    for (std::size_t o = 0; o < 16; ++o) CHECK(unit[i * 16 + o] == (i == o ? 1.0f : 0.0f));
  CHECK(report.find("sequential.3.mlp.key_param_tokens")->action == TransferAction::converted);
  CHECK(report.find("sequential.0.word_embeddings.weight")->action == TransferAction::copied);
  CHECK(t.at("sequential.5.norm.bias") == s.at("sequential.5.norm.bias"));

  // TokenFormer -> Transformer: the FFN tokens become the MLP (W1 rows, W2 columns); attention and
  // the block norms have no source form and stay initialized.
  auto mlp = initialized<TransformerModel>(transformer_config(2, 12), 5);
  const auto before = values_of(mlp);
  const TransferReport back = transfer(target, mlp);
  const auto m = values_of(mlp);
  CHECK(m.at("sequential.3.mlp.dense_h_to_4h.weight") == s.at("sequential.3.mlp.dense_h_to_4h.weight"));
  CHECK(m.at("sequential.3.mlp.dense_4h_to_h.weight") == w2);
  CHECK(m.at("sequential.2.attention.query.weight") == before.at("sequential.2.attention.query.weight"));
  CHECK(back.find("sequential.2.attention.query.weight")->action == TransferAction::initialized);
  CHECK(back.find("sequential.2.input_layernorm.weight")->action == TransferAction::initialized);

  // Transformer -> Transformer: everything copied, the function too.
  auto copy = initialized<TransformerModel>(transformer_config(2, 12), 6);
  const TransferReport same = transfer(source, copy);
  CHECK(same.count(TransferAction::copied) == static_cast<index_t>(same.entries.size()));
  CHECK(logits_of(copy) == logits_of(source));
  // an MLP of another size is an error naming the tensor
  auto wide = initialized<TransformerModel>(transformer_config(2, 20), 6);
  CHECK_THROWS_WITH(transfer(source, wide), Catch::Contains("sequential.2.mlp.dense_h_to_4h.weight has shape"));
}

TEST_CASE("freeze_transferred trains only the new parts, the Unfreezer releases them with a warmup",
          "[transfer][freeze]") {
  auto source = initialized<TokenFormerModel>(tokenformer_config(2, 6, 10), 1);
  auto target = initialized<TokenFormerModel>(tokenformer_config(2, 6, 14), 2);
  TransferSpec spec;
  spec.freeze_transferred = true;
  spec.skip("proj");
  const TransferReport report = transfer(source, target, spec);
  std::vector<std::int32_t> tokens(24), targets(24);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>((i * 5) % 11);
  for (std::size_t i = 0; i < tokens.size(); ++i) targets[i] = i % 12 == 11 ? -1 : tokens[i + 1];
  AdamW adamw;
  UnfreezeOptions options;
  options.after_steps = 3;
  options.warmup_steps = 4;
  Unfreezer unfreezer(report, options);
  // frozen: the embeddings, per layer Q/K/V (keys, values) and the FFN's 10 copied rows, the final
  // norm; not frozen: the skipped output projections
  CHECK(unfreezer.frozen_names().size() == 1 + 2 * (6 + 2) + 2);
  const auto train = [&](long step) {
    target.zero_grad();
    target.forward_backward(tokens, targets, 2, 12);
    adamw.step(target, 1e-2);
    return unfreezer.update(target, step, NAN);
  };
  const auto start = values_of(target);
  for (long step = 1; step <= 2; ++step) CHECK(!train(step));
  auto now = values_of(target);
  CHECK(now.at("sequential.2.attention.query.key_param_tokens") ==
        start.at("sequential.2.attention.query.key_param_tokens"));
  CHECK(now.at("sequential.0.word_embeddings.weight") == start.at("sequential.0.word_embeddings.weight"));
  CHECK(now.at("sequential.2.attention.proj.key_param_tokens") !=
        start.at("sequential.2.attention.proj.key_param_tokens"));
  const auto& ffn0 = start.at("sequential.2.mlp.value_param_tokens");
  const auto& ffn1 = now.at("sequential.2.mlp.value_param_tokens");
  CHECK(std::vector<float>(ffn1.begin(), ffn1.begin() + 10 * 16) ==
        std::vector<float>(ffn0.begin(), ffn0.begin() + 10 * 16));
  CHECK(std::vector<float>(ffn1.begin() + 10 * 16, ffn1.end()) !=
        std::vector<float>(ffn0.begin() + 10 * 16, ffn0.end()));
  // step 3 releases them; their learning rate ramps 1/4, 2/4, ... then 1
  CHECK(train(3));
  CHECK(unfreezer.unfrozen_at() == 3);
  CHECK(target.word_embeddings.lr_scale == 0.25);
  CHECK(!target.word_embeddings.frozen);
  CHECK(target.layers[0].attention.proj.key_parameter().lr_scale == 1.0);  // never frozen
  CHECK(target.layers[0].ffn.value_parameter().lr_scale == 1.0);  // prefix-copied: its new rows trained all along
  CHECK(target.layers[0].ffn.value_parameter().frozen_rows == 0);
  const auto released = values_of(target);
  CHECK(!train(4));
  CHECK(target.word_embeddings.lr_scale == 0.5);
  now = values_of(target);
  CHECK(now.at("sequential.2.attention.query.key_param_tokens") !=
        released.at("sequential.2.attention.query.key_param_tokens"));
  for (long step = 5; step <= 8; ++step) train(step);
  CHECK(target.word_embeddings.lr_scale == 1.0);
}

TEST_CASE("the Unfreezer's loss-improvement rule (XATL): release when the best validation loss stalls",
          "[transfer][freeze]") {
  auto model = initialized<TokenFormerModel>(tokenformer_config(), 1);
  TransferReport report;
  report.entries.push_back({"sequential.0.word_embeddings.weight", "", TransferAction::copied, "", true});
  model.word_embeddings.frozen = true;
  UnfreezeOptions options;
  options.min_improvement = 0.01;  // 1% over ...
  options.patience = 2;            // ... the last two evaluations
  Unfreezer u(report, options);
  CHECK(!u.update(model, 10, 3.0));
  CHECK(!u.update(model, 20, 2.8));
  CHECK(!u.update(model, 25, NAN));   // not evaluated: not counted
  CHECK(!u.update(model, 30, 2.7));   // best of the last two 2.7 vs 3.0 before: 10%
  CHECK(!u.update(model, 40, 2.69));  // 2.69 vs 2.8: 3.9%
  CHECK(u.update(model, 50, 2.68));   // 2.68 vs 2.7: 0.7% < 1%
  CHECK(!model.word_embeddings.frozen);
  CHECK(u.unfrozen_at() == 50);
  options.patience = -1;
  CHECK_THROWS_AS(Unfreezer(report, options), config_error);
}

TEST_CASE("AdamW applies each parameter's lr_scale and refuses a bad one", "[transfer][optimizer]") {
  auto model = initialized<TokenFormerModel>(tokenformer_config(), 1);
  std::vector<std::int32_t> tokens{1, 2, 3, 4, 5, 6}, targets{2, 3, 4, 5, 6, -1};
  model.zero_grad();
  model.forward_backward(tokens, targets, 1, 6);
  model.word_embeddings.lr_scale = 0.0;
  const auto before = values_of(model);
  AdamW adamw;
  adamw.step(model, 1e-2);
  const auto after = values_of(model);
  CHECK(after.at("sequential.0.word_embeddings.weight") == before.at("sequential.0.word_embeddings.weight"));
  CHECK(after.at("sequential.2.mlp.key_param_tokens") != before.at("sequential.2.mlp.key_param_tokens"));
  model.word_embeddings.lr_scale = NAN;
  CHECK_THROWS_WITH(adamw.step(model, 1e-2), Catch::Contains("lr_scale"));
  // a scale of 0.5 halves the first update (AdamW's first step is lr · sign-like: m̂/√v̂ = ±1)
  auto half = initialized<TokenFormerModel>(tokenformer_config(), 1), full = half;
  for (auto* m : {&half, &full}) {
    m->zero_grad();
    m->forward_backward(tokens, targets, 1, 6);
  }
  half.layers[1].ffn.key_parameter().lr_scale = 0.5;
  const auto start = values_of(half);
  AdamW a, b;
  a.step(half, 1e-2);
  b.step(full, 1e-2);
  const auto& s0 = start.at("sequential.3.mlp.key_param_tokens");
  const auto h = values_of(half).at("sequential.3.mlp.key_param_tokens"),
             f = values_of(full).at("sequential.3.mlp.key_param_tokens");
  double worst = 0;
  for (std::size_t i = 0; i < s0.size(); ++i)
    if (f[i] != s0[i]) worst = std::max(worst, std::fabs((h[i] - s0[i]) / (f[i] - s0[i]) - 0.5));
  CHECK(worst < 1e-3);
  CHECK(values_of(half).at("sequential.2.mlp.key_param_tokens") ==
        values_of(full).at("sequential.2.mlp.key_param_tokens"));
}

TEST_CASE("tokenformer-cli transfer writes the target and prints the report, copied tensors are bit-exact",
          "[transfer][cli]") {
#ifdef TOKENFORMER_CLI
  const std::string cli = TOKENFORMER_CLI;
  TempDir dir;
  const std::string d = dir.str();
  const auto run = [](const std::string& command) { return std::system(command.c_str()); };
  auto source = initialized<TokenFormerModel>(tokenformer_config(3), 1);
  io::write_config(source.config(), d + "/a.json");
  io::save_weights(source, d + "/a.safetensors");
  io::write_config(fit_config(), d + "/b.json");
  REQUIRE(run(cli + " transfer --from-config " + d + "/a.json --from-weights " + d + "/a.safetensors --to-config " + d +
              "/b.json --out " + d + "/b.safetensors --skip proj --seed 4 > " + d + "/report.txt 2>/dev/null") == 0);
  const std::string report = io::read_text_file(d + "/report.txt");
  CHECK(report.find("fit.0.local.attention.query.key_param_tokens  copied  <- "
                    "sequential.2.attention.query.key_param_tokens") != std::string::npos);
  CHECK(report.find("fit.0.local.attention.proj.key_param_tokens  skipped") != std::string::npos);
  CHECK(report.find("fit.latents  initialized") != std::string::npos);
  auto target = io::load_model<presets::Dynamic<float>, cpu, FitBody>(d + "/b.json", d + "/b.safetensors");
  const auto from = values_of(source), to = values_of(target);
  CHECK(to.at("fit.4.local.mlp.key_param_tokens") == from.at("sequential.4.mlp.key_param_tokens"));
  CHECK(to.at("sequential.0.word_embeddings.weight") == from.at("sequential.0.word_embeddings.weight"));
  // errors: an unknown group, a layer map of the wrong length
  const std::string base = cli + " transfer --from-config " + d + "/a.json --from-weights " + d +
                           "/a.safetensors --to-config " + d + "/b.json --out " + d + "/c.safetensors ";
  CHECK(run(base + "--skip mlp >/dev/null 2>&1") != 0);
  CHECK(run(base + "--layer-map 0,1 >/dev/null 2>&1") != 0);
  CHECK(run(base + "--layer-map 0,x >/dev/null 2>&1") != 0);
#else
  WARN("tokenformer-cli is not built; skipped");
#endif
}

}  // namespace test_transfer

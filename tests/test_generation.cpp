// Generation with a KV cache: cached logits against the full recompute, greedy decoding against the
// recompute's argmax, the decode kernel against the reference, sampling options, errors, and a
// counting allocator that proves a decode step allocates nothing.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "device_cases.hpp"
#include "io_test_util.hpp"
#include "test_util.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/layers/fit_body.hpp"
#include "tokenformer/layers/transformer_layer.hpp"
#include "tokenformer/model/generation.hpp"

// ---- a counting allocator: every malloc-family call of the process, while counting is on ----------
#include "malloc_hooks.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_generation {

using namespace tokenformer;
using malloc_hooks::allocations;
using malloc_hooks::counting;

namespace {

ModelConfig small_config(Architecture architecture = Architecture::tokenformer, index_t hidden = 32,
                         index_t heads = 4) {
  ModelConfig config;
  config.architecture = architecture;
  config.num_layers = 2;
  config.hidden_size = hidden;
  config.num_heads = heads;
  config.vocab_size = 61;
  config.rotary_pct = 0.5;
  if (architecture == Architecture::transformer) {
    config.intermediate_size = 2 * hidden;
  } else {
    config.qkv_tokens = 24;
    config.proj_tokens = 20;
    config.ffn_tokens = 40;
  }
  return config;
}

/// The recompute's greedy choice after `sequence`: the argmax of the last row of a full forward.
template <class Model>
std::int32_t recompute_argmax(Model& model, const std::vector<std::int32_t>& sequence) {
  const auto logits = model.forward(sequence, 1, static_cast<index_t>(sequence.size()));
  const index_t V = model.vocab_size(), last = (static_cast<index_t>(sequence.size()) - 1) * V;
  std::int32_t best = 0;
  for (index_t v = 1; v < V; ++v)
    if (logits[last + v] > logits[last + best]) best = static_cast<std::int32_t>(v);
  return best;
}

template <template <class, class> class Block>
void greedy_equals_recompute(Architecture architecture) {
  LanguageModel<presets::Dynamic<float>, cpu, Block> model(small_config(architecture));
  Rng init(5);
  model.initialize(init);
  LanguageModel<presets::Dynamic<float>, cpu, Block> full(model);
  const std::vector<std::vector<std::int32_t>> prompts{{1, 2, 3, 4, 5, 6, 7}, {42}, {9, 8, 7}};
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  Rng rng(1);
  std::vector<std::vector<std::int32_t>> streamed(prompts.size());
  const auto produced = generate_batch(model, prompts, 24, rng, greedy, [&](index_t row, std::int32_t token) {
    streamed[static_cast<std::size_t>(row)].push_back(token);
  });
  REQUIRE(produced.size() == prompts.size());
  CHECK(streamed == produced);
  for (std::size_t r = 0; r < prompts.size(); ++r) {
    REQUIRE(produced[r].size() == 24);
    std::vector<std::int32_t> sequence = prompts[r];
    for (std::size_t i = 0; i < produced[r].size(); ++i) {
      INFO("sequence " << r << ", token " << i);
      CHECK(produced[r][i] == recompute_argmax(full, sequence));
      sequence.push_back(produced[r][i]);
    }
  }
  // The single-sequence entry point agrees with the batch.
  Rng again(1);
  CHECK(generate(model, prompts[2], 24, again, greedy) == produced[2]);
}

}  // namespace

TEST_CASE("attention_decode on the cpu equals the reference attention of one query", "[generation][kernels]") {
  device_cases::attention_decode_matches_reference<double>(1e-12, cpu{});
  device_cases::attention_decode_matches_reference<float>(2e-5, cpu{});
  device_cases::attention_decode_matches_reference<double>(1e-12, reference{});
}

TEST_CASE("KV-cache logits equal the full recompute at every step (cpu, double)", "[generation]") {
  device_cases::kv_cache_generation_matches_recompute(1e-10, cpu{});
  device_cases::kv_cache_generation_matches_recompute(1e-10, reference{});
}

TEST_CASE("greedy KV-cache generation picks the recompute's argmax at every step", "[generation]") {
  SECTION("TokenFormer") { greedy_equals_recompute<TokenFormerLayer>(Architecture::tokenformer); }
  SECTION("Transformer") { greedy_equals_recompute<TransformerLayer>(Architecture::transformer); }
}

TEST_CASE("after prefill, a decode step allocates nothing", "[generation][allocation]") {
#if !TOKENFORMER_MALLOC_HOOKS
  WARN("not checked in this build: malloc cannot be counted (AddressSanitizer replaces it, or not glibc)");
#else
  // Sizes where the attention of a decode step runs heads in parallel (keys * C > 65536), and where
  // the FFN and the Transformer's MLP products are split by columns over the OpenMP team (N * K >=
  // 2^18: kernels/cpu/gemm.hpp).
  const auto check = [](auto& model, const char* what, WeightFormat format = WeightFormat::model) {
    INFO(what);
    Rng init(3);
    model.initialize(init);
    Generator generator(model, 2, 700, format);
    std::vector<std::int32_t> prompt(600);
    for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>((i * 7) % 61);
    generator.prefill({prompt, std::vector<std::int32_t>(prompt.begin(), prompt.begin() + 550)});
    std::int32_t next[2] = {1, 2};
    generator.step(next);  // not needed for the claim; a first step after prefill is counted below too
    allocations = 0;
    counting = true;
    for (int step = 0; step < 20; ++step) {
      const auto& logits = generator.step(next);
      next[0] = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.begin() + 61) - logits.begin());
      next[1] = static_cast<std::int32_t>(std::max_element(logits.begin() + 61, logits.end()) - logits.begin() - 61);
    }
    counting = false;
    CHECK(allocations.load() == 0);
    // And the first step right after a prefill, too.
    generator.reset();
    generator.prefill({prompt, prompt});
    allocations = 0;
    counting = true;
    generator.step(next);
    counting = false;
    CHECK(allocations.load() == 0);
  };
  // The counter must see allocations at all (a test that can fail).
  allocations = 0;
  counting = true;
  std::vector<double>* probe = new std::vector<double>(1000);
  counting = false;
  delete probe;
  REQUIRE(allocations.load() >= 2);

  ModelConfig wide = small_config(Architecture::tokenformer, 128, 4);
  wide.qkv_tokens = 256;
  wide.proj_tokens = 256;
  wide.ffn_tokens = 2048;
  LanguageModel<presets::Dynamic<float>, cpu> tokenformer(wide);
  check(tokenformer, "TokenFormer, hidden 128, FFN of 2048 tokens");
  check(tokenformer, "TokenFormer, hidden 128, FFN of 2048 tokens, int8 weights", WeightFormat::int8);
  ModelConfig transformer_config = small_config(Architecture::transformer, 128, 4);
  transformer_config.intermediate_size = 2048;
  LanguageModel<presets::Dynamic<float>, cpu, TransformerLayer> transformer(transformer_config);
  check(transformer, "Transformer, hidden 128, MLP of 2048");
#endif
}

TEST_CASE("sampling: seeds, top-k, top-p, stop tokens, and options out of range", "[generation][sampling]") {
  LanguageModel<presets::Dynamic<float>, cpu> model(small_config());
  Rng init(8);
  model.initialize(init);
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  Rng g(0);
  const auto reference_tokens = generate(model, {3, 4}, 12, g, greedy);

  SamplingOptions hot;
  hot.temperature = 1.5;
  Rng a(77), b(77), c(78);
  const auto x = generate(model, {3, 4}, 12, a, hot), y = generate(model, {3, 4}, 12, b, hot),
             z = generate(model, {3, 4}, 12, c, hot);
  CHECK(x == y);
  CHECK(x != z);  // 12 draws at temperature 1.5 over 61 tokens: equal by chance ~never

  SamplingOptions top1 = hot;
  top1.top_k = 1;
  Rng r1(5);
  CHECK(generate(model, {3, 4}, 12, r1, top1) == reference_tokens);
  SamplingOptions nucleus = hot;
  nucleus.top_p = 1e-9;  // only the most likely token is left
  Rng r2(5);
  CHECK(generate(model, {3, 4}, 12, r2, nucleus) == reference_tokens);

  // top_p keeps the smallest prefix reaching p: with logits (3, 2, 1, 0) at t = 1 the probabilities
  // are 0.644, 0.237, 0.087, 0.032; p = 0.85 keeps the first two, so token 2 and 3 never come.
  const std::vector<float> logits{3.f, 2.f, 1.f, 0.f};
  std::vector<std::pair<double, std::int32_t>> ranked;
  SamplingOptions p85;
  p85.temperature = 1.0;
  p85.top_p = 0.85;
  Rng r3(9);
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 4000; ++i) ++counts[sample_token(Span<const float>(logits), p85, r3, ranked)];
  CHECK(counts[2] == 0);
  CHECK(counts[3] == 0);
  CHECK(counts[0] > 2600);  // expected 4000 · 0.731 = 2924
  CHECK(counts[1] > 900);   // expected 4000 · 0.269 = 1076
  SamplingOptions p90 = p85;
  p90.top_p = 0.9;  // 0.644 + 0.237 = 0.881 < 0.9: the third token joins
  int third = 0;
  for (int i = 0; i < 4000; ++i) third += sample_token(Span<const float>(logits), p90, r3, ranked) == 2;
  CHECK(third > 200);  // expected 4000 · 0.087 / 0.968 = 360

  // A stop token ends its sequence (and only that one) right after it is produced.
  SamplingOptions stop = greedy;
  stop.stop_token = reference_tokens[4];
  Rng r4(0);
  const auto stopped = generate_batch(model, {{3, 4}, {3, 4, reference_tokens[0]}}, 12, r4, stop);
  const auto first_stop = std::find(reference_tokens.begin(), reference_tokens.end(), stop.stop_token);
  CHECK(stopped[0] == std::vector<std::int32_t>(reference_tokens.begin(), first_stop + 1));

  const auto refused = [&](SamplingOptions o, const char* words) {
    Rng rng(1);
    CHECK_THROWS_WITH(generate(model, {1}, 2, rng, o), Catch::Contains(words));
  };
  SamplingOptions o;
  o.top_p = 0.0;
  refused(o, "top_p");
  o.top_p = 1.5;
  refused(o, "top_p");
  o.top_p = std::nan("");
  refused(o, "top_p");
  Rng rng(1);
  CHECK_THROWS_WITH(generate(model, {1}, -1, rng), Catch::Contains("negative"));
  CHECK_THROWS_WITH(generate_batch(model, {}, 2, rng), Catch::Contains("at least one prompt"));
  CHECK_THROWS_WITH(generate_batch(model, {{1}, {}}, 2, rng), Catch::Contains("non-empty"));
}

TEST_CASE("the KV cache refuses what it cannot do, with clear errors", "[generation][errors]") {
  LanguageModel<presets::Dynamic<float>, cpu> model(small_config());
  Rng init(8);
  model.initialize(init);
  CHECK_THROWS_WITH((Generator(model, 0, 8)), Catch::Contains("rows >= 1"));
  CHECK_THROWS_WITH((Generator(model, 1, 0)), Catch::Contains("capacity >= 1"));
  CHECK_THROWS_WITH((Generator(model, 1 << 20, 1 << 20)), Catch::Contains("too large"));
  {
    Generator generator(model, 2, 6);
    CHECK_THROWS_WITH(generator.prefill({{1, 2}, {3}, {4}}), Catch::Contains("1 to 2 prompts"));
    CHECK_THROWS_WITH(generator.prefill({{1, 2}, {}}), Catch::Contains("empty"));
    generator.prefill({{1, 2, 3, 4, 5}, {1}});
    const std::int32_t next[2] = {1, 1};
    generator.step(next);
    CHECK_THROWS_WITH(generator.step(next), Catch::Contains("KV cache full"));
    CHECK(generator.length(0) == 6);
    // A cached forward is inference only.
    CHECK(model.layers[0].attention.has_cache());
  }
  // The generator detaches its cache: training works again, and a copy never shares a cache.
  CHECK_FALSE(model.layers[0].attention.has_cache());
  {
    Generator generator(model, 1, 4);
    LanguageModel<presets::Dynamic<float>, cpu> copy(model);
    CHECK_FALSE(copy.layers[0].attention.has_cache());
    generator.prefill({{1, 2}});
    const std::vector<std::int32_t> tokens{1, 2}, targets{2, 3};
    // While attached, forwards are cached inference forwards: no backward.
    CHECK_THROWS_WITH(model.forward_backward(tokens, targets, 1, 2),
                      Catch::Contains("backward after a KV-cache (inference) forward"));
  }
  const std::vector<std::int32_t> tokens{1, 2}, targets{2, 3};
  CHECK(std::isfinite(model.forward_backward(tokens, targets, 1, 2)));
}

TEST_CASE("FIT decoders generate by recomputing (no KV cache), greedy equal to the argmax", "[generation][fit]") {
  ModelConfig config = small_config();
  config.architecture = Architecture::fit;
  config.fit.layers = "(1)1(1)";
  config.fit.group_size = 4;
  config.fit.latents_per_group = 1;
  config.fit.latent_size = 32;
  config.fit.latent_heads = 2;
  config.fit.max_groups = 8;
  config.fit.causal = true;
  config.num_layers = 5;  // local, read, global, write, local
  LanguageModel<presets::Dynamic<float>, cpu, FitBody> model(config);
  Rng init(2);
  model.initialize(init);
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  Rng rng(0);
  const std::vector<std::int32_t> prompt{1, 2, 3, 4};
  const auto produced = generate(model, prompt, 4, rng, greedy);
  REQUIRE(produced.size() == 4);
  std::vector<std::int32_t> sequence = prompt;
  for (const std::int32_t token : produced) {
    CHECK(token == recompute_argmax(model, sequence));
    sequence.push_back(token);
  }
}

TEST_CASE("tokenformer-cli generate on a hub directory and a .bin file equals the library's greedy tokens",
          "[generation][cli]") {
#ifdef TOKENFORMER_CLI
  const std::string cli = TOKENFORMER_CLI, hub = std::string(TOKENFORMER_TEST_DATA_DIR) + "/../torch";
  io_test::TempDir dir;
  const std::string d = dir.str();
  const auto run = [](const std::string& command) { return std::system(command.c_str()); };
  auto model = io::load_model(hub);  // config.json + model.safetensors
  Rng rng(0);
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  const auto expected = generate(model, {1, 2, 3}, 6, rng, greedy);
  std::string ids;
  for (std::size_t i = 0; i < expected.size(); ++i) ids += (i ? "," : "") + std::to_string(expected[i]);
  REQUIRE(run(cli + " generate --model " + hub + " --tokens 1,2,3 --max-new-tokens 6 --temperature 0 --ids > " + d +
              "/a.txt 2>" + d + "/a.err") == 0);
  CHECK(io::read_text_file(d + "/a.txt") == ids + "\n");
  CHECK(io::read_text_file(d + "/a.err").find("decode: 5 tokens") != std::string::npos);
  REQUIRE(run(cli + " generate --config " + hub + "/config.json --weights " + hub +
              "/model_f32.bin --tokens 1,2,3 --max-new-tokens 6 --temperature 0 --ids > " + d + "/b.txt 2>/dev/null") ==
          0);
  CHECK(io::read_text_file(d + "/b.txt") == ids + "\n");
  // convert writes the .bin as safetensors with the same values.
  REQUIRE(run(cli + " convert --weights " + hub + "/model_f32.bin --out " + d + "/c.safetensors 2>/dev/null") == 0);
  auto converted = io::load_model(hub + "/config.json", d + "/c.safetensors");
  std::vector<float> a, b;
  model.for_each_parameter([&](const std::string&, Parameter<float>& p) {
    const auto v = device_cases::download(p.value);
    a.insert(a.end(), v.begin(), v.end());
  });
  converted.for_each_parameter([&](const std::string&, Parameter<float>& p) {
    const auto v = device_cases::download(p.value);
    b.insert(b.end(), v.begin(), v.end());
  });
  CHECK(a == b);
  // Usage errors exit with 2, other errors with 1.
  CHECK(WEXITSTATUS(run(cli + " generate --model " + hub + " --max-new-tokens 3 >/dev/null 2>&1")) == 2);
  CHECK(WEXITSTATUS(
            run(cli + " generate --model " + hub + " --tokens 1 --prompt x --max-new-tokens 3 >/dev/null 2>&1")) == 2);
  CHECK(WEXITSTATUS(run(cli + " generate --model " + d + " --tokens 1 --max-new-tokens 3 >/dev/null 2>&1")) == 1);
  CHECK(WEXITSTATUS(run(cli + " generate --model " + hub + " --tokens 1,999 --max-new-tokens 3 >/dev/null 2>&1")) == 1);
  CHECK(WEXITSTATUS(
            run(cli + " generate --model " + hub + " --tokens 1 --max-new-tokens 3 --top-p 1.5 >/dev/null 2>&1")) == 2);
#else
  WARN("tokenformer-cli is not built; skipped");
#endif
}

TEST_CASE("tokenformer-cli refuses weights holding NaN wherever it loads them, naming the tensor",
          "[generation][cli]") {
#ifdef TOKENFORMER_CLI
  const std::string cli = TOKENFORMER_CLI, hub = std::string(TOKENFORMER_TEST_DATA_DIR) + "/../torch";
  io_test::TempDir dir;
  const std::string d = dir.str(), weights = d + "/nan.safetensors", config = hub + "/config.json";
  const auto run = [](const std::string& command) { return WEXITSTATUS(std::system(command.c_str())); };
  auto model = io::load_model(hub);
  model.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
    if (name == "sequential.3.attention.proj.key_param_tokens") p.value.data()[7] = std::nanf("");
  });
  io::save_weights(model, weights);
  const std::string named = "tensor 'sequential.3.attention.proj.key_param_tokens' element 7";
  const std::string model_options = " --config " + config + " --weights " + weights;
  for (const std::string& command :
       {"logits" + model_options + " --tokens 1,2,3 --out " + d + "/l.f32",
        "grad" + model_options + " --tokens 1,2,3 --out " + d + "/g.safetensors",
        "generate" + model_options + " --tokens 1,2,3 --max-new-tokens 2 --temperature 0 --ids",
        "grow" + model_options + " --ffn +2 --out " + d + "/grown.safetensors",
        "transfer --from-config " + config + " --from-weights " + weights + " --to-config " + config + " --out " + d +
            "/t.safetensors",
        "convert --weights " + weights + " --out " + d + "/c.safetensors"}) {
    INFO(command);
    CHECK(run(cli + " " + command + " > " + d + "/out.txt 2> " + d + "/err.txt") == 1);
    const std::string err = io::read_text_file(d + "/err.txt");
    CHECK_THAT(err, Catch::Contains("numeric error: " + weights + ": " + named) && Catch::Contains("is nan"));
  }
  for (const char* written : {"l.f32", "g.safetensors", "grown.safetensors", "t.safetensors", "c.safetensors"})
    CHECK(!std::filesystem::exists(d + "/" + written));
  // The library itself loads them unless asked to check.
  CHECK(std::isnan(io::load_model(config, weights).layers[1].attention.proj.key_tokens().data()[7]));
#else
  WARN("tokenformer-cli is not built; skipped");
#endif
}

TEST_CASE("Pattention with int8 copies computes the dequantized weights' forward, and refuses backward",
          "[generation][int8]") {
  const index_t din = 40, dout = 72, P = 20, M = 5;  // keys: a block and a short one; values: two and a short one
  Pattention<float> layer(din, dout, P, Normalization::l2_norm_gelu);
  Rng rng(9);
  layer.initialize(rng, 0.5, 0.5);
  const auto keys = kernels::Q8Matrix::quantize(layer.key_tokens().data(), P, din);
  const auto values = kernels::Q8Matrix::quantize(layer.value_tokens().data(), P, dout);
  const auto dequantized = [](const kernels::Q8Matrix& m) {
    std::vector<float> out(static_cast<std::size_t>(m.rows * m.cols));
    for (index_t r = 0; r < m.rows; ++r)
      for (index_t i = 0; i < m.cols; ++i)
        out[static_cast<std::size_t>(r * m.cols + i)] = m.scales[static_cast<std::size_t>(r * m.blocks() + i / 32)] *
                                                        m.values[static_cast<std::size_t>(r * m.cols + i)];
    return out;
  };
  Pattention<float> reference(din, dout, P, Normalization::l2_norm_gelu);
  reference.key_parameter().value.copy_from_host(dequantized(keys).data());
  reference.value_parameter().value.copy_from_host(dequantized(values).data());
  Tensor<float> x(Shape{M, din}), expected(Shape{M, dout}), out(Shape{M, dout});
  std::vector<float> host(static_cast<std::size_t>(M * din));
  for (auto& v : host) v = static_cast<float>(rng.normal(0.0, 1.0));
  x.copy_from_host(host.data());
  reference.forward(expected, x);

  layer.attach_int8(&keys, &values);
  CHECK(layer.has_int8());
  CHECK_FALSE(Pattention<float>(layer).has_int8());  // a copy does not inherit the attacher's copies
  layer.forward(out, x);
  double worst = 0.0, scale = 0.0;
  for (index_t i = 0; i < M * dout; ++i) {
    worst = std::max(worst, static_cast<double>(std::fabs(out.data()[i] - expected.data()[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(expected.data()[i])));
  }
  INFO("largest output " << scale << ", largest difference " << worst);
  CHECK(scale > 0.1);
  CHECK(worst <= 1e-5 * scale);  // the same dequantized weights: only the summation order differs

  layer.key_parameter().enable_training();
  layer.value_parameter().enable_training();
  Tensor<float> d_in(Shape{M, din});
  CHECK_THROWS_WITH(layer.backward(d_in, out, x), Catch::Contains("int8"));
  layer.detach_int8();
  layer.forward(out, x);
  CHECK_NOTHROW(layer.backward(d_in, out, x));

  CHECK_THROWS_WITH(layer.attach_int8(&values, &keys), Catch::Contains("other shapes"));
  CHECK_THROWS_WITH(layer.attach_int8(nullptr, &values), Catch::Contains("needs keys and values"));
  layer.attach_int8(&keys, &values);
  layer.append_tokens(4);
  CHECK_THROWS_WITH(layer.forward(out, x), Catch::Contains("grown while attached"));
  Pattention<double> wide(din, dout, P, Normalization::l2_norm_gelu);
  CHECK_THROWS_WITH(wide.attach_int8(&keys, &values), Catch::Contains("float Pattention on the CPU"));
}

TEST_CASE("int8 decode (WeightFormat::int8): near the float logits, and the model is float again after",
          "[generation][int8]") {
  LanguageModel<presets::Dynamic<float>, cpu> model(small_config());
  Rng init(5);
  model.initialize(init);
  const std::vector<std::int32_t> prompt{1, 2, 3, 4, 5, 6, 7};
  std::vector<float> float_logits, int8_logits, float_step, int8_step;
  const std::int32_t next[] = {11};
  {
    Generator generator(model, 1, 32);
    CHECK(generator.int8_bytes() == 0);
    float_logits = generator.prefill({prompt});
    float_step = generator.step(next);
  }
  {
    Generator generator(model, 1, 32, WeightFormat::int8);
    CHECK(generator.int8_bytes() > 0);
    int8_logits = generator.prefill({prompt});
    int8_step = generator.step(next);
  }
  for (const auto& [a, b] : {std::make_pair(&float_logits, &int8_logits), std::make_pair(&float_step, &int8_step)}) {
    double worst = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < a->size(); ++i) {
      worst = std::max(worst, static_cast<double>(std::fabs((*a)[i] - (*b)[i])));
      scale = std::max(scale, static_cast<double>(std::fabs((*a)[i])));
    }
    INFO("largest logit " << scale << ", largest difference " << worst);
    CHECK(worst > 0.0);            // int8 was used
    CHECK(worst <= 0.05 * scale);  // and is close (example 07 measures the loss)
  }
  {
    Generator generator(model, 1, 32);
    CHECK(generator.prefill({prompt}) == float_logits);  // detached: the float weights again, bit for bit
  }
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  greedy.weights = WeightFormat::int8;
  Rng rng(1);
  CHECK(generate(model, prompt, 8, rng, greedy).size() == 8);
  LanguageModel<presets::Dynamic<double>, cpu> twin(small_config());
  CHECK_THROWS_WITH(Generator(twin, 1, 8, WeightFormat::int8), Catch::Contains("float model on the CPU"));
  {
    Generator other(model, 1, 8, WeightFormat::int8);
    CHECK_THROWS_WITH(Generator(model, 1, 8), Catch::Contains("in use by a Generator with int8 weights"));
  }
  // A generator that fails after attaching its caches and some int8 copies takes them all back, and
  // leaves alone what it did not attach: here the last FFN already has copies, so attaching fails there.
  Pattention<float>& last = model.layers.back().ffn;
  const auto keys = kernels::Q8Matrix::quantize(last.key_tokens().data(), last.tokens(), last.input_features());
  const auto values = kernels::Q8Matrix::quantize(last.value_tokens().data(), last.tokens(), last.output_features());
  last.attach_int8(&keys, &values);
  CHECK_THROWS_WITH(Generator(model, 1, 8, WeightFormat::int8), Catch::Contains("attached already"));
  CHECK_FALSE(model.layers.front().attention.has_cache());
  CHECK_FALSE(model.layers.front().attention.query.has_int8());
  CHECK_FALSE(model.has_int8_head());
  CHECK(last.has_int8());
  last.detach_int8();
  // A NaN weight: refused when quantizing, after the caches were attached; nothing stays attached.
  std::vector<float> host(static_cast<std::size_t>(last.value_tokens().size()));
  last.value_tokens().copy_to_host(host.data());
  host[5] = std::nanf("");
  last.value_parameter().value.copy_from_host(host.data());
  CHECK_THROWS_WITH(Generator(model, 1, 8, WeightFormat::int8), Catch::Contains("non-finite value at element 5"));
  CHECK_FALSE(model.layers.front().attention.has_cache());
  CHECK_FALSE(model.layers.front().attention.query.has_int8());
}

}  // namespace test_generation

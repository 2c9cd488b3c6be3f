// Layers against compositions of the plain reference kernels (an independent path: double
// accumulation, no fusion), plus shape errors and official parameter names.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "device_cases.hpp"
#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/kernels/reference.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/layers/self_attention.hpp"
#include "tokenformer/layers/tokenformer_layer.hpp"
#include "tokenformer/model/language_model.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_layers {

using namespace tokenformer;
using test_util::max_scaled_diff;
using test_util::random_vector;

namespace {

template <class T>
std::vector<T> to_vector(const Tensor<T>& t) {
  return std::vector<T>(t.data(), t.data() + t.size());
}

/// Θ(X·Kᵀ)·V with the reference kernels, in double.
std::vector<double> reference_pattention(const std::vector<double>& x, const Pattention<double>& p, index_t M) {
  const index_t P = p.tokens(), din = p.input_features(), dout = p.output_features();
  std::vector<double> scores(static_cast<std::size_t>(M * P)), out(static_cast<std::size_t>(M * dout));
  kernels::reference::gemm(scores.data(), P, x.data(), din, false, p.key_tokens().data(), din, true, M, P, din);
  kernels::reference::pattention_norm_forward(scores.data(), scores.data(), M, P, p.normalization(), p.scale_tokens());
  kernels::reference::gemm(out.data(), dout, scores.data(), P, false, p.value_tokens().data(), dout, false, M, dout, P);
  return out;
}

void randomize(Pattention<double>& p, Rng& rng) { p.initialize(rng, 0.5, 0.3); }

struct TwoLayers : presets::Tiny {
  static constexpr index_t num_layers = 2;
};

}  // namespace

TEST_CASE("Pattention forward equals Θ(X·Kᵀ)·V computed by the reference kernels", "[layers][pattention]") {
  Rng rng(1);
  for (auto kind : all_normalizations) {
    for (auto [M, din, dout, P] : {std::array<index_t, 4>{1, 1, 1, 1}, {5, 7, 3, 11}, {33, 64, 48, 96}}) {
      Pattention<double> p(din, dout, P, kind);
      randomize(p, rng);
      const auto x = random_vector<double>(static_cast<std::size_t>(M * din), rng.next());
      Tensor<double> in(Shape{M, din}), out(Shape{M, dout});
      in.copy_from_host(x.data());
      p.forward(out, in);
      INFO(to_string(kind) << " M=" << M << " P=" << P);
      CHECK(max_scaled_diff(to_vector(out), reference_pattention(x, p, M)) <= 1e-12);

      // accumulate adds to what is there.
      Tensor<double> acc(Shape{M, dout});
      const auto base = random_vector<double>(static_cast<std::size_t>(M * dout), rng.next());
      acc.copy_from_host(base.data());
      p.forward(acc, in, /*accumulate=*/true);
      auto expected = reference_pattention(x, p, M);
      for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += base[i];
      CHECK(max_scaled_diff(to_vector(acc), expected) <= 1e-12);
    }
  }
}

TEST_CASE("Pattention rejects wrong shapes and bad construction with clear errors", "[layers][pattention]") {
  Pattention<float> p(8, 4, 6, Normalization::l2_norm_gelu);
  Tensor<float> in(Shape{3, 7}), out(Shape{3, 4});
  CHECK_THROWS_WITH(p.forward(out, in), Catch::Contains("Pattention input has 7 features, expected 8"));
  Tensor<float> in_ok(Shape{3, 8}), out_bad(Shape{2, 4});
  CHECK_THROWS_WITH(p.forward(out_bad, in_ok), Catch::Contains("Pattention output has shape [2, 4], expected [3, 4]"));
  CHECK_THROWS_AS(Pattention<float>(8, 4, 0, Normalization::softmax), config_error);
  CHECK_THROWS_WITH(Pattention<float>(8, 4, 2, static_cast<Normalization>(7)),
                    Catch::Contains("Pattention: unknown normalization value 7"));
}

TEST_CASE("Appending zero tokens with a pinned scale leaves a Pattention's output unchanged", "[layers][pattention]") {
  Rng rng(2);
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm}) {
    Pattention<float> p(16, 12, 10, kind);
    p.initialize(rng, 0.5, 0.3);
    const auto x = random_vector<float>(9 * 16, 3);
    Tensor<float> in(Shape{9, 16}), before(Shape{9, 12}), after(Shape{9, 12});
    in.copy_from_host(x.data());
    p.forward(before, in);
    p.pin_scale_tokens(p.tokens());
    p.append_tokens(15);  // 15 new zero tokens
    p.forward(after, in);
    CHECK(test_util::max_abs_diff(to_vector(after), to_vector(before)) <= 1e-6);
    p.pin_scale_tokens(0);  // official √n semantics: now the output changes
    p.forward(after, in);
    CHECK(test_util::max_abs_diff(to_vector(after), to_vector(before)) > 1e-3);
  }
}

TEST_CASE("SelfAttention equals Pattentions + rotary + causal attention from the reference kernels",
          "[layers][attention]") {
  Rng rng(4);
  const index_t B = 2, T = 9, C = 24, H = 3, D = 8;
  for (double rotary_pct : {0.25, 1.0}) {
    SelfAttention<double> attn(C, H, 13, 7, rotary_pct, Normalization::l2_norm_gelu);
    for (auto* p : {&attn.query, &attn.key, &attn.value, &attn.proj}) randomize(*p, rng);
    const auto x = random_vector<double>(static_cast<std::size_t>(B * T * C), rng.next());
    Tensor<double> in(Shape{B * T, C}), out(Shape{B * T, C});
    in.copy_from_host(x.data());
    attn.forward(out, in, B, T);

    auto q = reference_pattention(x, attn.query, B * T), k = reference_pattention(x, attn.key, B * T),
         v = reference_pattention(x, attn.value, B * T);
    const index_t rot = rotary_dims_of(D, rotary_pct);
    kernels::reference::rotary_forward(q.data(), B, T, H, D, rot, 10000.0, 0);
    kernels::reference::rotary_forward(k.data(), B, T, H, D, rot, 10000.0, 0);
    std::vector<double> ctx(q.size());
    kernels::reference::attention_forward(ctx.data(), nullptr, q.data(), k.data(), v.data(),
                                          kernels::AttentionShape::causal(B, T, H, D));
    INFO("rotary_pct " << rotary_pct);
    CHECK(max_scaled_diff(to_vector(out), reference_pattention(ctx, attn.proj, B * T)) <= 1e-12);
  }
}

TEST_CASE("TokenFormerLayer equals x + attn(LN(x)), then + ffn(LN(·)), from reference kernels", "[layers][block]") {
  Rng rng(5);
  ModelConfig config = ModelConfig::from<presets::Tiny>();
  config.hidden_size = 32;
  config.num_heads = 2;
  config.qkv_tokens = 11;
  config.proj_tokens = 5;
  config.ffn_tokens = 40;
  config.normalization = Normalization::softmax;
  TokenFormerLayer<double> layer(config);
  for (auto* p :
       {&layer.attention.query, &layer.attention.key, &layer.attention.value, &layer.attention.proj, &layer.ffn})
    randomize(*p, rng);
  const index_t B = 1, T = 7, C = 32, M = B * T;
  const auto x = random_vector<double>(static_cast<std::size_t>(M * C), rng.next(), 2.0);
  Tensor<double> in(Shape{M, C}), out(Shape{M, C});
  in.copy_from_host(x.data());
  layer.forward(out, in, B, T);

  // Reference: h = x + attn(LN(x)); out = h + ffn(LN(h)), attn assembled from reference kernels.
  const auto attention = [&](const std::vector<double>& a) {
    auto q = reference_pattention(a, layer.attention.query, M), k = reference_pattention(a, layer.attention.key, M),
         v = reference_pattention(a, layer.attention.value, M);
    kernels::reference::rotary_forward(q.data(), B, T, 2, 16, config.rotary_dims(), 10000.0, 0);
    kernels::reference::rotary_forward(k.data(), B, T, 2, 16, config.rotary_dims(), 10000.0, 0);
    std::vector<double> ctx(q.size());
    kernels::reference::attention_forward(ctx.data(), nullptr, q.data(), k.data(), v.data(),
                                          kernels::AttentionShape::causal(B, T, 2, 16));
    return reference_pattention(ctx, layer.attention.proj, M);
  };
  std::vector<double> normed(x.size()), h(x.size()), expected(x.size());
  kernels::reference::layer_norm_forward<double>(normed.data(), nullptr, nullptr, x.data(), nullptr, nullptr, M, C,
                                                 1e-5);
  const auto a = attention(normed);
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = x[i] + a[i];
  kernels::reference::layer_norm_forward<double>(normed.data(), nullptr, nullptr, h.data(), nullptr, nullptr, M, C,
                                                 1e-5);
  const auto f = reference_pattention(normed, layer.ffn, M);
  for (std::size_t i = 0; i < h.size(); ++i) expected[i] = h[i] + f[i];
  CHECK(max_scaled_diff(to_vector(out), expected) <= 1e-12);

  // In place (out aliases x) gives the same result.
  layer.forward(in, in, B, T);
  CHECK(to_vector(in) == to_vector(out));
  Tensor<double> wrong(Shape{M + 1, C});
  CHECK_THROWS_WITH(layer.forward(wrong, in, B, T), Catch::Contains("TokenFormerLayer output has shape [8, 32]"));
}

TEST_CASE("LanguageModel visits its parameters under the official names, in order", "[model][names]") {
  LanguageModel<TwoLayers> model;
  std::vector<std::string> names;
  index_t count = 0;
  model.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
    names.push_back(name + " " + p.shape().str());
    count += p.size();
  });
  std::vector<std::string> expected{"sequential.0.word_embeddings.weight [257, 64]"};
  for (int layer : {2, 3}) {
    const std::string p = "sequential." + std::to_string(layer) + ".";
    for (const char* proj : {"query", "key", "value"}) {
      expected.push_back(p + "attention." + proj + ".key_param_tokens [64, 64]");
      expected.push_back(p + "attention." + proj + ".value_param_tokens [64, 64]");
    }
    expected.push_back(p + "attention.proj.key_param_tokens [64, 64]");
    expected.push_back(p + "attention.proj.value_param_tokens [64, 64]");
    expected.push_back(p + "mlp.key_param_tokens [256, 64]");
    expected.push_back(p + "mlp.value_param_tokens [256, 64]");
  }
  expected.push_back("sequential.5.norm.weight [64]");
  expected.push_back("sequential.5.norm.bias [64]");
  CHECK(names == expected);
  CHECK(count == model.config().parameter_count());
  CHECK(model.parameter_count() == count);
}

TEST_CASE("A model of a static config rejects contradicting run-time sizes", "[model][config]") {
  ModelConfig c = ModelConfig::from<presets::Tiny>();
  c.num_layers = 3;
  CHECK_THROWS_WITH(LanguageModel<presets::Tiny>(c), Catch::Contains("num_layers is fixed to 2"));
  c = ModelConfig::from<presets::Tiny>();
  c.normalization = Normalization::softmax;
  CHECK_THROWS_WITH(LanguageModel<presets::Tiny>(c), Catch::Contains("normalization is fixed to l2_norm_gelu"));
  CHECK_NOTHROW(LanguageModel<presets::Dynamic<float>>(c));
}

TEST_CASE("initialize draws the official distributions", "[model][init]") {
  LanguageModel<presets::Small> model;
  Rng rng(9);
  model.initialize(rng);
  const auto stddev = [](const Tensor<float>& t) {
    double s = 0, s2 = 0;
    for (index_t i = 0; i < t.size(); ++i) {
      s += t[i];
      s2 += static_cast<double>(t[i]) * t[i];
    }
    const double n = static_cast<double>(t.size());
    return std::sqrt(s2 / n - (s / n) * (s / n));
  };
  CHECK(stddev(model.word_embeddings.value) == Approx(0.02).epsilon(0.02));
  CHECK(stddev(model.layers[0].ffn.key_tokens()) == Approx(0.02).epsilon(0.02));
  // wang init: 2 / L / sqrt(C) = 2 / 4 / 16
  CHECK(stddev(model.layers[1].attention.proj.value_tokens()) == Approx(2.0 / 4.0 / 16.0).epsilon(0.03));
  CHECK(model.final_norm_weight.value[0] == 1.0f);
  CHECK(model.final_norm_bias.value[0] == 0.0f);
}

TEST_CASE("the language model on the cpu matches the reference device: logits, loss, gradients, AdamW steps",
          "[layers][model][devices]") {
  // LanguageModel<Config, reference> runs every op on the plain reference kernels; the same template
  // runs the cuda device in tests/cuda/test_cuda.cu.
  device_cases::model_matches_reference(1e-10, cpu{});
}

TEST_CASE("the plain Transformer language model on the cpu matches the reference device",
          "[layers][model][devices][transformer]") {
  device_cases::transformer_model_matches_reference(1e-10, cpu{});
}

TEST_CASE("the FIT language model on the cpu matches the reference device (decoder, encoder, padded groups)",
          "[layers][model][devices][fit]") {
  device_cases::fit_model_matches_reference(1e-10, cpu{});
}

}  // namespace test_layers

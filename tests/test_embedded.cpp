// The freestanding static model (embedded/static_model.hpp) and its export (embedded/export.hpp):
// its math against libm, its logits against LanguageModel's (float and int8), no allocation after
// construction, errors through the handler, and the exported header.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "malloc_hooks.hpp"
#include "tokenformer/embedded/export.hpp"
#include "tokenformer/embedded/static_model.hpp"
#include "tokenformer/tokenformer.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_embedded {

using namespace tokenformer;
namespace emb = tokenformer::embedded;

namespace {

struct SmallConfig {
  static constexpr index_t num_layers = 2, hidden_size = 32, num_heads = 4;
  static constexpr index_t qkv_tokens = 24, proj_tokens = 16, ffn_tokens = 48;
  static constexpr index_t vocab_size = 61, max_context = 24;
  static constexpr double rotary_pct = 0.25, layernorm_epsilon = 1e-5;
  static constexpr Normalization normalization = Normalization::l2_norm_gelu;
};
struct GeluL2Config : SmallConfig {
  static constexpr Normalization normalization = Normalization::gelu_l2_norm;
  static constexpr double rotary_pct = 0.5, rotary_base = 500.0;
  static constexpr index_t qkv_scale_tokens = 16, ffn_scale_tokens = 40;  // pinned as after growth
};
struct SoftmaxConfig : SmallConfig {
  static constexpr Normalization normalization = Normalization::softmax;
  static constexpr index_t hidden_size = 40, num_heads = 2;  // 40 columns: a short last q8 block
  static constexpr double rotary_pct = 1.0;
};

using HeapModel = LanguageModel<presets::Dynamic<float>>;

// A LanguageModel of Config: the official initialization times `scale`, plus noise on every value
// (so that the norms' weights and biases matter too).
template <class Config>
HeapModel random_model(std::uint64_t seed, float scale = 1.0f) {
  HeapModel model(emb::model_config<Config>());
  Rng rng(seed);
  model.initialize(rng);
  model.for_each_parameter([&](const std::string&, Parameter<float, cpu>& p) {
    std::vector<float> host(static_cast<std::size_t>(p.value.size()));
    p.value.copy_to_host(host.data());
    for (auto& x : host) x = x * scale + static_cast<float>(rng.normal(0.0, 0.02));
    p.value.copy_from_host(host.data());
  });
  return model;
}

// The same model in double precision.
LanguageModel<presets::Dynamic<double>> in_double(HeapModel& model) {
  LanguageModel<presets::Dynamic<double>> twin(model.config());
  std::map<std::string, std::vector<double>> values;
  model.for_each_parameter([&](const std::string& name, Parameter<float, cpu>& p) {
    std::vector<float> host(static_cast<std::size_t>(p.value.size()));
    p.value.copy_to_host(host.data());
    values[name].assign(host.begin(), host.end());
  });
  twin.for_each_parameter(
      [&](const std::string& name, Parameter<double, cpu>& p) { p.value.copy_from_host(values.at(name).data()); });
  return twin;
}

std::vector<std::int32_t> some_tokens(index_t count, index_t vocab) {
  std::vector<std::int32_t> tokens;
  for (index_t i = 0; i < count; ++i) tokens.push_back(static_cast<std::int32_t>((i * 7 + 3) % vocab));
  return tokens;
}

// Steps the static model through `tokens` and returns every position's logits [T, V].
template <class Config, class Storage>
std::vector<float> static_logits(HeapModel& model, const std::vector<std::int32_t>& tokens) {
  emb::OwnedWeights<Config, Storage> weights(model);
  static emb::Arena<Config> arena;
  emb::StaticModel<Config, Storage> tiny(weights.weights(), arena);
  std::vector<float> all;
  for (std::int32_t token : tokens) {
    const float* logits = tiny.step(token);
    REQUIRE(logits != nullptr);
    all.insert(all.end(), logits, logits + Config::vocab_size);
  }
  return all;
}

template <class Model>
std::vector<double> heap_logits(Model& model, const std::vector<std::int32_t>& tokens) {
  const auto logits = model.forward(tokens, 1, static_cast<index_t>(tokens.size()));
  std::vector<typename Model::scalar> host(static_cast<std::size_t>(logits.size()));
  logits.copy_to_host(host.data());
  return std::vector<double>(host.begin(), host.end());
}

template <class A, class B>
double largest_difference(const std::vector<A>& a, const std::vector<B>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return worst;
}

double largest_magnitude(const std::vector<double>& a) {
  double m = 0.0;
  for (double x : a) m = std::max(m, std::fabs(x));
  return m;
}

std::string last_error;
void remember_error(const char* message) { last_error = message; }

}  // namespace

TEST_CASE("embedded math: exp and gelu against libm in double", "[embedded]") {
  double worst_exp = 0.0;
  for (float x = -87.0f; x < 88.7f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    worst_exp = std::max(worst_exp, std::fabs(emb::math::exp(x) - want) / want);
  }
  CHECK(worst_exp < 2.5e-7);  // 2 float ulp
  CHECK(emb::math::exp(-100.0f) == 0.0f);
  CHECK(std::isinf(emb::math::exp(100.0f)));
  CHECK(emb::math::exp(0.0f) == 1.0f);
  double worst_gelu = 0.0;
  for (float x = -9.0f; x < 9.0f; x += 0.0011f) {
    const double want = 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    worst_gelu = std::max(worst_gelu, std::fabs(emb::math::gelu(x) - want) / std::max(1.0, std::fabs(want)));
  }
  CHECK(worst_gelu < 2.5e-7);
}

TEST_CASE("embedded rotary table: the compiler's cos and sin equal libm's within a float ulp", "[embedded]") {
  using d = emb::Dims<GeluL2Config>;
  const auto& table = emb::rotary_table<GeluL2Config>;
  REQUIRE(d::half == 2);
  for (index_t p = 0; p < d::context; ++p)
    for (index_t j = 0; j < d::half; ++j) {
      const double theta = std::pow(500.0, -2.0 * static_cast<double>(j) / static_cast<double>(d::R));
      const double angle = static_cast<double>(p) * theta;
      CHECK(std::fabs(table.cos[p * d::half + j] - std::cos(angle)) <= 1.2e-7);
      CHECK(std::fabs(table.sin[p * d::half + j] - std::sin(angle)) <= 1.2e-7);
    }
}

TEMPLATE_TEST_CASE("static model (float) gives LanguageModel's logits at every position", "[embedded]", SmallConfig,
                   GeluL2Config, SoftmaxConfig) {
  const auto tokens = some_tokens(TestType::max_context, TestType::vocab_size);
  SECTION("official initialization: within 1e-6 of the heap model") {
    HeapModel model = random_model<TestType>(11);
    const auto expected = heap_logits(model, tokens);
    const double worst = largest_difference(static_logits<TestType, emb::f32>(model, tokens), expected);
    INFO("largest |logit| " << largest_magnitude(expected) << ", largest difference " << worst);
    CHECK(largest_magnitude(expected) > 0.1);
    CHECK(worst <= 1e-6 * std::max(1.0, largest_magnitude(expected)));
  }
  SECTION("weights 3x larger (logits of several units): no further from float64 than the heap model") {
    HeapModel model = random_model<TestType>(11, 3.0f);
    auto twin = in_double(model);
    const auto exact = heap_logits(twin, tokens);
    const double heap_error = largest_difference(heap_logits(model, tokens), exact);
    const double static_error = largest_difference(static_logits<TestType, emb::f32>(model, tokens), exact);
    INFO("largest |logit| " << largest_magnitude(exact) << ", heap float error " << heap_error << ", static error "
                            << static_error);
    CHECK(largest_magnitude(exact) > 2.0);
    CHECK(static_error <= 2.0 * heap_error);
  }
}

TEMPLATE_TEST_CASE("static model (int8 Q8_0) stays close to the float logits", "[embedded][int8]", SmallConfig,
                   SoftmaxConfig) {
  HeapModel model = random_model<TestType>(12);
  const auto tokens = some_tokens(TestType::max_context, TestType::vocab_size);
  const auto expected = heap_logits(model, tokens);
  const double worst = largest_difference(static_logits<TestType, emb::q8>(model, tokens), expected);
  INFO("largest |logit| " << largest_magnitude(expected) << ", largest difference " << worst);
  CHECK(worst > 0.0);                                  // it is quantized
  CHECK(worst <= 0.05 * largest_magnitude(expected));  // and close: example 07 measures the loss
}

TEST_CASE("quantize_q8: blocks of 32 with their own scales, errors within half a step", "[embedded][int8]") {
  const index_t rows = 3, cols = 40;  // two blocks per row, the second of 8 values
  std::vector<float> x(static_cast<std::size_t>(rows * cols));
  Rng rng(5);
  for (auto& v : x) v = static_cast<float>(rng.normal(0.0, 1.0));
  for (index_t i = 32; i < 40; ++i) x[static_cast<std::size_t>(cols + i)] = 0.0f;  // an all-zero block
  x[5] = 100.0f;                                                                   // an outlier in row 0, block 0
  std::vector<std::int8_t> q(x.size());
  std::vector<float> scales(static_cast<std::size_t>(rows * 2));
  emb::quantize_q8(x.data(), rows, cols, q.data(), scales.data());
  CHECK(scales[0] == Approx(100.0f / 127.0f));
  CHECK(q[5] == 127);
  CHECK(scales[3] == 0.0f);
  for (index_t r = 0; r < rows; ++r)
    for (index_t i = 0; i < cols; ++i) {
      const float s = scales[static_cast<std::size_t>(r * 2 + i / 32)];
      const float back = s * static_cast<float>(q[static_cast<std::size_t>(r * cols + i)]);
      CHECK(std::fabs(back - x[static_cast<std::size_t>(r * cols + i)]) <= 0.5f * s * 1.0001f + 1e-30f);
    }
  emb::Matrix<emb::q8, rows, cols> m{q.data(), scales.data()};
  std::vector<float> ones(cols, 1.0f), row(cols);
  m.copy_row(2, row.data());
  double sum = 0.0;
  for (float v : row) sum += v;
  CHECK(m.dot_row(2, ones.data()) == Approx(sum).epsilon(1e-6));
}

TEST_CASE("static model: construction and steps allocate nothing", "[embedded][allocation]") {
  if (!malloc_hooks::available) {
    WARN("not checked in this build: malloc cannot be counted (AddressSanitizer replaces it, or not glibc)");
    return;
  }
  HeapModel model = random_model<SmallConfig>(13);
  emb::OwnedWeights<SmallConfig, emb::q8> q8_weights(model);
  emb::OwnedWeights<SmallConfig, emb::f32> f32_weights(model);
  static emb::Arena<SmallConfig> arena;
  malloc_hooks::allocations = 0;
  malloc_hooks::counting = true;
  long steps = 0;
  {
    emb::StaticModel<SmallConfig, emb::f32> a(f32_weights.weights(), arena);
    for (index_t t = 0; t < SmallConfig::max_context; ++t) steps += a.step(static_cast<std::int32_t>(t % 7)) != nullptr;
    emb::StaticModel<SmallConfig, emb::q8> b(q8_weights.weights(), arena);
    std::int32_t prompt[] = {1, 2, 3}, out[8];
    steps += b.generate_greedy(prompt, 3, out, 8);
  }
  malloc_hooks::counting = false;
  CHECK(steps == SmallConfig::max_context + 8);
  CHECK(malloc_hooks::allocations == 0);
}

static_assert(!std::is_copy_constructible<emb::StaticModel<SmallConfig, emb::f32>>::value,
              "one StaticModel per arena: not copyable");

TEST_CASE("static model: errors go to the handler and change nothing", "[embedded][errors]") {
  HeapModel model = random_model<SmallConfig>(14);
  emb::OwnedWeights<SmallConfig, emb::f32> weights(model);
  static emb::Arena<SmallConfig> arena;
  emb::StaticModel<SmallConfig, emb::f32> tiny(weights.weights(), arena);
  emb::set_error_handler(remember_error);
  REQUIRE(tiny.step(3) != nullptr);
  const std::vector<float> before(tiny.logits(), tiny.logits() + SmallConfig::vocab_size);
  last_error.clear();
  CHECK(tiny.step(-1) == nullptr);
  CHECK(last_error.find("outside the vocabulary") != std::string::npos);
  CHECK(tiny.step(SmallConfig::vocab_size) == nullptr);
  CHECK(tiny.length() == 1);
  CHECK(std::memcmp(before.data(), tiny.logits(), before.size() * sizeof(float)) == 0);
  last_error.clear();
  std::int32_t out[2 * SmallConfig::max_context];
  const std::int32_t prompt[] = {4};
  const index_t written = tiny.generate_greedy(prompt, 1, out, 2 * SmallConfig::max_context);
  CHECK(written == SmallConfig::max_context - 1);  // positions 1 .. max_context-1, then the context is full
  CHECK(last_error.find("context is full") != std::string::npos);
  CHECK(tiny.length() == SmallConfig::max_context);
  tiny.reset();
  CHECK(tiny.length() == 0);
  CHECK(tiny.step(5) != nullptr);
  emb::set_error_handler(nullptr);
}

TEST_CASE("OwnedWeights and c_header refuse what the static model cannot represent", "[embedded][errors]") {
  HeapModel model = random_model<SmallConfig>(15);
  CHECK_THROWS_WITH((emb::OwnedWeights<GeluL2Config, emb::f32>(model)), Catch::Contains("differs"));
  emb::CHeaderOptions options;
  for (const char* bad : {"3d", "int", "__x", "_Model", "a-b", ""}) {
    options.name = bad;
    CHECK_THROWS_WITH(emb::c_header(model, options), Catch::Contains("not a usable C++ identifier"));
  }
  options.name = "ok";
  options.max_context = 0;
  CHECK_THROWS_WITH(emb::c_header(model, options), Catch::Contains("max_context"));
  options.max_context = 8;
  std::vector<float> nan(static_cast<std::size_t>(model.hidden_size()), 0.0f);
  nan[3] = std::nanf("");
  model.final_norm_bias.value.copy_from_host(nan.data());
  CHECK_THROWS_WITH(emb::c_header(model, options), Catch::Contains("non-finite value at element 3"));
  CHECK_THROWS_WITH((emb::OwnedWeights<SmallConfig, emb::q8>(model)), Catch::Contains("non-finite value at element 3"));
  ModelConfig grown = model.config();
  grown.set_layers({LayerTokens{24, 16, 48}, LayerTokens{24, 16, 56}});
  CHECK_THROWS_WITH(emb::weight_tensors(grown), Catch::Contains("same token counts"));
  ModelConfig transformer = ModelConfig::from<presets::Tiny>();
  transformer.architecture = Architecture::transformer;
  transformer.qkv_tokens = transformer.proj_tokens = transformer.ffn_tokens = 0;
  CHECK_THROWS_WITH(emb::weight_tensors(transformer), Catch::Contains("TokenFormer stack only"));
}

TEST_CASE("c_header writes the config, every array exactly, and the Weights initializer", "[embedded]") {
  HeapModel model = random_model<SmallConfig>(16);
  emb::CHeaderOptions options;
  options.name = "small_model";
  options.max_context = 24;
  const std::string text = emb::c_header(model, options);
  CHECK(text.find("namespace small_model {") != std::string::npos);
  CHECK(text.find("hidden_size = 32, num_heads = 4;") != std::string::npos);
  CHECK(text.find("vocab_size = 61, max_context = 24;") != std::string::npos);
  CHECK(text.find("Normalization::l2_norm_gelu;") != std::string::npos);
  CHECK(text.find("Weights<config, storage> weights") != std::string::npos);
  // The first value of the embedding, written in hexadecimal, reads back bit-exact.
  std::vector<float> embedding(static_cast<std::size_t>(model.word_embeddings.value.size()));
  model.word_embeddings.value.copy_to_host(embedding.data());
  const std::size_t at = text.find("w0[] = {\n  ") + std::strlen("w0[] = {\n  ");
  CHECK(std::strtof(text.c_str() + at, nullptr) == embedding[0]);
  options.int8 = true;
  const std::string quantized = emb::c_header(model, options);
  CHECK(quantized.find("std::int8_t w0_q[]") != std::string::npos);
  CHECK(quantized.find("using storage = tokenformer::embedded::q8;") != std::string::npos);
  CHECK(quantized.size() < text.size() / 2);
}

}  // namespace test_embedded

// The public API's checks (issue #14): a caller's arrays come with their lengths (Span) and are checked
// against B*T, size products are overflow-checked, options are validated, gradients accumulate until
// zero_grad, AdamW's own learning rate, and growth's strong guarantee under failing allocations.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <limits>
#include <new>
#include <vector>

#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/span.hpp"
#include "tokenformer/model/generation.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/model/language_model.hpp"
#include "tokenformer/train/optimizer.hpp"

// ---- an allocator that fails on request (malloc_hooks: the fail_countdown-th request from now) -----
#include "malloc_hooks.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_api {

using namespace tokenformer;
using malloc_hooks::failures;

namespace {

using Model = LanguageModel<presets::Dynamic<float>>;

ModelConfig small_config() {
  ModelConfig config;
  config.num_layers = 2;
  config.hidden_size = 16;
  config.num_heads = 2;
  config.vocab_size = 29;
  config.qkv_tokens = 8;
  config.proj_tokens = 6;
  config.ffn_tokens = 12;
  return config;
}

Model random_model(std::uint64_t seed) {
  Model model(small_config());
  Rng rng(seed);
  model.initialize(rng);
  return model;
}

std::vector<float> logits_of(Model& model) {
  const auto t = model.forward({1, 2, 3, 4, 5, 6}, 1, 6);
  return std::vector<float>(t.data(), t.data() + t.size());
}

}  // namespace

TEST_CASE("checked_product and Span refuse what would overflow or read out of bounds", "[api][span]") {
  CHECK(checked_product(3, 4, "x") == 12);
  CHECK(checked_product({2, 3, 4}, "x") == 24);
  CHECK(checked_product(0, std::numeric_limits<index_t>::max(), "x") == 0);
  CHECK_THROWS_WITH(checked_product(index_t(1) << 62, 4, "B*T"), Catch::Contains("B*T") && Catch::Contains("overflow"));
  CHECK_THROWS_WITH(checked_product(-1, 4, "B*T"), Catch::Contains("negative size -1"));
  CHECK_THROWS_AS(checked_product({index_t(1) << 32, index_t(1) << 31, 2}, "x"), argument_error);

  std::vector<std::int32_t> v{1, 2, 3};
  const Span<const std::int32_t> s = v;
  CHECK(s.size() == 3);
  CHECK(s.data() == v.data());
  CHECK(s.subspan(1, 2).data() == v.data() + 1);
  CHECK_THROWS_WITH(s.subspan(2, 2), Catch::Contains("outside a span of 3"));
  CHECK_THROWS_WITH(Span<const std::int32_t>(nullptr, 4), Catch::Contains("has no data"));
  CHECK_THROWS_WITH(Span<const std::int32_t>(v.data(), -1), Catch::Contains("negative size"));
  CHECK(Span<const std::int32_t>(nullptr, 0).empty());

  // A shape whose element count overflows is refused when it is made, not when memory is touched.
  CHECK_THROWS_WITH((Shape{index_t(1) << 40, index_t(1) << 40}), Catch::Contains("too many elements"));
  CHECK_THROWS_WITH(Shape({4, 4}).with(0, index_t(1) << 62), Catch::Contains("too many elements"));
  CHECK_THROWS_AS(Tensor<double>(Shape{index_t(1) << 61}), shape_error);  // 2^64 bytes
}

TEST_CASE("forward, loss and forward_backward check their token arrays against B*T", "[api][span]") {
  Model model = random_model(1);
  const std::vector<std::int32_t> tokens{1, 2, 3, 4, 5, 6, 7, 8}, targets{2, 3, 4, 5, 6, 7, 8, -1};
  // Larger B*T than the arrays hold used to read past their end (AddressSanitizer:
  // heap-buffer-overflow): now a shape_error that says how many ids came for which B and T.
  CHECK_THROWS_WITH(model.forward_backward(tokens, targets, 2, 8), Catch::Contains("got 8 ids for B*T = 2*8 = 16"));
  CHECK_THROWS_WITH(model.forward_backward(tokens, std::vector<std::int32_t>{1, 2}, 1, 8),
                    Catch::Contains("forward_backward: targets: got 2 ids"));
  CHECK_THROWS_WITH(model.loss(tokens, targets, 4, 4), Catch::Contains("got 8 ids for B*T = 4*4 = 16"));
  CHECK_THROWS_AS(model.forward(tokens, 3, 3), shape_error);
  Tensor<float> last(Shape{1, 29});
  CHECK_THROWS_AS(model.forward_last(last, tokens, 1, 9), shape_error);
  // B*T overflowing the index type (it used to wrap, then crash).
  CHECK_THROWS_WITH(model.forward_backward(tokens, targets, index_t(1) << 62, 4), Catch::Contains("overflow"));
  CHECK_THROWS_WITH(model.forward(tokens, index_t(1) << 62, 4), Catch::Contains("overflow"));
  // A null pointer with a length cannot become a span; zero or negative sizes are refused.
  CHECK_THROWS_WITH(model.forward_backward(Span<const std::int32_t>(nullptr, 8), targets, 1, 8),
                    Catch::Contains("has no data"));
  CHECK_THROWS_WITH(model.forward(tokens, 0, 8), Catch::Contains("needs B > 0 sequences of T > 0 positions"));
  CHECK_THROWS_WITH(model.forward(tokens, -2, -4), Catch::Contains("needs B > 0"));
  // grad_scale must be finite (a NaN used to reach every gradient).
  CHECK_THROWS_WITH(model.forward_backward(tokens, targets, 1, 8, std::numeric_limits<double>::quiet_NaN()),
                    Catch::Contains("grad_scale must be finite"));
  // The right sizes pass, from a vector, an array or a (pointer, size) span.
  std::array<std::int32_t, 8> array_tokens{1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(std::isfinite(model.forward_backward(array_tokens, Span<const std::int32_t>(targets.data(), 8), 2, 4)));
  CHECK(model.forward(tokens, 2, 4).shape() == Shape{2, 4, 29});
}

TEST_CASE("forward_backward adds to the gradients until zero_grad, as the README says", "[api][training]") {
  Model model = random_model(2);
  model.enable_training();
  const std::vector<std::int32_t> tokens{1, 2, 3, 4}, targets{2, 3, 4, 5};
  const auto embedding_grad = [&] {
    const auto& g = model.word_embeddings.grad;
    return std::vector<float>(g.data(), g.data() + g.size());
  };
  model.forward_backward(tokens, targets, 1, 4);
  const auto once = embedding_grad();
  model.forward_backward(tokens, targets, 1, 4);
  const auto twice = embedding_grad();
  double max_once = 0;
  for (std::size_t i = 0; i < once.size(); ++i) {
    CHECK(twice[i] == Approx(2 * once[i]).margin(1e-6));
    max_once = std::max(max_once, static_cast<double>(std::fabs(once[i])));
  }
  CHECK(max_once > 1e-4);  // the check above is not vacuous
  model.zero_grad();
  model.forward_backward(tokens, targets, 1, 4);
  CHECK(test_util::max_abs_diff(embedding_grad(), once) <= 1e-6);
}

TEST_CASE("AdamW's step(model) uses its options' learning rate, step(model, lr) the given one", "[api][training]") {
  const std::vector<std::int32_t> tokens{1, 2, 3, 4}, targets{2, 3, 4, 5};
  Model a = random_model(3), b = random_model(3), c = random_model(3);
  for (Model* m : {&a, &b, &c}) m->forward_backward(tokens, targets, 1, 4);
  AdamWOptions options;
  options.lr = 1e-2;
  AdamW(options).step(a);
  AdamW(options).step(b, 1e-2);
  AdamW(options).step(c, 6e-4);
  CHECK(logits_of(a) == logits_of(b));
  CHECK(test_util::max_abs_diff(logits_of(a), logits_of(c)) > 1e-4);
}

TEST_CASE("a Generator's step takes one token per sequence, and sample_token a non-empty row", "[api][generation]") {
  Model model = random_model(4);
  Generator<presets::Dynamic<float>, cpu, TokenFormerLayer> generator(model, 2, 16);
  generator.prefill({{1, 2}, {3, 4}});
  CHECK_THROWS_WITH(generator.step(std::vector<std::int32_t>{1}), Catch::Contains("one token per sequence (2), got 1"));
  CHECK_NOTHROW(generator.step(std::vector<std::int32_t>{1, 2}));
  Rng rng(1);
  std::vector<std::pair<double, std::int32_t>> ranked;
  CHECK_THROWS_WITH(sample_token(Span<const float>(), SamplingOptions{}, rng, ranked),
                    Catch::Contains("at least one logit"));
}

TEST_CASE("grow keeps the model as it was when any allocation fails midway", "[api][growth][strong]") {
#if TOKENFORMER_MALLOC_HOOKS
  Model model = random_model(5);
  model.enable_training();
  const auto before = logits_of(model);
  const ModelConfig config = model.config();
  GrowthSpec spec;
  spec.qkv = 64;  // beyond every Pattention's capacity: each grows its storage (allocations to fail)
  spec.proj = 64;
  spec.ffn = 64;
  spec.init = TokenInit::random;
  int failed = 0;
  for (long n = 0;; ++n) {
    INFO("the allocation after " << n << " successful ones fails");
    failures = 0;
    bool threw = false;
    malloc_hooks::fail_countdown = n;
    try {
      grow(model, spec);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    malloc_hooks::fail_countdown = -1;
    if (failures == 0) {  // grow made fewer than n + 1 allocations: it completed
      REQUIRE(!threw);
      break;
    }
    REQUIRE(threw);  // the failure was reported, not swallowed
    ++failed;
    REQUIRE(model.config() == config);
    REQUIRE(model.layers[1].ffn.tokens() == config.ffn_tokens);
    REQUIRE(model.layers[0].attention.query.key_parameter().grad.shape() == Shape{8, 16});
    REQUIRE(model.layers[0].attention.value.value_parameter().first_moment.shape() == Shape{8, 16});
    REQUIRE(logits_of(model) == before);
  }
  CHECK(failed > 20);  // every Pattention's key and value storage (and the helpers) failed once
  CHECK(model.layers[1].ffn.tokens() == config.ffn_tokens + 64);
#else
  WARN("not checked in this build: allocations cannot be made to fail (AddressSanitizer replaces malloc)");
#endif
}

}  // namespace test_api

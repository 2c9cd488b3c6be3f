// Core types: Shape, Tensor and views, Eigen interop, configs and presets, the RNG.
#include <catch2/catch.hpp>

#include <cstdint>
#include <set>

#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_core {

using namespace tokenformer;

TEST_CASE("Shape counts elements and rejects bad dimensions", "[core][shape]") {
  const Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s.rows() == 6);
  CHECK(s.cols() == 4);
  CHECK(s.str() == "[2, 3, 4]");
  CHECK(Shape{}.numel() == 1);
  CHECK(Shape{5, 0}.numel() == 0);
  CHECK_THROWS_AS((Shape{1, 2, 3, 4, 5}), shape_error);
  CHECK_THROWS_WITH((Shape{2, -1}), Catch::Contains("negative dimension -1"));
  CHECK_THROWS_WITH(expect_shape(Shape{2, 3}, Shape{3, 2}, "weights"),
                    Catch::Contains("weights has shape [2, 3], expected [3, 2]"));
}

TEST_CASE("Tensor owns aligned, zero-initialized memory and copies deeply", "[core][tensor]") {
  Tensor<float> t(Shape{3, 5});
  REQUIRE(t.size() == 15);
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  for (index_t i = 0; i < t.size(); ++i) CHECK(t[i] == 0.0f);
  t[7] = 2.5f;
  Tensor<float> copy = t;
  copy[7] = -1.0f;
  CHECK(t[7] == 2.5f);
  Tensor<float> moved = std::move(copy);
  CHECK(moved[7] == -1.0f);
  CHECK(copy.data() == nullptr);  // NOLINT(bugprone-use-after-move): moved-from state is documented empty
  CHECK(copy.size() == 0);        // empty: shape [0]
  Tensor<float> empty, empty_copy = empty;
  CHECK(empty.size() == 0);
  CHECK(empty_copy.data() == nullptr);
}

TEST_CASE("Tensor reserve keeps contents, growing rows within capacity does not move memory", "[core][tensor]") {
  Tensor<double> t(Shape{2, 3});
  for (index_t i = 0; i < 6; ++i) t[i] = static_cast<double>(i + 1);
  t.reserve(5 * 3);
  const double* before = t.data();
  t.resize(Shape{5, 3});
  CHECK(t.data() == before);
  for (index_t i = 0; i < 6; ++i) CHECK(t[i] == static_cast<double>(i + 1));
  for (index_t i = 6; i < 15; ++i) CHECK(t[i] == 0.0);
  t.resize(Shape{7, 3});  // past capacity: moves, keeps values
  CHECK(t.capacity() >= 21);
  for (index_t i = 0; i < 6; ++i) CHECK(t[i] == static_cast<double>(i + 1));
}

TEST_CASE("Tensor and views interoperate with Eigen without copies", "[core][tensor][eigen]") {
  Tensor<float> t(Shape{2, 2, 3});
  auto m = t.matrix();
  CHECK(m.rows() == 4);
  CHECK(m.cols() == 3);
  m(1, 2) = 7.0f;
  CHECK(t[5] == 7.0f);
  RowMatrix<float> product = m.transpose() * m;
  CHECK(product(2, 2) == 49.0f);
  TensorView<const float> view = t;
  CHECK(view.data() == t.data());
  CHECK(view.row_range(1, 3).data() == t.data() + 3);
  CHECK(view.reshaped(Shape{12}).size() == 12);
  CHECK_THROWS_AS(view.reshaped(Shape{5}), shape_error);
  CHECK_THROWS_AS(view.row_range(2, 5), shape_error);
}

TEST_CASE("ModelConfig::validate names the broken rule", "[core][config]") {
  ModelConfig c = ModelConfig::from<presets::Tiny>();
  CHECK_NOTHROW(c.validate());
  auto broken = c;
  broken.num_heads = 3;
  CHECK_THROWS_WITH(broken.validate(), Catch::Contains("num_attention_heads (3) must divide hidden_size (64)"));
  broken = c;
  broken.rotary_pct = 0.1875;  // head_dim 16 -> 3 rotary dims
  CHECK_THROWS_WITH(broken.validate(), Catch::Contains("must be even"));
  broken = c;
  broken.ffn_tokens = 0;
  CHECK_THROWS_WITH(broken.validate(), Catch::Contains("ffn_slot_num must be positive"));
  broken = c;
  broken.rotary_pct = 1.5;
  CHECK_THROWS_WITH(broken.validate(), Catch::Contains("rotary_pct must be in [0, 1]"));
  broken = c;
  broken.layernorm_epsilon = 0;
  CHECK_THROWS_AS(broken.validate(), config_error);
  CHECK_THROWS_WITH(parse_normalization("relu"), Catch::Contains("unknown norm_activation_type 'relu'"));
  CHECK(parse_normalization("gelu_l2_norm") == Normalization::gelu_l2_norm);
}

TEST_CASE("Official presets have the published sizes", "[core][presets]") {
  const auto m150 = ModelConfig::from<presets::TokenFormer150M>();
  CHECK(m150.num_layers == 12);
  CHECK(m150.head_dim() == 64);
  CHECK(m150.rotary_dims() == 16);
  // 50304·768 + 12·2·768·(3·768 + 768 + 3072) + 2·768
  CHECK(m150.parameter_count() == 151'881'216);
  const auto m450 = ModelConfig::from<presets::TokenFormer450M>();
  CHECK(m450.parameter_count() == 50304 * 1024 + 24 * 2 * 1024 * (4 * 1024 + 4096) + 2 * 1024);
  const auto m900 = ModelConfig::from<presets::TokenFormer900M>();
  CHECK(m900.parameter_count() > 900'000'000);
  const auto m1500 = ModelConfig::from<presets::TokenFormer1_5B>();
  CHECK(m1500.parameter_count() > 1'500'000'000);
  CHECK(m1500.num_heads == 16);
  CHECK(m1500.ffn_tokens == 6144);
}

TEST_CASE("check_matches_static rejects run-time values that contradict the static config", "[core][config]") {
  ModelConfig c = ModelConfig::from<presets::Tiny>();
  CHECK_NOTHROW(check_matches_static<presets::Tiny>(c));
  CHECK_NOTHROW(check_matches_static<presets::Dynamic<float>>(c));
  c.hidden_size = 128;
  c.num_heads = 8;
  CHECK_THROWS_WITH(check_matches_static<presets::Tiny>(c),
                    Catch::Contains("hidden_size is fixed to 64 by the static config"));
  c = ModelConfig::from<presets::Tiny>();
  c.qkv_tokens = 96;  // token counts may differ: the model may have grown
  CHECK_NOTHROW(check_matches_static<presets::Tiny>(c));
}

TEST_CASE("Rng is reproducible, restorable and roughly normal", "[core][rng]") {
  Rng a(42), b(42), c(43);
  CHECK(a.next() == b.next());
  CHECK(a.next() != c.next());
  const auto saved = a.state();
  const double x = a.normal();
  a.set_state(saved);
  CHECK(a.normal() == x);
  double sum = 0, sum2 = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double v = a.normal(1.0, 2.0);
    sum += v;
    sum2 += v * v;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  CHECK(mean == Approx(1.0).margin(0.06));
  CHECK(var == Approx(4.0).epsilon(0.05));
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto v = a.below(7);
    CHECK(v < 7);
    seen.insert(v);
  }
  CHECK(seen.size() == 7);
}

}  // namespace test_core

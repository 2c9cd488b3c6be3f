// The model's logits against golden files made by the independent PyTorch reference
// (tests/reference/make_golden.py): official-layout checkpoints for all three normalizations, a
// padded vocabulary, and F16 / BF16 checkpoints. Max abs error <= 1e-4 in float32.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tokenformer/io/checkpoint.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_model_golden {

using namespace tokenformer;

namespace {

struct Golden {
  std::vector<std::vector<std::int32_t>> sequences;
  std::vector<float> logits;  // [B, T, V]
};

Golden read_golden(const std::string& dir) {
  Golden g;
  std::ifstream tokens(dir + "/tokens.txt");
  REQUIRE(tokens);
  for (std::string line; std::getline(tokens, line);) {
    if (line.empty()) continue;
    std::vector<std::int32_t> seq;
    std::stringstream ss(line);
    for (std::string id; std::getline(ss, id, ',');) seq.push_back(std::stoi(id));
    g.sequences.push_back(seq);
  }
  std::ifstream logits(dir + "/logits.f32", std::ios::binary | std::ios::ate);
  REQUIRE(logits);
  const auto bytes = static_cast<std::size_t>(logits.tellg());
  logits.seekg(0);
  g.logits.resize(bytes / sizeof(float));
  logits.read(reinterpret_cast<char*>(g.logits.data()), static_cast<std::streamsize>(bytes));
  return g;
}

template <class Scalar>
double max_error_against_golden(const std::string& name, Normalization expected_kind) {
  const std::string dir = test_util::data_dir() + "/" + name;
  auto model = io::load_model<presets::Dynamic<Scalar>>(dir + "/config.json", dir + "/model.safetensors");
  CHECK(model.config().normalization == expected_kind);
  const Golden g = read_golden(dir);
  const auto B = static_cast<index_t>(g.sequences.size()), T = static_cast<index_t>(g.sequences[0].size());
  std::vector<std::int32_t> tokens;
  for (const auto& s : g.sequences) tokens.insert(tokens.end(), s.begin(), s.end());
  const auto logits = model.forward(tokens, B, T);
  REQUIRE(logits.size() == static_cast<index_t>(g.logits.size()));
  std::vector<Scalar> ours(logits.data(), logits.data() + logits.size());
  return test_util::max_abs_diff(ours, g.logits);
}

}  // namespace

TEST_CASE("logits match the PyTorch reference: l2_norm_gelu, padded vocabulary, F32", "[model][golden]") {
  CHECK(max_error_against_golden<float>("l2_norm_gelu_f32", Normalization::l2_norm_gelu) <= 1e-4);
}
TEST_CASE("logits match the PyTorch reference: gelu_l2_norm, 3 layers, odd token counts, F32", "[model][golden]") {
  CHECK(max_error_against_golden<float>("gelu_l2_norm_f32", Normalization::gelu_l2_norm) <= 1e-4);
}
TEST_CASE("logits match the PyTorch reference: softmax, rotary_pct 0.5, F32", "[model][golden]") {
  CHECK(max_error_against_golden<float>("softmax_f32", Normalization::softmax) <= 1e-4);
}
TEST_CASE("logits match the PyTorch reference: F16 checkpoint", "[model][golden]") {
  CHECK(max_error_against_golden<float>("l2_norm_gelu_f16", Normalization::l2_norm_gelu) <= 1e-4);
}
TEST_CASE("logits match the PyTorch reference: BF16 checkpoint", "[model][golden]") {
  CHECK(max_error_against_golden<float>("softmax_bf16", Normalization::softmax) <= 1e-4);
}
TEST_CASE("a double model matches the float64 reference to float32 rounding of the golden file", "[model][golden]") {
  for (auto [name, kind] : {std::pair<const char*, Normalization>{"l2_norm_gelu_f32", Normalization::l2_norm_gelu},
                            {"gelu_l2_norm_f32", Normalization::gelu_l2_norm},
                            {"softmax_f32", Normalization::softmax}}) {
    INFO(name);
    // The golden logits are float64 results rounded to float32: |x| <= 20 gives rounding <= 1e-6.
    CHECK(max_error_against_golden<double>(name, kind) <= 2e-6);
  }
}

TEST_CASE("batched forward equals one sequence at a time, and later tokens never change earlier logits", "[model]") {
  const std::string dir = test_util::data_dir() + "/l2_norm_gelu_f32";
  auto model = io::load_model(dir + "/config.json", dir + "/model.safetensors");
  const Golden g = read_golden(dir);
  const auto T = static_cast<index_t>(g.sequences[0].size());
  const index_t V = model.vocab_size();
  const auto first = model.forward(g.sequences[0], 1, T);
  auto changed = g.sequences[0];
  changed.back() = (changed.back() + 1) % 100;
  const auto altered = model.forward(changed, 1, T);
  for (index_t i = 0; i < (T - 1) * V; ++i) REQUIRE(first[i] == altered[i]);
  bool last_differs = false;
  for (index_t i = (T - 1) * V; i < T * V; ++i) last_differs |= first[i] != altered[i];
  CHECK(last_differs);
}

TEST_CASE("bad token ids and logits shapes raise clear errors", "[model][errors]") {
  const std::string dir = test_util::data_dir() + "/softmax_f32";
  auto model = io::load_model(dir + "/config.json", dir + "/model.safetensors");
  CHECK_THROWS_WITH(model.forward(std::vector<std::int32_t>{1, 64}, 1, 2),
                    Catch::Contains("token id 64 at position 1 is outside the vocabulary [0, 64)"));
  CHECK_THROWS_AS(model.forward(std::vector<std::int32_t>{-1}, 1, 1), argument_error);
  CHECK_THROWS_AS(model.forward(std::vector<std::int32_t>{1, 2, 3}, 1, 2), shape_error);
  Tensor<float> wrong(Shape{2, 63});
  const std::int32_t ids[2] = {1, 2};
  CHECK_THROWS_WITH(model.forward(wrong, ids, 1, 2), Catch::Contains("logits have shape [2, 63], expected [1, 2, 64]"));
}

#ifdef TOKENFORMER_CLI
TEST_CASE("tokenformer-cli logits writes the reference logits of one sequence", "[cli][golden]") {
  const std::string dir = test_util::data_dir() + "/gelu_l2_norm_f32";
  const Golden g = read_golden(dir);
  std::string ids;
  for (auto t : g.sequences[1]) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const std::string out = "cli_logits_test.f32";
  const std::string command = std::string(TOKENFORMER_CLI) + " logits --config " + dir + "/config.json --weights " +
                              dir + "/model.safetensors --tokens " + ids + " --out " + out;
  REQUIRE(std::system(command.c_str()) == 0);
  std::ifstream f(out, std::ios::binary | std::ios::ate);
  REQUIRE(f);
  const auto bytes = static_cast<std::size_t>(f.tellg());
  f.seekg(0);
  std::vector<float> logits(bytes / sizeof(float));
  f.read(reinterpret_cast<char*>(logits.data()), static_cast<std::streamsize>(bytes));
  const std::size_t per_sequence = g.logits.size() / 2;
  REQUIRE(logits.size() == per_sequence);
  const std::vector<float> expected(g.logits.begin() + static_cast<std::ptrdiff_t>(per_sequence), g.logits.end());
  CHECK(test_util::max_abs_diff(logits, expected) <= 1e-4);
  std::remove(out.c_str());

  // Bad input: a clear message and a non-zero exit status, not a crash.
  const std::string bad = std::string(TOKENFORMER_CLI) + " logits --config " + dir + "/config.json --weights " + dir +
                          "/model.safetensors --tokens 1,x,3 --out " + out + " 2>/dev/null";
  CHECK(std::system(bad.c_str()) != 0);
  const std::string missing = std::string(TOKENFORMER_CLI) + " logits --config " + dir + "/config.json 2>/dev/null";
  CHECK(std::system(missing.c_str()) != 0);
}
#endif

}  // namespace test_model_golden

// Training against PyTorch: whole-model gradients of the mean next-token loss against autograd
// (tests/reference/make_golden_grads.py) and AdamW steps against torch.optim.AdamW
// (tests/reference/make_golden_adamw.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "test_util.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/train/optimizer.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_training_golden {

using namespace tokenformer;

namespace {

/// Compares every parameter gradient of `model` with the tensors of `golden_path`.
template <class Model>
void check_gradients(Model& model, const std::string& golden_path, double expected_loss_tolerance, double loss) {
  io::SafetensorsReader golden(golden_path);
  std::vector<float> reference_loss(1);
  golden.read("loss", Shape{1}, reference_loss.data());
  CHECK(loss == Approx(reference_loss[0]).epsilon(expected_loss_tolerance));
  std::size_t checked = 0;
  model.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
    std::vector<float> reference(static_cast<std::size_t>(p.size()));
    golden.read(name, p.shape(), reference.data());
    double norm = 0;
    for (float g : reference) norm += static_cast<double>(g) * g;
    if (std::sqrt(norm) <= 1e-6) return;
    const std::vector<float> ours(p.grad.data(), p.grad.data() + p.size());
    INFO(name);
    CHECK(test_util::relative_error(ours, reference) <= 1e-3);
    ++checked;
  });
  CHECK(checked == golden.tensors().size() - 1);  // every parameter (all have gradients), not "loss"
}

}  // namespace

TEST_CASE("whole-model loss and gradients match PyTorch autograd for every normalization", "[training][golden]") {
  for (const char* name : {"l2_norm_gelu_f32", "gelu_l2_norm_f32", "softmax_f32"}) {
    INFO(name);
    const std::string dir = test_util::data_dir() + "/" + std::string(name);
    auto model = io::load_model(dir + "/config.json", dir + "/model.safetensors");
    const auto sequences = test_util::read_sequences(dir + "/tokens.txt");
    const auto T = static_cast<index_t>(sequences[0].size());
    std::vector<std::int32_t> tokens, targets;
    for (const auto& s : sequences) {
      tokens.insert(tokens.end(), s.begin(), s.end());
      targets.insert(targets.end(), s.begin() + 1, s.end());
      targets.push_back(-1);  // nothing to predict after the last token
    }
    model.enable_training();
    model.zero_grad();
    const double loss = model.forward_backward(tokens, targets, 2, T);
    check_gradients(model, dir + "/grads_batch.safetensors", 1e-5, loss);
  }
}

TEST_CASE("tokenformer-cli grad writes the gradients of one sequence's mean next-token loss", "[cli][golden]") {
#ifdef TOKENFORMER_CLI
  const std::string dir = test_util::data_dir() + "/softmax_f32";
  const auto sequences = test_util::read_sequences(dir + "/tokens.txt");
  std::string ids;
  for (auto t : sequences[0]) ids += (ids.empty() ? "" : ",") + std::to_string(t);
  const std::string out = "cli_grads_test_" + std::to_string(::getpid()) + ".safetensors";
  const std::string command = std::string(TOKENFORMER_CLI) + " grad --config " + dir + "/config.json --weights " + dir +
                              "/model.safetensors --tokens " + ids + " --out " + out + " 2>/dev/null";
  REQUIRE(std::system(command.c_str()) == 0);
  auto model = io::load_model(dir + "/config.json", dir + "/model.safetensors");
  model.enable_training();
  io::SafetensorsReader written(out);
  model.for_each_parameter([&](const std::string& name, Parameter<float>& p) { written.read(name, p.grad); });
  const double loss = std::stod(written.metadata().at("loss"));
  check_gradients(model, dir + "/grads_seq0.safetensors", 1e-5, loss);
  std::remove(out.c_str());
#else
  WARN("tokenformer-cli was not built: skipped");
#endif
}

namespace {
/// The smallest "model" AdamW accepts: one parameter.
struct OneParameter {
  Parameter<float> p{Shape{7, 5}};
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    visit(std::string("p"), p);
  }
};
}  // namespace

TEST_CASE("AdamW matches torch.optim.AdamW step by step", "[training][golden][adamw]") {
  io::SafetensorsReader golden(test_util::data_dir() + "/adamw/adamw.safetensors");
  const Shape shape{7, 5};
  const auto read = [&](const std::string& name) {
    std::vector<float> v(35);
    golden.read(name, shape, v.data());
    return v;
  };
  struct Run {
    double lr, weight_decay;
    const char* prefix;  // names of the parameters after each step
    const char* m;
    const char* v;
  };
  for (const Run& run : {Run{6e-4, 0.1, "p", "m3", "v3"}, Run{0.1, 0.0, "q", "qm3", "qv3"}}) {
    INFO("lr " << run.lr);
    OneParameter model;
    model.p.enable_training();
    model.p.value.copy_from_host(read("p0").data());
    AdamWOptions options;
    options.lr = run.lr;
    options.weight_decay = run.weight_decay;
    AdamW adamw(options);
    for (int step = 1; step <= 3; ++step) {
      model.p.grad.copy_from_host(read("g" + std::to_string(step)).data());
      adamw.step(model, run.lr);
      const std::vector<float> ours(model.p.value.data(), model.p.value.data() + 35);
      CHECK(test_util::max_abs_diff(ours, read(std::string(run.prefix) + std::to_string(step))) <= 1e-6);
    }
    const std::vector<float> m(model.p.first_moment.data(), model.p.first_moment.data() + 35),
        v(model.p.second_moment.data(), model.p.second_moment.data() + 35);
    CHECK(test_util::max_abs_diff(m, read(run.m)) <= 1e-6);
    CHECK(test_util::max_abs_diff(v, read(run.v)) <= 1e-6);
  }
}

}  // namespace test_training_golden

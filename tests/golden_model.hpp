// A language model's logits, loss and every parameter gradient against a golden case written by a
// PyTorch reference script (tests/reference/make_golden_*.py): config.json, model.safetensors,
// tokens.txt, logits.f32 and grads_batch.safetensors (the gradients of the mean next-token loss,
// then "loss").
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/io/safetensors.hpp"

namespace golden_model {

using namespace tokenformer;

/// Checks the float model of `Block` loaded from the case directory `dir`: logits within
/// `logits_tolerance` (absolute), the loss within 1e-5 relative, and each gradient within
/// `gradient_tolerance` relative to the tensor's largest reference entry. A tensor whose reference
/// gradient is zero in exact arithmetic (every entry below 1e-12: e.g. a key bias that softmax
/// cancels) is checked absolutely, to 1e-5.
template <template <class, class> class Block>
void check_case(const std::string& dir, double logits_tolerance = 1e-4, double gradient_tolerance = 1e-3) {
  INFO(dir);
  auto model = io::load_model<presets::Dynamic<float>, cpu, Block>(dir + "/config.json", dir + "/model.safetensors");
  const auto sequences = test_util::read_sequences(dir + "/tokens.txt");
  const auto B = static_cast<index_t>(sequences.size()), T_len = static_cast<index_t>(sequences[0].size());
  std::vector<std::int32_t> tokens, targets;
  for (const auto& s : sequences) {
    tokens.insert(tokens.end(), s.begin(), s.end());
    targets.insert(targets.end(), s.begin() + 1, s.end());
    targets.push_back(-1);
  }
  std::ifstream file(dir + "/logits.f32", std::ios::binary);
  std::vector<float> golden(static_cast<std::size_t>(B * T_len * model.vocab_size()));
  file.read(reinterpret_cast<char*>(golden.data()), static_cast<std::streamsize>(golden.size() * sizeof(float)));
  REQUIRE(file.gcount() == static_cast<std::streamsize>(golden.size() * sizeof(float)));
  const auto logits = model.forward(tokens, B, T_len);
  CHECK(test_util::max_abs_diff(std::vector<float>(logits.data(), logits.data() + logits.size()), golden) <=
        logits_tolerance);

  model.enable_training();
  model.zero_grad();
  const double loss = model.forward_backward(tokens, targets, B, T_len);
  io::SafetensorsReader grads(dir + "/grads_batch.safetensors");
  std::vector<float> reference_loss(1);
  grads.read("loss", Shape{1}, reference_loss.data());
  CHECK(loss == Approx(reference_loss[0]).epsilon(1e-5));
  std::size_t checked = 0;
  model.for_each_parameter([&](const std::string& param, Parameter<float>& p) {
    std::vector<float> reference(static_cast<std::size_t>(p.size()));
    grads.read(param, p.shape(), reference.data());
    const std::vector<float> ours(p.grad.data(), p.grad.data() + p.size());
    double largest = 0;
    for (float g : reference) largest = std::fmax(largest, std::fabs(static_cast<double>(g)));
    INFO(param);
    if (largest < 1e-12)
      CHECK(test_util::max_abs_diff(ours, reference) <= 1e-5);
    else
      CHECK(test_util::relative_error(ours, reference) <= gradient_tolerance);
    ++checked;
  });
  CHECK(checked == grads.tensors().size() - 1);  // every parameter, not "loss"
}

}  // namespace golden_model

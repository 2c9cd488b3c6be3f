// Test cases written once as templates over the device and instantiated for every device the test
// program can use (cpu in the host test programs, cuda in tests/cuda/test_cuda.cu), each device
// compared against the `reference` device (the plain kernels of kernels/reference/).
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "attention_cases.hpp"
#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/model/copy_parameters.hpp"
#include "tokenformer/model/language_model.hpp"
#include "tokenformer/train/optimizer.hpp"

namespace device_cases {

using namespace tokenformer;

template <class T, class Device>
Tensor<T, Device> upload(const std::vector<T>& v, Device device = {}) {
  Tensor<T, Device> t(Shape{static_cast<index_t>(v.size())}, device);
  t.copy_from_host(v.data());
  return t;
}
template <class T, class Device>
std::vector<T> download(const Tensor<T, Device>& t) {
  std::vector<T> v(static_cast<std::size_t>(t.size()));
  t.copy_to_host(v.data());
  return v;
}

/// Attention forward (output and log-sum-exp) and backward on `Device` against the reference device,
/// on every shape of tests/attention_cases.hpp plus `extra`. Stale values in the outputs must be
/// overwritten.
template <class T, class Device>
void attention_matches_reference(double forward_tolerance, double backward_tolerance,
                                 const std::vector<kernels::AttentionShape>& extra = {}, Device device = {}) {
  auto cases = test_util::attention_cases();
  cases.insert(cases.end(), extra.begin(), extra.end());
  std::uint64_t seed = 400;
  for (const auto& s : cases) {
    const auto nq = static_cast<std::size_t>(s.query_rows() * s.width()),
               nk = static_cast<std::size_t>(s.key_rows() * s.width()), nl = static_cast<std::size_t>(s.lse_size());
    const auto q = test_util::random_vector<T>(nq, seed), k = test_util::random_vector<T>(nk, seed + 1),
               v = test_util::random_vector<T>(nk, seed + 2), dout = test_util::random_vector<T>(nq, seed + 3);
    seed += 4;
    // The reference device.
    std::vector<T> out(nq), lse(nl), dq(nq), dk(nk), dv(nk);
    const reference ref;
    kernels::attention_forward(ref, out.data(), lse.data(), q.data(), k.data(), v.data(), s);
    kernels::attention_backward(ref, dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                out.data(), lse.data(), s);
    // The device under test, from stale outputs; its backward takes its own forward's results.
    auto d_q = upload(q, device), d_k = upload(k, device), d_v = upload(v, device), d_dout = upload(dout, device);
    auto d_out = upload(std::vector<T>(nq, T(7)), device), d_lse = upload(std::vector<T>(nl, T(7)), device),
         d_dq = upload(std::vector<T>(nq, T(7)), device), d_dk = upload(std::vector<T>(nk, T(7)), device),
         d_dv = upload(std::vector<T>(nk, T(7)), device);
    kernels::attention_forward(device, d_out.data(), d_lse.data(), d_q.data(), d_k.data(), d_v.data(), s);
    kernels::attention_backward(device, d_dq.data(), d_dk.data(), d_dv.data(), d_dout.data(), d_q.data(), d_k.data(),
                                d_v.data(), d_out.data(), d_lse.data(), s);
    INFO(Device::name() << " against reference, " << s.describe());
    CHECK(test_util::max_scaled_diff(download(d_out), out) <= forward_tolerance);
    CHECK(test_util::max_scaled_diff(download(d_lse), lse) <= forward_tolerance);
    CHECK(test_util::max_scaled_diff(download(d_dq), dq) <= backward_tolerance);
    CHECK(test_util::max_scaled_diff(download(d_dk), dk) <= backward_tolerance);
    CHECK(test_util::max_scaled_diff(download(d_dv), dv) <= backward_tolerance);
  }
}

/// Every parameter's values (or gradients) of a model, by name, on the host in double.
template <class Model>
std::vector<std::pair<std::string, std::vector<double>>> parameter_values(Model& model, bool gradients) {
  std::vector<std::pair<std::string, std::vector<double>>> all;
  model.for_each_parameter([&](const std::string& name, auto& p) {
    const auto v = download(gradients ? p.grad : p.value);
    all.emplace_back(name, std::vector<double>(v.begin(), v.end()));
  });
  return all;
}

/// A small TokenFormer language model in double on `Device` against the same model on the
/// reference device, for every normalization: logits, the loss, every parameter gradient, and every
/// parameter after two AdamW steps.
template <class Device>
void model_matches_reference(double tolerance, Device device = {}) {
  for (Normalization kind : all_normalizations) {
    ModelConfig config;
    config.num_layers = 2;
    config.hidden_size = 16;
    config.num_heads = 2;
    config.qkv_tokens = 7;
    config.proj_tokens = 5;
    config.ffn_tokens = 19;
    config.vocab_size = 23;
    config.rotary_pct = 0.5;
    config.normalization = kind;
    LanguageModel<presets::Dynamic<double>, reference> ref(config);
    Rng rng(11);
    ref.initialize(rng);
    LanguageModel<presets::Dynamic<double>, Device> model(config, device);
    copy_parameters(model, ref);
    const std::vector<std::int32_t> tokens{1, 5, 22, 7, 7, 0, 13, 4, 9, 21, 3, 3, 18, 2},
        targets{5, 22, 7, 7, 0, 13, -1, 9, 21, 3, 3, 18, 2, 6};
    INFO(Device::name() << " against reference, " << to_string(kind));
    const auto logits = download(model.forward(tokens, 2, 7)), ref_logits = download(ref.forward(tokens, 2, 7));
    CHECK(test_util::max_scaled_diff(logits, ref_logits) <= tolerance);
    AdamW adamw, ref_adamw;
    for (int step = 0; step < 2; ++step) {
      model.zero_grad();
      ref.zero_grad();
      const double loss = model.forward_backward(tokens.data(), targets.data(), 2, 7);
      const double ref_loss = ref.forward_backward(tokens.data(), targets.data(), 2, 7);
      CHECK(std::abs(loss - ref_loss) <= tolerance * (1.0 + std::abs(ref_loss)));
      const auto grads = parameter_values(model, true), ref_grads = parameter_values(ref, true);
      REQUIRE(grads.size() == ref_grads.size());
      for (std::size_t i = 0; i < grads.size(); ++i) {
        INFO("gradient of " << grads[i].first << ", step " << step);
        CHECK(test_util::max_scaled_diff(grads[i].second, ref_grads[i].second) <= tolerance);
      }
      adamw.step(model, 1e-2);
      ref_adamw.step(ref, 1e-2);
    }
    const auto values = parameter_values(model, false), ref_values = parameter_values(ref, false);
    for (std::size_t i = 0; i < values.size(); ++i) {
      INFO("value of " << values[i].first << " after two AdamW steps");
      CHECK(test_util::max_scaled_diff(values[i].second, ref_values[i].second) <= tolerance);
    }
  }
}

}  // namespace device_cases

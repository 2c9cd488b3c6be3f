// Test cases written once as templates over the device and instantiated for every device the test
// program can use (cpu in the host test programs, cuda in tests/cuda/test_cuda.cu), each device
// compared against the `reference` device (the plain kernels of kernels/reference/).
#pragma once

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "attention_cases.hpp"
#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/fit_body.hpp"
#include "tokenformer/layers/transformer_layer.hpp"
#include "tokenformer/model/copy_parameters.hpp"
#include "tokenformer/model/generation.hpp"
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

/// Every kernel but attention (see above) on `Device` against the reference device, on odd shapes:
/// gemm (every transpose, alpha and beta), Θ forward and backward (every normalization, pinned
/// scales), LayerNorm forward and backward (plain and affine), rotary forward and backward,
/// embedding forward and backward, the fused cross-entropy and the fused AdamW step. Forward results
/// within `forward_tolerance` (gemm: times √(K+1)), backward within `backward_tolerance`.
template <class T, class Device>
void kernels_match_reference(double forward_tolerance, double backward_tolerance, Device device = {}) {
  using test_util::max_scaled_diff;
  using test_util::random_vector;
  const reference ref;
  std::uint64_t seed = 700;
  const auto rnd = [&](index_t n, double stddev = 1.0) {
    return random_vector<T>(static_cast<std::size_t>(n), seed++, stddev);
  };
  const auto same = [&](const std::vector<T>& a, const std::vector<T>& b, double tolerance, const std::string& what) {
    INFO(Device::name() << " against reference: " << what);
    CHECK(max_scaled_diff(a, b) <= tolerance);
  };
  for (const auto& mnk : {std::array<index_t, 3>{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {3, 129, 200}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (const auto& ab : {std::array<T, 2>{T(1), T(0)}, {T(0.5), T(1)}}) {
          const index_t M = mnk[0], N = mnk[1], K = mnk[2];
          const auto A = rnd(M * K), B = rnd(K * N), C0 = rnd(M * N);
          std::vector<T> C = C0;
          kernels::gemm(ref, C.data(), N, A.data(), ta ? M : K, ta, B.data(), tb ? K : N, tb, M, N, K, ab[0], ab[1]);
          auto dA = upload(A, device), dB = upload(B, device), dC = upload(C0, device);
          kernels::gemm(device, dC.data(), N, dA.data(), ta ? M : K, ta, dB.data(), tb ? K : N, tb, M, N, K, ab[0],
                        ab[1]);
          same(download(dC), C, forward_tolerance * std::sqrt(static_cast<double>(K) + 1.0),
               "gemm " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K));
        }
  for (Normalization kind : all_normalizations)
    for (const auto& shape : {std::array<index_t, 2>{1, 1}, {3, 7}, {17, 31}, {9, 257}})
      for (index_t scale : {shape[1], 2 * shape[1] + 1}) {
        const index_t rows = shape[0], n = shape[1];
        const auto scores = rnd(rows * n, 2.0), dw = rnd(rows * n);
        std::vector<T> out(scores.size()), ds(scores.size());
        kernels::pattention_norm_forward(ref, out.data(), scores.data(), rows, n, kind, scale);
        kernels::pattention_norm_backward(ref, ds.data(), dw.data(), scores.data(), rows, n, kind, scale);
        auto d_scores = upload(scores, device), d_dw = upload(dw, device),
             d_out = upload(std::vector<T>(out.size(), T(7)), device),
             d_ds = upload(std::vector<T>(ds.size(), T(7)), device);
        kernels::pattention_norm_forward(device, d_out.data(), d_scores.data(), rows, n, kind, scale);
        kernels::pattention_norm_backward(device, d_ds.data(), d_dw.data(), d_scores.data(), rows, n, kind, scale);
        const std::string what = std::string("pattention_norm ") + to_string(kind) + " " + std::to_string(rows) + "x" +
                                 std::to_string(n) + " scale " + std::to_string(scale);
        same(download(d_out), out, forward_tolerance, what);
        same(download(d_ds), ds, backward_tolerance, what + " backward");
      }
  for (bool affine : {false, true})
    for (const auto& shape : {std::array<index_t, 2>{1, 1}, {3, 5}, {40, 77}}) {
      const index_t rows = shape[0], C = shape[1];
      auto x = rnd(rows * C, 3.0);
      for (auto& v : x) v += T(5);  // a large mean tests the two-pass variance
      const auto w = rnd(C), b = rnd(C), dy = rnd(rows * C);
      std::vector<T> y(x.size()), mean(static_cast<std::size_t>(rows)), rstd(mean.size()), dx(x.size()),
          dw(static_cast<std::size_t>(C), T(0)), db(dw.size(), T(0));
      const T* wp = affine ? w.data() : nullptr;
      kernels::layer_norm_forward(ref, y.data(), mean.data(), rstd.data(), x.data(), wp, affine ? b.data() : nullptr,
                                  rows, C, 1e-5);
      kernels::layer_norm_backward(ref, dx.data(), affine ? dw.data() : nullptr, affine ? db.data() : nullptr,
                                   dy.data(), x.data(), wp, mean.data(), rstd.data(), rows, C);
      auto d_x = upload(x, device), d_w = upload(w, device), d_b = upload(b, device), d_dy = upload(dy, device),
           d_y = upload(std::vector<T>(y.size(), T(7)), device), d_mean = upload(mean, device),
           d_rstd = upload(rstd, device), d_dx = upload(std::vector<T>(x.size(), T(7)), device),
           d_dw = upload(std::vector<T>(dw.size(), T(0)), device),
           d_db = upload(std::vector<T>(db.size(), T(0)), device);
      const T* d_wp = affine ? d_w.data() : nullptr;
      kernels::layer_norm_forward(device, d_y.data(), d_mean.data(), d_rstd.data(), d_x.data(), d_wp,
                                  affine ? d_b.data() : nullptr, rows, C, 1e-5);
      kernels::layer_norm_backward(device, d_dx.data(), affine ? d_dw.data() : nullptr, affine ? d_db.data() : nullptr,
                                   d_dy.data(), d_x.data(), d_wp, d_mean.data(), d_rstd.data(), rows, C);
      const std::string what =
          "layer_norm " + std::to_string(rows) + "x" + std::to_string(C) + (affine ? " affine" : "");
      same(download(d_y), y, forward_tolerance, what);
      same(download(d_mean), mean, forward_tolerance, what + " mean");
      same(download(d_rstd), rstd, forward_tolerance, what + " rstd");
      same(download(d_dx), dx, backward_tolerance, what + " backward");
      same(download(d_dw), dw, backward_tolerance, what + " d_weight");
      same(download(d_db), db, backward_tolerance, what + " d_bias");
    }
  for (index_t rot : {index_t{4}, index_t{8}}) {
    const index_t B = 2, T_len = 5, H = 3, D = 8;
    const auto x = rnd(B * T_len * H * D);
    std::vector<T> y = x, dx = x;
    kernels::rotary_forward(ref, y.data(), B, T_len, H, D, rot, 10000.0, 3);
    kernels::rotary_backward(ref, dx.data(), B, T_len, H, D, rot, 10000.0, 3);
    auto d_y = upload(x, device), d_dx = upload(x, device);
    kernels::rotary_forward(device, d_y.data(), B, T_len, H, D, rot, 10000.0, 3);
    kernels::rotary_backward(device, d_dx.data(), B, T_len, H, D, rot, 10000.0, 3);
    same(download(d_y), y, forward_tolerance, "rotary dims " + std::to_string(rot));
    same(download(d_dx), dx, backward_tolerance, "rotary backward dims " + std::to_string(rot));
  }
  for (index_t n : {index_t(1), index_t(37), index_t(4099)}) {  // vector body, tails, several chunks
    const auto x = rnd(n, 2.5), dy = rnd(n);
    std::vector<T> y(static_cast<std::size_t>(n)), dx(static_cast<std::size_t>(n));
    kernels::gelu_forward(ref, y.data(), x.data(), n);
    kernels::gelu_backward(ref, dx.data(), dy.data(), x.data(), n);
    auto g_x = upload(x, device), g_y = upload(std::vector<T>(y.size(), T(7)), device), g_dy = upload(dy, device);
    kernels::gelu_forward(device, g_y.data(), g_x.data(), n);
    kernels::gelu_backward(device, g_dy.data(), g_dy.data(), g_x.data(), n);  // in place, as the layers use it
    same(download(g_y), y, forward_tolerance, "gelu n=" + std::to_string(n));
    same(download(g_dy), dx, backward_tolerance, "gelu backward n=" + std::to_string(n));
  }
  {
    const index_t V = 11, C = 7, N = 23;
    std::vector<std::int32_t> ids(static_cast<std::size_t>(N));
    for (index_t i = 0; i < N; ++i) ids[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7 + 3) % V);
    const auto table = rnd(V * C), dout = rnd(N * C), d_table0 = rnd(V * C);
    std::vector<T> out(static_cast<std::size_t>(N * C)), d_table = d_table0;
    kernels::embedding_forward(ref, out.data(), ids.data(), table.data(), N, C);
    kernels::embedding_backward(ref, d_table.data(), dout.data(), ids.data(), N, C);
    auto g_ids = upload(ids, device);
    auto g_table = upload(table, device), g_out = upload(std::vector<T>(out.size(), T(7)), device),
         g_dout = upload(dout, device), g_d_table = upload(d_table0, device);
    kernels::embedding_forward(device, g_out.data(), g_ids.data(), g_table.data(), N, C);
    kernels::embedding_backward(device, g_d_table.data(), g_dout.data(), g_ids.data(), N, C);
    same(download(g_out), out, 0.0, "embedding");
    same(download(g_d_table), d_table, backward_tolerance, "embedding backward (accumulates, repeated ids)");
  }
  {
    const index_t N = 7, V = 19;
    const std::vector<std::int32_t> targets{3, 0, 18, -1, 7, 7, 1};
    const auto logits = rnd(N * V, 3.0);
    std::vector<T> grad = logits, losses(static_cast<std::size_t>(N));
    const double total =
        kernels::cross_entropy_forward_backward(ref, grad.data(), losses.data(), targets.data(), N, V, 0.25);
    auto g_grad = upload(logits, device), g_losses = upload(std::vector<T>(losses.size(), T(7)), device);
    auto g_targets = upload(targets, device);
    const double g_total =
        kernels::cross_entropy_forward_backward(device, g_grad.data(), g_losses.data(), g_targets.data(), N, V, 0.25);
    INFO(Device::name() << " against reference: cross-entropy total");
    CHECK(std::abs(g_total - total) <= forward_tolerance * (1.0 + std::abs(total)));
    same(download(g_losses), losses, forward_tolerance, "cross-entropy losses (ignored row gives 0)");
    same(download(g_grad), grad, backward_tolerance, "cross-entropy gradient");
  }
  {
    const index_t n1 = 37, n2 = 5;
    std::vector<std::vector<T>> host;
    for (index_t n : {n1, n2}) {
      host.push_back(rnd(n));       // p
      host.push_back(rnd(n, 0.1));  // m
      auto v = rnd(n, 0.1);
      for (auto& x : v) x = x * x;  // v >= 0
      host.push_back(v);
      host.push_back(rnd(n));  // g
    }
    auto r = host;
    const std::vector<kernels::AdamWSegment<T>> ref_segments{
        {r[0].data(), r[1].data(), r[2].data(), r[3].data(), n1, 0.1},
        {r[4].data(), r[5].data(), r[6].data(), r[7].data(), n2, 0.0}};
    kernels::adamw_step_many(ref, ref_segments.data(), ref_segments.size(), 1e-2, 0.9, 0.95, 1e-8, 3L);
    std::vector<Tensor<T, Device>> d;
    for (const auto& h : host) d.push_back(upload(h, device));
    const std::vector<kernels::AdamWSegment<T>> segments{{d[0].data(), d[1].data(), d[2].data(), d[3].data(), n1, 0.1},
                                                         {d[4].data(), d[5].data(), d[6].data(), d[7].data(), n2, 0.0}};
    // The segment list itself lives in host memory for every device (the kernel copies it as needed).
    kernels::adamw_step_many(device, segments.data(), segments.size(), 1e-2, 0.9, 0.95, 1e-8, 3L);
    for (std::size_t i : {0, 1, 2, 4, 5, 6})
      same(download(d[i]), r[i], forward_tolerance, "adamw_step_many tensor " + std::to_string(i));
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

/// A language model of `config` with body `Block` in double on `Device` against the same model on
/// the reference device: logits, the loss, every parameter gradient, and every parameter after two
/// AdamW steps (B = 2 sequences of 7 tokens).
template <template <class, class> class Block, class Device>
void model_case_matches_reference(const ModelConfig& config, double tolerance, Device device, const std::string& what) {
  LanguageModel<presets::Dynamic<double>, reference, Block> ref(config);
  Rng rng(11);
  ref.initialize(rng);
  LanguageModel<presets::Dynamic<double>, Device, Block> model(config, device);
  copy_parameters(model, ref);
  const std::vector<std::int32_t> tokens{1, 5, 22, 7, 7, 0, 13, 4, 9, 21, 3, 3, 18, 2},
      targets{5, 22, 7, 7, 0, 13, -1, 9, 21, 3, 3, 18, 2, 6};
  INFO(Device::name() << " against reference, " << what << ", " << to_string(config.normalization));
  const auto logits = download(model.forward(tokens, 2, 7)), ref_logits = download(ref.forward(tokens, 2, 7));
  CHECK(test_util::max_scaled_diff(logits, ref_logits) <= tolerance);
  AdamW adamw, ref_adamw;
  for (int step = 0; step < 2; ++step) {
    model.zero_grad();
    ref.zero_grad();
    const double loss = model.forward_backward(tokens, targets, 2, 7);
    const double ref_loss = ref.forward_backward(tokens, targets, 2, 7);
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

/// The TokenFormer language model (2 layers, C 16) for every normalization.
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
    model_case_matches_reference<TokenFormerLayer>(config, tolerance, device, "TokenFormer");
  }
}

/// The FIT language model, decoder and encoder (groups of 3, so the last of 3 groups is padded),
/// for every normalization.
template <class Device>
void fit_model_matches_reference(double tolerance, Device device = {}) {
  for (bool causal : {true, false}) {
    for (Normalization kind : all_normalizations) {
      ModelConfig config;
      config.architecture = Architecture::fit;
      config.fit.layers = "(1)1(1)";
      config.fit.group_size = 3;
      config.fit.latents_per_group = 2;
      config.fit.latent_size = 8;
      config.fit.latent_heads = 2;
      config.fit.max_groups = 4;
      config.fit.causal = causal;
      config.num_layers = 5;
      config.hidden_size = 16;
      config.num_heads = 2;
      config.qkv_tokens = 7;
      config.proj_tokens = 5;
      config.ffn_tokens = 9;
      config.vocab_size = 23;
      config.rotary_pct = 0.5;
      config.normalization = kind;
      model_case_matches_reference<FitBody>(config, tolerance, device, causal ? "FIT decoder" : "FIT encoder");
    }
  }
}

/// The plain Transformer language model (Linear layers with biases, GeLU MLP, affine norms).
template <class Device>
void transformer_model_matches_reference(double tolerance, Device device = {}) {
  ModelConfig config;
  config.architecture = Architecture::transformer;
  config.num_layers = 2;
  config.hidden_size = 16;
  config.num_heads = 2;
  config.intermediate_size = 24;
  config.vocab_size = 23;
  config.rotary_pct = 0.5;
  model_case_matches_reference<TransformerLayer>(config, tolerance, device, "Transformer");
}

/// attention_decode on `Device` against the reference attention_forward of one query with the
/// end-aligned causal mask (which sees every key), for several cache lengths and head sizes.
template <class T, class Device>
void attention_decode_matches_reference(double tolerance, Device device = {}) {
  std::uint64_t seed = 900;
  for (const auto& [keys, H, D] :
       std::vector<std::array<index_t, 3>>{{1, 1, 4}, {5, 2, 8}, {70, 3, 16}, {300, 4, 64}}) {
    INFO(Device::name() << ": attention_decode with " << keys << " keys, " << H << " heads of " << D);
    const index_t C = H * D;
    const auto q = test_util::random_vector<T>(static_cast<std::size_t>(C), seed),
               k = test_util::random_vector<T>(static_cast<std::size_t>(keys * C), seed + 1),
               v = test_util::random_vector<T>(static_cast<std::size_t>(keys * C), seed + 2);
    seed += 3;
    std::vector<T> expected(static_cast<std::size_t>(C));
    const kernels::AttentionShape s{1, 1, keys, H, D, kernels::AttentionMask::causal, 1, 1};
    kernels::attention_forward(reference{}, expected.data(), static_cast<T*>(nullptr), q.data(), k.data(), v.data(), s);
    auto dq = upload(q, device), dk = upload(k, device), dv = upload(v, device);
    Tensor<T, Device> out(Shape{C}, device), scratch(Shape{H * keys}, device);
    kernels::attention_decode(device, out.data(), dq.data(), dk.data(), dv.data(), scratch.data(), keys, H, D);
    CHECK(test_util::max_scaled_diff(download(out), expected) <= tolerance);
  }
}

/// KV-cache inference on `Device` against the full recompute on the same device, in double, for a
/// model with Block: three prompts of different lengths prefilled, then decode steps; at every step
/// the cached logits of each sequence equal the last row of a forward over its whole sequence. Then
/// the same with prompts of equal length (one batched prefill).
template <template <class, class> class Block, class Device>
void kv_cache_matches_recompute(const ModelConfig& config, double tolerance, Device device, const std::string& what) {
  LanguageModel<presets::Dynamic<double>, Device, Block> model(config, device), full(config, device);
  Rng rng(17);
  model.initialize(rng);
  copy_parameters(full, model);
  const index_t V = model.vocab_size();
  for (const bool equal : {false, true}) {
    INFO(Device::name() << ", " << what << (equal ? ", prompts of equal length" : ", prompts of lengths 5, 1, 9"));
    std::vector<std::vector<std::int32_t>> sequences =
        equal ? std::vector<std::vector<std::int32_t>>{{3, 1, 4, 1}, {5, 9, 2, 6}, {5, 3, 5, 8}}
              : std::vector<std::vector<std::int32_t>>{{3, 1, 4, 1, 5}, {9}, {2, 6, 5, 3, 5, 8, 9, 7, 9}};
    Generator<presets::Dynamic<double>, Device, Block> generator(model, 3, 16);
    std::vector<double> logits = generator.prefill(sequences);
    for (int step = 0; step < 5; ++step) {
      std::vector<std::int32_t> next(3);
      for (std::size_t r = 0; r < 3; ++r) {
        const auto& s = sequences[r];
        const auto all = download(full.forward(s, 1, static_cast<index_t>(s.size())));
        const std::vector<double> last(all.end() - V, all.end()),
            cached(logits.begin() + static_cast<std::ptrdiff_t>(r) * V,
                   logits.begin() + static_cast<std::ptrdiff_t>(r + 1) * V);
        INFO("sequence " << r << " at length " << s.size());
        CHECK(generator.length(static_cast<index_t>(r)) == static_cast<index_t>(s.size()));
        CHECK(test_util::max_scaled_diff(cached, last) <= tolerance);
        next[r] = static_cast<std::int32_t>((7 * step + 3 * static_cast<int>(r) + 1) % V);
        sequences[r].push_back(next[r]);
      }
      logits = generator.step(next);
    }
  }
}

/// The KV cache of the TokenFormer language model and of the plain Transformer.
template <class Device>
void kv_cache_generation_matches_recompute(double tolerance, Device device = {}) {
  ModelConfig config;
  config.num_layers = 2;
  config.hidden_size = 16;
  config.num_heads = 2;
  config.qkv_tokens = 12;
  config.proj_tokens = 10;
  config.ffn_tokens = 20;
  config.vocab_size = 23;
  config.rotary_pct = 0.5;
  kv_cache_matches_recompute<TokenFormerLayer>(config, tolerance, device, "TokenFormer");
  ModelConfig transformer = config;
  transformer.architecture = Architecture::transformer;
  transformer.qkv_tokens = transformer.proj_tokens = transformer.ffn_tokens = 0;
  transformer.intermediate_size = 24;
  kv_cache_matches_recompute<TransformerLayer>(transformer, tolerance, device, "Transformer");
}

}  // namespace device_cases

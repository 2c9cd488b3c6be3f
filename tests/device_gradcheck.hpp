// The float64 finite-difference gradient checks of every backward kernel, written once as templates
// over the device: each case runs the device's forward and backward kernels on device memory.
// Instantiated for the reference and cpu devices in tests/test_gradcheck_kernels.cpp and for cuda in
// tests/cuda/test_cuda.cu.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "attention_cases.hpp"
#include "device_cases.hpp"
#include "gradcheck.hpp"
#include "tokenformer/kernels/kernels.hpp"

namespace device_gradcheck {

using namespace tokenformer;
using device_cases::download;
using device_cases::upload;
using gradcheck::GradCase;
using gradcheck::Inputs;
using gradcheck::Vector;
using test_util::random_vector;

/// Every kernel's gradient-check cases on `device`; max_entries is the harness's per-input limit.
template <class Device>
std::vector<GradCase> kernel_cases(Device device = {}) {
  const std::string on = std::string(Device::name()) + " ";
  std::vector<GradCase> cases;
  // Θ of Pattention, every normalization, at the token count and with a pinned (larger) scale.
  for (auto kind : all_normalizations)
    for (const auto& shape : {std::array<index_t, 2>{1, 1}, {3, 5}, {4, 19}, {2, 37}})
      for (index_t scale : {shape[1], 3 * shape[1] + 2}) {
        const index_t rows = shape[0], n = shape[1];  // plain variables: lambdas capture them (C++17)
        GradCase c;
        c.name =
            on + "pattention_norm " + to_string(kind) + " n=" + std::to_string(n) + " scale " + std::to_string(scale);
        c.inputs = {random_vector<double>(static_cast<std::size_t>(rows * n), 11, 1.5)};
        c.forward = [=](const Inputs& in) {
          auto s = upload(in[0], device), out = upload(Vector(in[0].size()), device);
          kernels::pattention_norm_forward(device, out.data(), s.data(), rows, n, kind, scale);
          return download(out);
        };
        c.backward = [=](const Inputs& in, const Vector& dy) {
          auto s = upload(in[0], device), g = upload(dy, device), ds = upload(Vector(in[0].size(), 7.0), device);
          kernels::pattention_norm_backward(device, ds.data(), g.data(), s.data(), rows, n, kind, scale);
          return Inputs{download(ds)};
        };
        cases.push_back(c);
      }
  // LayerNorm, non-parametric and affine.
  for (bool affine : {false, true}) {
    const index_t rows = 5, C = 13;
    GradCase c;
    c.name = on + "layer_norm affine=" + (affine ? "1" : "0");
    c.inputs = {random_vector<double>(rows * C, 21, 2.0), random_vector<double>(C, 22), random_vector<double>(C, 23)};
    c.forward = [=](const Inputs& in) {
      auto x = upload(in[0], device), w = upload(in[1], device), b = upload(in[2], device),
           out = upload(Vector(in[0].size()), device);
      kernels::layer_norm_forward(device, out.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr),
                                  x.data(), affine ? w.data() : nullptr, affine ? b.data() : nullptr, rows, C, 1e-5);
      return download(out);
    };
    c.backward = [=](const Inputs& in, const Vector& dy) {
      auto x = upload(in[0], device), w = upload(in[1], device), b = upload(in[2], device), g = upload(dy, device),
           y = upload(Vector(in[0].size()), device), mean = upload(Vector(rows), device),
           rstd = upload(Vector(rows), device), dx = upload(Vector(in[0].size(), 7.0), device),
           dw = upload(Vector(C, 0.0), device), db = upload(Vector(C, 0.0), device);
      const double* wp = affine ? w.data() : nullptr;
      kernels::layer_norm_forward(device, y.data(), mean.data(), rstd.data(), x.data(), wp, affine ? b.data() : nullptr,
                                  rows, C, 1e-5);
      kernels::layer_norm_backward(device, dx.data(), affine ? dw.data() : nullptr, affine ? db.data() : nullptr,
                                   g.data(), x.data(), wp, mean.data(), rstd.data(), rows, C);
      return Inputs{download(dx), download(dw), download(db)};
    };
    if (!affine) c.skip = {1, 2};
    cases.push_back(c);
  }
  // Rotary embeddings, partial and full rotation, with a position offset.
  for (index_t rot : {index_t{4}, index_t{8}}) {
    const index_t B = 2, T = 6, H = 2, D = 8;
    GradCase c;
    c.name = on + "rotary dims " + std::to_string(rot);
    c.inputs = {random_vector<double>(B * T * H * D, 31)};
    c.forward = [=](const Inputs& in) {
      auto x = upload(in[0], device);
      kernels::rotary_forward(device, x.data(), B, T, H, D, rot, 10000.0, 3);
      return download(x);
    };
    c.backward = [=](const Inputs&, const Vector& dy) {
      auto g = upload(dy, device);
      kernels::rotary_backward(device, g.data(), B, T, H, D, rot, 10000.0, 3);
      return Inputs{download(g)};
    };
    cases.push_back(c);
  }
  // Attention, every mask and cross lengths; the backward takes the forward's output and lse.
  std::uint64_t seed = 41;
  for (const auto& s : test_util::attention_gradcheck_cases()) {
    const auto nq = static_cast<std::size_t>(s.query_rows() * s.width()),
               nk = static_cast<std::size_t>(s.key_rows() * s.width());
    GradCase c;
    c.name = on + "attention " + s.describe();
    c.inputs = {random_vector<double>(nq, seed), random_vector<double>(nk, seed + 1),
                random_vector<double>(nk, seed + 2)};
    seed += 3;
    c.forward = [=](const Inputs& in) {
      auto q = upload(in[0], device), k = upload(in[1], device), v = upload(in[2], device),
           out = upload(Vector(nq), device);
      kernels::attention_forward(device, out.data(), nullptr, q.data(), k.data(), v.data(), s);
      return download(out);
    };
    c.backward = [=](const Inputs& in, const Vector& dy) {
      auto q = upload(in[0], device), k = upload(in[1], device), v = upload(in[2], device), g = upload(dy, device),
           out = upload(Vector(nq), device), lse = upload(Vector(static_cast<std::size_t>(s.lse_size())), device),
           dq = upload(Vector(nq, 5.0), device), dk = upload(Vector(nk, 5.0), device),
           dv = upload(Vector(nk, 5.0), device);  // stale values must be overwritten
      kernels::attention_forward(device, out.data(), lse.data(), q.data(), k.data(), v.data(), s);
      kernels::attention_backward(device, dq.data(), dk.data(), dv.data(), g.data(), q.data(), k.data(), v.data(),
                                  out.data(), lse.data(), s);
      return Inputs{download(dq), download(dk), download(dv)};
    };
    cases.push_back(c);
  }
  {  // Embedding with repeated ids.
    const index_t V = 6, C = 5, N = 9;
    const std::vector<std::int32_t> tokens{0, 3, 3, 5, 1, 0, 3, 2, 5};
    GradCase c;
    c.name = on + "embedding";
    c.inputs = {random_vector<double>(V * C, 51)};
    c.forward = [=](const Inputs& in) {
      auto table = upload(in[0], device), out = upload(Vector(N * C), device);
      auto ids = upload(tokens, device);
      kernels::embedding_forward(device, out.data(), ids.data(), table.data(), N, C);
      return download(out);
    };
    c.backward = [=](const Inputs&, const Vector& dy) {
      auto g = upload(dy, device), d_table = upload(Vector(V * C, 0.0), device);
      auto ids = upload(tokens, device);
      kernels::embedding_backward(device, d_table.data(), g.data(), ids.data(), N, C);
      return Inputs{download(d_table)};
    };
    cases.push_back(c);
  }
  {  // Fused softmax cross-entropy with ignored rows: per-row losses as the output.
    const index_t N = 7, V = 19;
    const std::vector<std::int32_t> targets{3, 0, 18, -1, 7, 7, 1};
    GradCase c;
    c.name = on + "cross_entropy";
    c.inputs = {random_vector<double>(N * V, 61, 3.0)};
    c.forward = [=](const Inputs& in) {
      auto logits = upload(in[0], device), losses = upload(Vector(N), device);
      auto t = upload(targets, device);
      kernels::cross_entropy_forward_backward(device, logits.data(), losses.data(), t.data(), N, V, 1.0);
      return download(losses);
    };
    c.backward = [=](const Inputs& in, const Vector& dy) {
      // d loss_i / d logits_i = softmax − onehot; weight row i by dy[i].
      auto logits = upload(in[0], device), losses = upload(Vector(N), device);
      auto t = upload(targets, device);
      kernels::cross_entropy_forward_backward(device, logits.data(), losses.data(), t.data(), N, V, 1.0);
      Vector grad = download(logits);
      for (index_t i = 0; i < N; ++i)
        for (index_t j = 0; j < V; ++j) grad[static_cast<std::size_t>(i * V + j)] *= dy[static_cast<std::size_t>(i)];
      return Inputs{grad};
    };
    cases.push_back(c);
  }
  // Exact GeLU, elementwise (around 0 and in both tails).
  {
    const index_t n = 31;
    GradCase c;
    c.name = on + "gelu";
    c.inputs = {random_vector<double>(static_cast<std::size_t>(n), 41, 2.5)};
    c.forward = [=](const Inputs& in) {
      auto x = upload(in[0], device), y = upload(Vector(in[0].size()), device);
      kernels::gelu_forward(device, y.data(), x.data(), n);
      return download(y);
    };
    c.backward = [=](const Inputs& in, const Vector& dy) {
      auto x = upload(in[0], device), g = upload(dy, device);
      kernels::gelu_backward(device, g.data(), g.data(), x.data(), n);
      return Inputs{download(g)};
    };
    cases.push_back(c);
  }
  return cases;
}

}  // namespace device_gradcheck

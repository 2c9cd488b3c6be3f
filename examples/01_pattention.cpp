// Example 01: Pattention, attention between input tokens and *parameter tokens*.
//
// What you will learn
//   1. What a Pattention layer computes: out = Θ(X · K_Pᵀ) · V_P.
//   2. What each of the three normalizations Θ does to one row of scores.
//   3. Why a Pattention with P tokens costs like an MLP with hidden size P.
//   4. Why this makes a model growable: new tokens with zero keys change nothing (with a pinned
//      scale), yet they train.
// Read first: include/tokenformer/layers/pattention.hpp (the layer, 100 lines) and
// include/tokenformer/kernels/reference/pattention_norm.hpp (Θ written plainly).
// Run: ./build/examples/01_pattention      (exit status 0 when every self-check passes)
#include <cmath>
#include <cstdio>
#include <vector>

#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;

namespace {

int failures = 0;
void check(bool ok, const char* what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAILED", what);
  if (!ok) ++failures;
}

void print_row(const char* label, const float* x, index_t n) {
  std::printf("  %-34s", label);
  for (index_t i = 0; i < n; ++i) std::printf(" %8.4f", static_cast<double>(x[i]));
  std::printf("\n");
}

}  // namespace

int main() {
  // ---- 1. The layer -------------------------------------------------------------------------------
  // A linear layer maps d_in -> d_out with a [d_in, d_out] weight matrix. A Pattention stores the same
  // mapping as P learnable *tokens*: P keys of size d_in and P values of size d_out. Each input row is a
  // query; it scores every key, normalizes the scores with Θ, and returns the weighted mix of values.
  const index_t d_in = 4, d_out = 3, P = 5, M = 2;
  std::printf("1. A Pattention with d_in=%td, d_out=%td and P=%td parameter tokens, on M=%td input rows\n", d_in, d_out,
              P, M);
  Pattention<float> layer(d_in, d_out, P, Normalization::l2_norm_gelu);
  Rng rng(2024);
  layer.initialize(rng, /*key_std=*/0.5, /*value_std=*/0.5);

  Tensor<float> x(Shape{M, d_in});
  const float inputs[] = {1.0f, -0.5f, 0.25f, 2.0f,   // row 0
                          0.0f, 0.0f,  0.0f,  0.0f};  // row 1: all zero (no signal)
  x.copy_from_host(inputs);
  Tensor<float> out(Shape{M, d_out});
  layer.forward(out, x);

  // The same thing with Eigen, step by step: scores = X·Kᵀ, weights = Θ(scores), out = weights·V.
  RowMatrix<float> scores = x.matrix() * layer.key_tokens().matrix().transpose();  // [M, P]
  print_row("scores of row 0 (x · k_i):", scores.data(), P);

  // ---- 2. The three normalizations ----------------------------------------------------------------
  std::printf("\n2. Θ turns a row of P scores into P weights\n");
  std::vector<float> weights(static_cast<std::size_t>(P));
  for (auto kind : all_normalizations) {
    kernels::reference::pattention_norm_forward(weights.data(), scores.data(), 1, P, kind, P);
    char label[64];
    std::snprintf(label, sizeof label, "%s:", to_string(kind));
    print_row(label, weights.data(), P);
  }
  std::printf(
      "  l2_norm_gelu (default): scale the row to L2 norm sqrt(P), then GeLU. Negative scores give small\n"
      "    negative weights, large ones pass through: a smooth, non-saturating relative of softmax.\n"
      "  gelu_l2_norm: GeLU first, then scale to norm sqrt(P).\n"
      "  softmax: exp, then scale so the weights sum to P (not 1): the classic attention weights times P.\n");

  // Check the layer against the step-by-step computation.
  RowMatrix<float> expected_weights(M, P);
  kernels::reference::pattention_norm_forward(expected_weights.data(), scores.data(), M, P, Normalization::l2_norm_gelu,
                                              P);
  RowMatrix<float> expected = expected_weights * layer.value_tokens().matrix();  // [M, d_out]
  print_row("layer output, row 0:", out.data(), d_out);
  print_row("step by step, row 0:", expected.data(), d_out);
  check((out.matrix() - expected).cwiseAbs().maxCoeff() < 1e-5f, "layer output = Θ(X·Kᵀ)·V computed step by step");
  check(out.matrix().row(1).isZero(0.0f), "an all-zero input row gives an all-zero output (no 0/0 NaN)");

  // ---- 3. Cost ------------------------------------------------------------------------------------
  // Two GEMMs: [M, d_in] x [d_in, P] and [M, P] x [P, d_out], exactly the two matrix products of an
  // MLP d_in -> P -> d_out. The normalization is O(M·P), negligible next to the GEMMs.
  const double flops = 2.0 * M * P * (d_in + d_out);
  std::printf("\n3. Cost: %.0f FLOPs for M=%td rows = 2·M·P·(d_in + d_out), the same as an MLP with hidden size P\n",
              flops, M);
  std::printf("   (the official 150M model's FFN: P = 3072 tokens of 768 features, like a 768-3072-768 MLP)\n");

  // ---- 4. Growth ----------------------------------------------------------------------------------
  // P is independent of d_in and d_out, so the layer can take more tokens without changing its
  // interface. Append 3 tokens with zero keys and small random values: their scores are 0, GeLU(0) = 0,
  // and a zero score adds nothing to the row's L2 norm, so with the normalization's sqrt(P) kept at the
  // old P ("pinned") the output does not change. (This is TokenInit::zero_keys in grow().) All-zero
  // tokens would change nothing too, but they would never train: the gradient of a key is multiplied
  // by its value. Random keys with zero values are not exact: their scores enter the row's norm.
  std::printf(
      "\n4. Growth: append 3 tokens, keys zero and values random (P = %td -> %td), sqrt(P) pinned to sqrt(%td)\n", P,
      P + 3, P);
  Tensor<float> before = out;
  layer.pin_scale_tokens(P);
  std::vector<float> new_keys(static_cast<std::size_t>(3 * d_in), 0.0f),
      new_values(static_cast<std::size_t>(3 * d_out));
  for (auto& v : new_values) v = static_cast<float>(rng.normal(0.0, 0.5));
  layer.append_tokens(3, nullptr, 0.0, 0.0, new_keys.data(), new_values.data());
  layer.forward(out, x);
  print_row("output after growth, row 0:", out.data(), d_out);
  check((out.matrix() - before.matrix()).cwiseAbs().maxCoeff() < 1e-6f, "the grown layer computes what it did before");
  // One backward pass (upstream gradient all ones): the new keys get gradient through their values.
  layer.key_parameter().enable_training();
  layer.value_parameter().enable_training();
  Tensor<float> d_out_rows(Shape{M, d_out}), d_x(Shape{M, d_in});
  for (index_t i = 0; i < d_out_rows.size(); ++i) d_out_rows[i] = 1.0f;
  layer.forward(out, x);
  layer.backward(d_x, d_out_rows, x);
  const auto& key_grad = layer.key_parameter().grad;
  print_row("gradient of new key 0:", key_grad.data() + P * d_in, d_in);
  check(key_grad.matrix().bottomRows(3).norm() > 0.0f, "the new keys get gradient: training moves them");
  std::printf("   The layer has gained capacity in place, and training continues from the same function.\n");

  std::printf("\n%s\n", failures == 0 ? "All checks passed." : "Some checks FAILED.");
  return failures == 0 ? 0 : 1;
}

// Expected output (the values depend only on the seed):
// 1. A Pattention with d_in=4, d_out=3 and P=5 parameter tokens, on M=2 input rows
//   scores of row 0 (x · k_i):         -0.0551   0.7056  -0.3472  -2.1464   0.5989
//
// 2. Θ turns a row of P scores into P weights
//   l2_norm_gelu:                       -0.0250   0.4992  -0.1220  -0.0430   0.4048
//   gelu_l2_norm:                       -0.0839   1.7056  -0.4023  -0.1087   1.3821
//   softmax:                             0.8427   1.8033   0.6292   0.1041   1.6207
//   l2_norm_gelu (default): scale the row to L2 norm sqrt(P), then GeLU. Negative scores give small
//     negative weights, large ones pass through: a smooth, non-saturating relative of softmax.
//   gelu_l2_norm: GeLU first, then scale to norm sqrt(P).
//   softmax: exp, then scale so the weights sum to P (not 1): the classic attention weights times P.
//   layer output, row 0:                -0.5323  -0.2420  -0.1930
//   step by step, row 0:                -0.5323  -0.2420  -0.1930
//   [ok] layer output = Θ(X·Kᵀ)·V computed step by step
//   [ok] an all-zero input row gives an all-zero output (no 0/0 NaN)
//
// 3. Cost: 140 FLOPs for M=2 rows = 2·M·P·(d_in + d_out), the same as an MLP with hidden size P
//    (the official 150M model's FFN: P = 3072 tokens of 768 features, like a 768-3072-768 MLP)
//
// 4. Growth: append 3 tokens, keys zero and values random (P = 5 -> 8), sqrt(P) pinned to sqrt(5)
//   output after growth, row 0:         -0.5323  -0.2420  -0.1930
//   [ok] the grown layer computes what it did before
//   gradient of new key 0:              -0.6073   0.3036  -0.1518  -1.2145
//   [ok] the new keys get gradient: training moves them
//    The layer has gained capacity in place, and training continues from the same function.
//
// All checks passed.

// tokenformer/layers/linear.hpp: a Linear layer y = x·Wᵀ + b, the fixed matrix that Pattention replaces.
//
// W is [d_out, d_in] (PyTorch's layout) and b [d_out]. A Linear layer maps d_in features to d_out with
// d_in·d_out parameters fixed by the two sizes; a Pattention with the same sizes attends over P
// parameter tokens, P free, and grows by appending tokens. The plain Transformer baseline
// (layers/transformer_layer.hpp) uses Linear layers wherever a TokenFormer layer has a Pattention, with
// the same forward/backward signatures, so SelfAttention works with either.
// The bias is added as a rank-1 GEMM (ones[M] · bᵀ), and its gradient is onesᵀ · d_out: no kernel
// beyond gemm.
#pragma once

#include <string>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"

namespace tokenformer {

/// A Linear layer y = x·Wᵀ + b (W [d_out, d_in], b [d_out]): the fixed-size projection of the plain
/// Transformer baseline, with the forward/backward signatures of Pattention.
template <class T, class Device = cpu>
class Linear {
 public:
  Linear() = default;
  /// A [output_features, input_features] weight and an [output_features] bias, zero (see initialize).
  Linear(index_t input_features, index_t output_features, Device device = {}) : device_(device) {
    if (input_features <= 0 || output_features <= 0)
      throw config_error("Linear needs positive input and output features, got " + std::to_string(input_features) +
                         ", " + std::to_string(output_features));
    weight = Parameter<T, Device>(Shape{output_features, input_features}, device);
    bias = Parameter<T, Device>(Shape{output_features}, device, /*decayed=*/false);
  }

  Parameter<T, Device> weight;  ///< W (d_out, d_in)
  Parameter<T, Device> bias;    ///< b (d_out), not decayed

  index_t input_features() const { return weight.value.dim(1); }   ///< d_in
  index_t output_features() const { return weight.value.dim(0); }  ///< d_out

  /// Visits (name, Parameter&): "weight", "bias".
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    visit(std::string("weight"), weight);
    visit(std::string("bias"), bias);
  }

  /// weight ~ N(0, stddev) in row order, bias 0.
  void initialize(Rng& rng, double stddev) {
    std::vector<T> host(static_cast<std::size_t>(weight.size()));
    for (auto& x : host) x = static_cast<T>(rng.normal(0.0, stddev));
    weight.value.copy_from_host(host.data());
    bias.value.set_zero();
  }

  /// out = in · Wᵀ + b, or out += ... when `accumulate` (fuses a residual add).
  void forward(TensorView<T, Device> out,       // (M, d_out)
               TensorView<const T, Device> in,  // (M, d_in)
               bool accumulate = false) {
    const index_t M = in.rows(), din = input_features(), dout = output_features();
    if (in.cols() != din)
      throw shape_error("Linear input has " + std::to_string(in.cols()) + " features, expected " + std::to_string(din));
    expect_shape(Shape{out.rows(), out.cols()}, Shape{M, dout}, "Linear output");
    ensure_ones(M);
    // out (+)= in · Wᵀ                                                            (M, d_out)
    kernels::gemm(device_, out.data(), dout, in.data(), din, false, weight.value.data(), din, true, M, dout, din, T(1),
                  accumulate ? T(1) : T(0));
    // out += ones · bᵀ                                                             (M, d_out)
    kernels::gemm(device_, out.data(), dout, ones_.data(), 1, false, bias.value.data(), dout, false, M, dout, 1, T(1),
                  T(1));
  }

  /// Backward of a forward that received `in`: adds dL/dW and dL/db (unless frozen) and writes dL/d_in
  /// (adds to it when `accumulate`).
  void backward(TensorView<T, Device> d_in,         // (M, d_in)
                TensorView<const T, Device> d_out,  // (M, d_out)
                TensorView<const T, Device> in,     // (M, d_in)
                bool accumulate = false) {
    const index_t M = in.rows(), din = input_features(), dout = output_features();
    expect_shape(Shape{in.rows(), in.cols()}, Shape{M, din}, "Linear backward input");
    expect_shape(Shape{d_out.rows(), d_out.cols()}, Shape{M, dout}, "Linear output gradient");
    expect_shape(Shape{d_in.rows(), d_in.cols()}, Shape{M, din}, "Linear input gradient");
    if (!weight.training_enabled() || !bias.training_enabled())
      throw argument_error("Linear backward before enable_training()");
    ensure_ones(M);
    // dW += d_outᵀ · in                                                            (d_out, d_in)
    if (!weight.frozen)
      kernels::gemm(device_, weight.grad.data(), din, d_out.data(), dout, true, in.data(), din, false, dout, din, M,
                    T(1), T(1));
    // db += onesᵀ · d_out                                                          (1, d_out)
    if (!bias.frozen)
      kernels::gemm(device_, bias.grad.data(), dout, ones_.data(), 1, true, d_out.data(), dout, false, 1, dout, M, T(1),
                    T(1));
    // d_in (+)= d_out · W                                                          (M, d_in)
    kernels::gemm(device_, d_in.data(), din, d_out.data(), dout, false, weight.value.data(), din, false, M, din, dout,
                  T(1), accumulate ? T(1) : T(0));
  }

 private:
  void ensure_ones(index_t M) {
    if (ones_.size() >= M) return;  // the first M ones serve: fewer rows (decoding) allocate nothing
    ones_ = Tensor<T, Device>(Shape{M}, device_);
    const std::vector<T> host(static_cast<std::size_t>(M), T(1));
    ones_.copy_from_host(host.data());
  }

  Device device_{};
  Tensor<T, Device> ones_;  // (M) all ones, for the bias GEMMs
};

}  // namespace tokenformer

// tokenformer/core/parameter.hpp: a trainable tensor with its gradient and optimizer state.
//
// A Parameter owns its value and, once training is enabled, a gradient and the two AdamW moments of
// the same shape, side by side, so that everything that changes a parameter's shape (growth) changes
// its state with it. Layers expose their parameters through for_each_parameter(visitor), calling
// visitor(name, Parameter&); optimizers, checkpoints and growth use that one entry point.
#pragma once

#include <string>

#include "tokenformer/core/device.hpp"
#include "tokenformer/core/tensor.hpp"

namespace tokenformer {

template <class T, class Device = cpu>
struct Parameter {
  Parameter() = default;
  explicit Parameter(Shape shape, Device device = {}, bool decayed = true)
      : value(shape, device), weight_decay(decayed) {}

  Tensor<T, Device> value;
  Tensor<T, Device> grad;           // same shape as value while training, else empty
  Tensor<T, Device> first_moment;   // AdamW m (exp_avg)
  Tensor<T, Device> second_moment;  // AdamW v (exp_avg_sq)
  /// Whether AdamW's decoupled weight decay applies (not to norm weights and biases).
  bool weight_decay = true;
  /// Whether the optimizer leaves this parameter unchanged.
  bool frozen = false;

  const Shape& shape() const { return value.shape(); }
  index_t size() const { return value.size(); }
  /// True when the gradient and moments exist with the value's shape.
  bool training_enabled() const { return grad.shape() == value.shape() && first_moment.shape() == value.shape(); }

  /// Allocates the gradient and moments (zero) if missing, or resizes them to the value's shape,
  /// keeping their leading values (new entries start at zero).
  void enable_training() {
    for (auto* t : {&grad, &first_moment, &second_moment})
      if (t->shape() != value.shape()) {
        if (t->size() == 0) *t = Tensor<T, Device>(value.shape(), value.device());
        else t->resize(value.shape());
      }
  }
  void zero_grad() {
    if (grad.size() != 0) grad.set_zero();
  }
};

}  // namespace tokenformer

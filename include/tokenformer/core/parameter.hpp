// tokenformer/core/parameter.hpp: a trainable tensor with its gradient and optimizer state.
//
// A Parameter owns its value and, once training is enabled, a gradient and the two AdamW moments of
// the same shape, side by side, so that everything that changes a parameter's shape (growth) changes
// its state with it. Layers expose their parameters through for_each_parameter(visitor), calling
// visitor(name, Parameter&); optimizers, checkpoints and growth use that one entry point.
#pragma once

#include <algorithm>
#include <string>

#include "tokenformer/core/device.hpp"
#include "tokenformer/core/span.hpp"
#include "tokenformer/core/tensor.hpp"

namespace tokenformer {

/// A trainable tensor: its value and, once training is enabled, its gradient and AdamW moments of the
/// same shape, with the optimizer's per-parameter settings (decay, freezing, learning-rate scale).
template <class T, class Device = cpu>
struct Parameter {
  Parameter() = default;
  /// A zero value of `shape` on `device`, without gradient or moments; `decayed` sets weight_decay.
  explicit Parameter(Shape shape, Device device = {}, bool decayed = true)
      : value(shape, device), weight_decay(decayed) {}

  Tensor<T, Device> value;          ///< the parameter itself
  Tensor<T, Device> grad;           ///< same shape as value while training, else empty
  Tensor<T, Device> first_moment;   ///< AdamW m (exp_avg)
  Tensor<T, Device> second_moment;  ///< AdamW v (exp_avg_sq)
  /// Whether AdamW's decoupled weight decay applies (not to norm weights and biases).
  bool weight_decay = true;
  /// Whether the optimizer leaves this parameter unchanged.
  bool frozen = false;
  /// Rows [0, frozen_rows) of the value are left unchanged by the optimizer (and excluded from
  /// gradient norms): after growth, train only the new parameter tokens.
  index_t frozen_rows = 0;
  /// The optimizer's learning rate for this parameter is lr · lr_scale (a warmup of its own after
  /// unfreezing: model/transfer.hpp's Unfreezer); 1 normally, finite and >= 0.
  double lr_scale = 1.0;

  const Shape& shape() const { return value.shape(); }  ///< the value's shape
  index_t size() const { return value.size(); }         ///< the value's element count
  /// True when the gradient and moments exist with the value's shape.
  bool training_enabled() const { return grad.shape() == value.shape() && first_moment.shape() == value.shape(); }

  /// Allocates the gradient and moments (zero) if missing, or resizes them to the value's shape,
  /// keeping their leading values (new entries start at zero).
  void enable_training() {
    for (auto* t : {&grad, &first_moment, &second_moment})
      if (t->shape() != value.shape()) {
        if (t->size() == 0)
          *t = Tensor<T, Device>(value.shape(), value.device());
        else
          t->resize(value.shape());
      }
  }
  /// Sets the gradient to zero (nothing when training is not enabled).
  void zero_grad() {
    if (grad.size() != 0) grad.set_zero();
  }

  /// The elements the optimizer may change: [offset, offset + count) of the flattened value.
  index_t trainable_offset() const {
    if (frozen) return size();
    const index_t rows = value.rank() >= 1 ? value.dim(0) : 1;
    return std::min(frozen_rows, rows) * (rows > 0 ? size() / rows : 0);
  }
  index_t trainable_count() const { return size() - trainable_offset(); }  ///< see trainable_offset()

  /// Reserves room for `rows` rows in the value, gradient and moments, so that growing to that many
  /// rows moves nothing (like std::vector::reserve).
  void reserve_rows(index_t rows) {
    const index_t per_row = value.rank() >= 2 ? value.size() / std::max<index_t>(1, value.dim(0)) : 1;
    const index_t elements = checked_product(rows, per_row, "Parameter::reserve_rows");
    value.reserve(elements);
    for (auto* t : {&grad, &first_moment, &second_moment})
      if (t->size() != 0) t->reserve(elements);
  }

  /// Sets the number of rows to `rows` (more or fewer), keeping existing rows in place when within
  /// capacity; new rows of the value, gradient and moments are zero.
  void resize_rows(index_t rows) {
    const Shape shape = value.shape().with(0, rows);
    value.resize(shape);
    for (auto* t : {&grad, &first_moment, &second_moment})
      if (t->size() != 0) t->resize(shape);
  }
};

}  // namespace tokenformer

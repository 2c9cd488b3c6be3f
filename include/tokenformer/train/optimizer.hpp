// tokenformer/train/optimizer.hpp: AdamW with decoupled weight decay, global-norm gradient clipping
// and the checks that stop training on NaN or Inf.
//
// Works on anything with for_each_parameter(visitor(name, Parameter&)): the optimizer keeps no list
// of its own; the moments live in each Parameter. Frozen parameters and frozen rows (old tokens after
// growth) are skipped, and left out of gradient norms; parameters with
// weight_decay == false (norm weights and biases) get no decay, as in the official recipe.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/kernels/kernels.hpp"

namespace tokenformer {

/// The official TokenFormer recipe: lr 6e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1.
struct AdamWOptions {
  double lr = 6e-4;           ///< the rate of step(model); step(model, lr) and Trainer's schedule pass their own
  double beta1 = 0.9;         ///< decay of the first moment, in [0, 1)
  double beta2 = 0.95;        ///< decay of the second moment, in [0, 1)
  double eps = 1e-8;          ///< added to √v in the denominator, > 0
  double weight_decay = 0.1;  ///< decoupled decay (p -= lr · weight_decay · p), >= 0
};

/// AdamW with decoupled weight decay over every parameter a model visits; the moments live in each
/// Parameter, the step count here.
class AdamW {
 public:
  /// Throws config_error for betas outside [0, 1), eps <= 0, a negative weight decay or learning rate,
  /// or a non-finite value.
  explicit AdamW(AdamWOptions options = {}) : options_(options) {
    if (!(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1))
      throw config_error("AdamW betas must be in [0, 1)");
    if (!(options.eps > 0) || !(options.weight_decay >= 0) || !std::isfinite(options.eps) ||
        !std::isfinite(options.weight_decay))
      throw config_error("AdamW needs finite eps > 0 and weight_decay >= 0");
    if (!(options.lr >= 0) || !std::isfinite(options.lr))
      throw config_error("AdamW's learning rate must be finite and >= 0, got " + std::to_string(options.lr));
  }

  const AdamWOptions& options() const { return options_; }  ///< the hyperparameters
  /// Number of steps taken (the bias corrections use it).
  long step_count() const { return step_; }
  void set_step_count(long step) { step_ = step; }  ///< restores the count (from a training checkpoint)

  /// One update at the options' learning rate, options().lr (a constant rate; step(model, lr) takes a
  /// scheduled one).
  template <class Model>
  void step(Model& model) {
    step(model, options_.lr);
  }

  /// One update of every trainable parameter of `model` from its gradient, with learning rate
  /// `lr` (this step's, e.g. from a schedule: it overrides options().lr) times the parameter's
  /// lr_scale (Parameter::lr_scale, normally 1). The parameters of one lr_scale go to one fused
  /// kernel call (adamw_step_many: a single launch on the GPU).
  template <class Model>
  void step(Model& model, double lr) {
    if (!(lr >= 0) || !std::isfinite(lr))
      throw argument_error("AdamW step: the learning rate must be finite and >= 0, got " + std::to_string(lr));
    std::size_t counts[2] = {0, 0};  // trainable float and double parameters
    model.for_each_parameter([&](const std::string& name, auto& p) {
      using T = typename std::decay_t<decltype(p.value)>::value_type;
      static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                    "AdamW: float or double parameters");
      if (p.trainable_count() == 0) return;
      if (!p.training_enabled()) throw argument_error("AdamW step: parameter '" + name + "' has no gradient");
      if (!(p.lr_scale >= 0.0 && std::isfinite(p.lr_scale)))
        throw argument_error("AdamW step: parameter '" + name + "' has lr_scale " + std::to_string(p.lr_scale) +
                             " (must be finite and >= 0)");
      ++counts[std::is_same<T, double>::value];
    });
    ++step_;
    std::vector<kernels::AdamWSegment<float>> floats;
    std::vector<kernels::AdamWSegment<double>> doubles;
    std::vector<double> float_scales, double_scales;  // lr_scale of each segment
    const char* device_name = nullptr;
    model.for_each_parameter([&](const std::string& name, auto& p) {
      using T = typename std::decay_t<decltype(p.value)>::value_type;
      if (p.trainable_count() == 0) return;
      const char* here = p.value.device().name();
      if (device_name == nullptr) device_name = here;
      if (std::string(here) != device_name)
        throw argument_error("AdamW step: parameter '" + name + "' is on " + here + ", others on " + device_name);
      auto& segments = select(floats, doubles, static_cast<T*>(nullptr));
      auto& scales = std::is_same<T, double>::value ? double_scales : float_scales;
      const index_t offset = p.trainable_offset();
      segments.push_back({p.value.data() + offset, p.first_moment.data() + offset, p.second_moment.data() + offset,
                          p.grad.data() + offset, p.trainable_count(), p.weight_decay ? options_.weight_decay : 0.0});
      scales.push_back(p.lr_scale);
      if (segments.size() == counts[std::is_same<T, double>::value])
        step_by_scale(p.value.device(), segments, scales, lr);
    });
  }

 private:
  /// One kernel call per distinct lr_scale (usually one call in all).
  template <class Device, class T>
  void step_by_scale(const Device& device, const std::vector<kernels::AdamWSegment<T>>& segments,
                     const std::vector<double>& scales, double lr) const {
    std::vector<double> distinct;
    for (double s : scales)
      if (std::find(distinct.begin(), distinct.end(), s) == distinct.end()) distinct.push_back(s);
    if (distinct.size() == 1) {
      kernels::adamw_step_many(device, segments.data(), segments.size(), lr * distinct[0], options_.beta1,
                               options_.beta2, options_.eps, step_);
      return;
    }
    for (double s : distinct) {
      std::vector<kernels::AdamWSegment<T>> group;
      for (std::size_t i = 0; i < segments.size(); ++i)
        if (scales[i] == s) group.push_back(segments[i]);
      kernels::adamw_step_many(device, group.data(), group.size(), lr * s, options_.beta1, options_.beta2, options_.eps,
                               step_);
    }
  }

  static std::vector<kernels::AdamWSegment<float>>& select(std::vector<kernels::AdamWSegment<float>>& floats,
                                                           std::vector<kernels::AdamWSegment<double>>&, float*) {
    return floats;
  }
  static std::vector<kernels::AdamWSegment<double>>& select(std::vector<kernels::AdamWSegment<float>>&,
                                                            std::vector<kernels::AdamWSegment<double>>& doubles,
                                                            double*) {
    return doubles;
  }

  AdamWOptions options_;
  long step_ = 0;
};

/// √(Σ over parameters of Σ grad²): the global gradient norm.
template <class Model>
double global_gradient_norm(Model& model) {
  double total = 0.0;
  model.for_each_parameter([&](const std::string&, auto& p) {
    if (p.trainable_count() != 0 && p.grad.size() != 0)
      total += kernels::sum_of_squares(p.grad.device(), p.grad.data() + p.trainable_offset(), p.trainable_count());
  });
  return std::sqrt(total);
}

/// The factor clipping multiplies the gradients by: max_norm / (norm + 1e-6) when below 1, else 1
/// (torch's clip_grad_norm_).
inline double clip_factor(double max_norm, double norm) {
  const double factor = max_norm / (norm + 1e-6);
  return factor < 1.0 ? factor : 1.0;
}

/// Multiplies every trainable gradient by `factor` (nothing when it is 1).
template <class Model>
void scale_gradients(Model& model, double factor) {
  if (factor == 1.0) return;
  model.for_each_parameter([&](const std::string&, auto& p) {
    using T = typename std::decay_t<decltype(p.value)>::value_type;
    if (p.trainable_count() != 0 && p.grad.size() != 0)
      kernels::scale(p.grad.device(), p.grad.data() + p.trainable_offset(), static_cast<T>(factor),
                     p.trainable_count());
  });
}

/// Scales all gradients so that their global norm is at most `max_norm` (clip_factor). Returns the
/// norm before clipping.
template <class Model>
double clip_gradient_norm(Model& model, double max_norm) {
  const double norm = global_gradient_norm(model);
  scale_gradients(model, clip_factor(max_norm, norm));
  return norm;
}

/// Throws numeric_error naming the step and the first parameter whose value or gradient holds NaN
/// or Inf (or the loss, if it is not finite).
template <class Model>
void check_finite(Model& model, long step, double loss) {
  const std::string at = "step " + std::to_string(step) + ": ";
  if (!std::isfinite(loss)) throw numeric_error(at + "the loss is " + std::to_string(loss));
  model.for_each_parameter([&](const std::string& name, auto& p) {
    for (const auto* t : {&p.grad, &p.value}) {
      if (t->size() == 0) continue;
      const index_t where = kernels::first_non_finite(t->device(), t->data(), t->size());
      if (where >= 0)
        throw numeric_error(at + std::string(t == &p.grad ? "the gradient of '" : "parameter '") + name +
                            "' holds a non-finite value at index " + std::to_string(where));
    }
  });
}

}  // namespace tokenformer

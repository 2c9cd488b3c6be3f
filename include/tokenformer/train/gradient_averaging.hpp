// tokenformer/train/gradient_averaging.hpp: data-parallel gradient averaging: after every rank's
// backward over its share of the batch, each trainable gradient becomes the mean over the ranks, the
// same bits everywhere.
//
// One all-reduce per parameter tensor (in place, no staging copy), started as soon as the tensor's
// gradient is final: a layer's as soon as its backward is done (through the model's
// on_layer_backward_done hook, where the model has one), the embedding's and the final norm's at the
// end; then every rank waits for all of them and scales by 1/size(). So the reduction of the last
// layers overlaps the backward of the first ones wherever the ProcessGroup can progress in the
// background. Only the trainable rows are reduced (the optimizer ignores frozen rows' gradients).
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/train/process_group.hpp"

namespace tokenformer {

namespace detail {
template <class Model, class = void>
struct has_layer_backward_hook : std::false_type {};
template <class Model>
struct has_layer_backward_hook<Model, std::void_t<decltype(std::declval<Model&>().on_layer_backward_done),
                                                  decltype(std::declval<Model&>().layers[0])>> : std::true_type {};
}  // namespace detail

/// Averages a model's gradients over the ranks of a group (see the header comment). Use:
/// begin(model) before the last forward_backward of a step, finish(model) after it.
template <class Model>
class GradientAverager {
 public:
  /// Averages over `group`, which must outlive this object.
  explicit GradientAverager(ProcessGroup& group) : group_(group) {}

  /// Installs the layer hook (a model without one is reduced whole in finish()). Throws
  /// argument_error, when there are several ranks, for parameters in device memory that the group
  /// cannot sum (an MpiProcessGroup sums host memory: CPU models; NcclProcessGroup GPU models).
  void begin(Model& model) {
    if (group_.size() == 1) return;
    model.for_each_parameter([&](const std::string& name, auto& p) {
      if (!std::is_same<std::decay_t<decltype(p.value.device())>, cpu>::value && p.trainable_count() != 0 &&
          !group_.accepts_device_memory())
        throw argument_error("data-parallel training: parameter '" + name + "' is on " + p.value.device().name() +
                             "; this ProcessGroup sums host memory only (GPU models need NcclProcessGroup)");
    });
    if constexpr (detail::has_layer_backward_hook<Model>::value) {
      reduced_layers_.assign(model.layers.size(), false);
      model.on_layer_backward_done = [this, &model](std::size_t layer) {
        start(model.layers[layer]);
        reduced_layers_[layer] = true;
      };
    }
  }

  /// Removes the hook begin() installed (the Trainer calls it when a step ends, also by an exception).
  void remove_hook(Model& model) {
    if constexpr (detail::has_layer_backward_hook<Model>::value) model.on_layer_backward_done = nullptr;
  }

  /// Starts what the hook did not, waits for every all-reduce and divides by the number of ranks;
  /// removes the hook.
  void finish(Model& model) {
    if (group_.size() == 1) return;
    if constexpr (detail::has_layer_backward_hook<Model>::value) {
      model.on_layer_backward_done = nullptr;
      // The rest in the model's visiting order: the embedding, any layer the hook did not see, the norm.
      start_one(model.word_embeddings);
      for (std::size_t l = 0; l < model.layers.size(); ++l)
        if (!reduced_layers_[l]) start(model.layers[l]);
      start_one(model.final_norm_weight);
      start_one(model.final_norm_bias);
    } else {
      start(model);
    }
    group_.wait_all();
    const double inverse = 1.0 / static_cast<double>(group_.size());
    model.for_each_parameter([&](const std::string&, auto& p) {
      using T = typename std::decay_t<decltype(p.value)>::value_type;
      if (p.trainable_count() != 0 && p.grad.size() != 0)
        kernels::scale(p.grad.device(), p.grad.data() + p.trainable_offset(), static_cast<T>(inverse),
                       p.trainable_count());
    });
  }

 private:
  template <class Module>
  void start(Module& module) {
    module.for_each_parameter([this](const std::string&, auto& p) { this->start_one(p); });
    group_.progress();
  }
  template <class P>
  void start_one(P& p) {
    if (p.trainable_count() != 0 && p.grad.size() != 0)
      group_.start_all_reduce_sum(p.grad.data() + p.trainable_offset(), static_cast<std::size_t>(p.trainable_count()));
  }

  ProcessGroup& group_;
  std::vector<bool> reduced_layers_;
};

}  // namespace tokenformer

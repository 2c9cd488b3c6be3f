// tokenformer/layers/pattention.hpp: Pattention, attention from input tokens to parameter tokens.
//
// What it is: a layer holding P learnable *key* tokens K_P [P, d_in] and P *value* tokens V_P
// [P, d_out]. Each input row x (a query) attends over the key tokens and mixes the value tokens:
//     out = Θ(X · K_Pᵀ) · V_P          X: [M, d_in], scores: [M, P], out: [M, d_out]
// with Θ the modified softmax chosen by `Normalization` (see core/model_config.hpp). It costs like
// an MLP with hidden size P (two GEMMs), but P is independent of d_in and d_out: the layer grows by
// appending tokens.
// Requires: d_in, d_out, P > 0; inputs with d_in columns. Ensures: out has d_out columns. The
// forward keeps the scores and Θ(scores) of its last call in the layer (the activation cache) for
// backward, which must receive the same input.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"

namespace tokenformer {

/// What a Pattention does in its block, for code that treats Pattentions by kind (growth, pinned
/// scales, initialization): the query/key/value projections, the attention output projection, or
/// the feed-forward layer. Each corresponds to one token count of the config (qkv_slot_num,
/// proj_slot_num, ffn_slot_num).
enum class PattentionRole { qkv, proj, ffn };

/// The role's name: "qkv", "proj" or "ffn".
inline const char* to_string(PattentionRole role) {
  switch (role) {
    case PattentionRole::qkv: return "qkv";
    case PattentionRole::proj: return "proj";
    case PattentionRole::ffn: return "ffn";
  }
  return "unknown";
}

/// Attention from input rows to P learnable parameter tokens: out = Θ(X · K_Pᵀ) · V_P, with X [M, d_in],
/// K_P [P, d_in] and V_P [P, d_out]. It grows by append_tokens; backward uses the activations that the
/// last forward kept.
template <class T, class Device = cpu>
class Pattention {
 public:
  Pattention() = default;
  /// A layer of `tokens` zero key and value tokens (initialize them, or load them) mapping
  /// `input_features` to `output_features` with Θ = `kind`. Throws config_error for a size <= 0 or a
  /// normalization it does not know.
  Pattention(index_t input_features, index_t output_features, index_t tokens, Normalization kind, Device device = {})
      : device_(device), kind_(kind) {
    if (input_features <= 0 || output_features <= 0 || tokens <= 0)
      throw config_error("Pattention needs positive input features, output features and tokens, got " +
                         std::to_string(input_features) + ", " + std::to_string(output_features) + ", " +
                         std::to_string(tokens));
    check_normalization(kind, "Pattention");
    keys_ = Parameter<T, Device>(Shape{tokens, input_features}, device);
    values_ = Parameter<T, Device>(Shape{tokens, output_features}, device);
  }

  index_t input_features() const { return keys_.value.dim(1); }     ///< d_in
  index_t output_features() const { return values_.value.dim(1); }  ///< d_out
  /// P: the current number of parameter tokens.
  index_t tokens() const { return keys_.value.dim(0); }
  Normalization normalization() const { return kind_; }  ///< Θ
  /// The n of Θ's √n (or n) factor: the token count, unless pinned (see pin_scale_tokens).
  index_t scale_tokens() const { return pinned_scale_tokens_ > 0 ? pinned_scale_tokens_ : tokens(); }
  /// Pins Θ's scale factor to `n` tokens (0 unpins it): used to make growth function-preserving.
  void pin_scale_tokens(index_t n) {
    if (n < 0) throw argument_error("pinned token count must be >= 0");
    pinned_scale_tokens_ = n;
  }
  index_t pinned_scale_tokens() const { return pinned_scale_tokens_; }  ///< the pinned n, or 0 when not pinned

  /// K_P: [P, d_in] (read-only: append_tokens is the way to change the token count, and it grows
  /// the gradients and optimizer moments with the tokens; write values through key_parameter()).
  const Tensor<T, Device>& key_tokens() const { return keys_.value; }
  /// V_P: [P, d_out] (read-only, like key_tokens).
  const Tensor<T, Device>& value_tokens() const { return values_.value; }
  /// The key tokens' parameter, with its gradient and optimizer state.
  Parameter<T, Device>& key_parameter() { return keys_; }
  /// The value tokens' parameter, with its gradient and optimizer state.
  Parameter<T, Device>& value_parameter() { return values_; }

  /// Visits (name, Parameter&) of each parameter, with the official names.
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    visit(std::string("key_param_tokens"), keys_);
    visit(std::string("value_param_tokens"), values_);
  }

  /// Appends `count` key and value tokens in place. Storage grows like std::vector (capacity at least
  /// doubles when exceeded), so within capacity no existing token moves. New tokens are zero, or
  /// keys ~ N(0, key_std) and values ~ N(0, value_std) when `rng` is given, or copies of the
  /// [count, d_in] and [count, d_out] host arrays `keys` and `values` when those are given.
  /// Gradients and optimizer moments grow with the tokens (new entries zero).
  void append_tokens(index_t count, Rng* rng = nullptr, double key_std = 0.02, double value_std = 0.02,
                     const T* keys = nullptr, const T* values = nullptr) {
    if (count < 0) throw argument_error("cannot append a negative number of tokens");
    if ((keys == nullptr) != (values == nullptr)) throw argument_error("append_tokens copies both keys and values");
    const index_t old = tokens(), rows = old + count;
    for (auto* p : {&keys_, &values_}) {
      const index_t per_row = p->value.dim(1);
      if (rows * per_row > p->value.capacity()) p->reserve_rows(std::max(rows, 2 * p->value.capacity() / per_row));
      p->resize_rows(rows);
    }
    const auto fill = [&](Tensor<T, Device>& t, const T* source, double stddev) {
      if (source == nullptr && rng == nullptr) return;  // resize_rows already zeroed the new rows
      const index_t per_row = t.dim(1);
      std::vector<T> host(static_cast<std::size_t>(count * per_row));
      if (source != nullptr)
        std::copy(source, source + count * per_row, host.begin());
      else
        for (auto& x : host) x = static_cast<T>(rng->normal(0.0, stddev));
      device_memory<Device>::copy_from_host(t.device(), t.data() + old * per_row, host.data(), host.size() * sizeof(T));
    };
    fill(keys_.value, keys, key_std);
    fill(values_.value, values, value_std);
  }

  /// Uses `scratch` for the backward's [M, P] scratch instead of a buffer of its own: the Pattentions of
  /// one model share one (LanguageModel does this), so a model keeps one scratch of the largest M·P
  /// instead of one per Pattention. Only one backward may run at a time on Pattentions sharing one;
  /// a copy of the layer gets its own again. nullptr: back to an own buffer.
  void share_backward_scratch(std::shared_ptr<Tensor<T, Device>> scratch) {
    shared_scratch_.pointer = std::move(scratch);
    if (shared_scratch_.pointer) d_weights_ = Tensor<T, Device>();
  }

  /// Official initialization: keys ~ N(0, key_std), values ~ N(0, value_std), drawn in row order.
  void initialize(Rng& rng, double key_std, double value_std) {
    fill_normal(keys_.value, rng, key_std);
    fill_normal(values_.value, rng, value_std);
  }

  /// Int8 inference: until detach_int8, forward uses these Q8_0 copies of the key and value tokens
  /// (owned by the caller, e.g. a Generator with WeightFormat::int8) instead of the float ones, and
  /// backward refuses. A float model on the CPU only; a copy of the layer does not inherit them. Throws
  /// argument_error for null pointers or shapes other than [P, d_in] and [P, d_out].
  void attach_int8(const kernels::Q8Matrix* keys, const kernels::Q8Matrix* values) {
    if (!(std::is_same<Device, cpu>::value && std::is_same<T, float>::value))
      throw argument_error("int8 weights need a float Pattention on the CPU");
    if (keys == nullptr || values == nullptr) throw argument_error("attach_int8 needs keys and values");
    if (has_int8()) throw argument_error("attach_int8: int8 copies are attached already (by another generator?)");
    if (keys->rows != tokens() || keys->cols != input_features() || values->rows != tokens() ||
        values->cols != output_features() || !keys->consistent() || !values->consistent())
      throw argument_error("attach_int8: the int8 copies have other shapes than the key and value tokens");
    int8_.keys = keys;
    int8_.values = values;
  }
  /// Back to the float key and value tokens.
  void detach_int8() { int8_ = Int8Copies(); }
  /// Whether int8 copies are attached.
  bool has_int8() const { return int8_.keys != nullptr; }

  /// out = Θ(in · K_Pᵀ) · V_P, or out += ... when `accumulate` (fuses a residual add into the GEMM).
  void forward(TensorView<T, Device> out,       // (M, d_out)
               TensorView<const T, Device> in,  // (M, d_in)
               bool accumulate = false) {
    const index_t M = in.rows(), P = tokens(), din = input_features(), dout = output_features();
    if (in.cols() != din)
      throw shape_error("Pattention input has " + std::to_string(in.cols()) + " features, expected " +
                        std::to_string(din));
    if (out.rows() != M || out.cols() != dout)
      throw shape_error("Pattention output has shape " + out.shape().str() + ", expected [" + std::to_string(M) + ", " +
                        std::to_string(dout) + "]");
    last_int8_ = has_int8();
    if (last_int8_) {
      forward_int8(out, in, accumulate);
      return;
    }
    scores_.resize(Shape{M, P});
    weights_.resize(Shape{M, P});
    // scores = X · K_Pᵀ                                                          (M, P)
    kernels::gemm(device_, scores_.data(), P, in.data(), din, false, keys_.value.data(), din, true, M, P, din);
    // weights = Θ(scores)                                                          (M, P)
    kernels::pattention_norm_forward(device_, weights_.data(), scores_.data(), M, P, kind_, scale_tokens());
    // out (+)= weights · V_P                                                      (M, d_out)
    kernels::gemm(device_, out.data(), dout, weights_.data(), P, false, values_.value.data(), dout, false, M, dout, P,
                  T(1), accumulate ? T(1) : T(0));
  }

  /// Backward of the last forward, which received `in`. Adds dL/dK_P and dL/dV_P to the parameters'
  /// gradients (unless frozen) and writes dL/d_in into d_in (adds to it when `accumulate`).
  /// Requires training to be enabled (enable_training) and `in` unchanged since the forward.
  void backward(TensorView<T, Device> d_in,         // (M, d_in)
                TensorView<const T, Device> d_out,  // (M, d_out)
                TensorView<const T, Device> in,     // (M, d_in)
                bool accumulate = false) {
    const index_t M = in.rows(), P = tokens(), din = input_features(), dout = output_features();
    if (last_int8_) throw argument_error("Pattention backward after an int8 (inference) forward");
    if (scores_.rows() != M || scores_.cols() != P)
      throw shape_error("Pattention backward needs the forward of the same input first");
    expect_shape(Shape{d_out.rows(), d_out.cols()}, Shape{M, dout}, "Pattention output gradient");
    expect_shape(Shape{d_in.rows(), d_in.cols()}, Shape{M, din}, "Pattention input gradient");
    if (!keys_.training_enabled() || !values_.training_enabled())
      throw argument_error("Pattention backward before enable_training()");
    // dV_P += weightsᵀ · d_out                                                    (P, d_out)
    if (!values_.frozen)
      kernels::gemm(device_, values_.grad.data(), dout, weights_.data(), P, true, d_out.data(), dout, false, P, dout, M,
                    T(1), T(1));
    // d_weights = d_out · V_Pᵀ (into the scratch), then d_scores = Θ'ᵀ d_weights (into weights_)  (M, P)
    Tensor<T, Device>& scratch = shared_scratch_.pointer ? *shared_scratch_.pointer : d_weights_;
    scratch.reserve(M * P);  // written whole by the GEMM below (beta 0 reads nothing)
    T* const d_weights = scratch.data();
    kernels::gemm(device_, d_weights, P, d_out.data(), dout, false, values_.value.data(), dout, true, M, P, dout);
    kernels::pattention_norm_backward(device_, weights_.data(), d_weights, scores_.data(), M, P, kind_, scale_tokens());
    const T* d_scores = weights_.data();
    // dK_P += d_scoresᵀ · X                                                       (P, d_in)
    if (!keys_.frozen)
      kernels::gemm(device_, keys_.grad.data(), din, d_scores, P, true, in.data(), din, false, P, din, M, T(1), T(1));
    // d_in (+)= d_scores · K_P                                                    (M, d_in)
    kernels::gemm(device_, d_in.data(), din, d_scores, P, false, keys_.value.data(), din, false, M, din, P, T(1),
                  accumulate ? T(1) : T(0));
  }

 private:
  static void fill_normal(Tensor<T, Device>& t, Rng& rng, double stddev) {
    std::vector<T> host(static_cast<std::size_t>(t.size()));
    for (auto& x : host) x = static_cast<T>(rng.normal(0.0, stddev));
    t.copy_from_host(host.data());
  }

  void forward_int8(TensorView<T, Device> out, TensorView<const T, Device> in, bool accumulate) {
    if constexpr (std::is_same<Device, cpu>::value && std::is_same<T, float>::value) {
      const index_t M = in.rows(), P = tokens();
      if (int8_.keys->rows != P || int8_.values->rows != P)
        throw shape_error("Pattention: its int8 copies have " + std::to_string(int8_.keys->rows) +
                          " tokens, the layer " + std::to_string(P) + " (grown while attached?)");
      scores_.resize(Shape{M, P});
      weights_.resize(Shape{M, P});
      kernels::gemm_q8_transposed(device_, scores_.data(), P, in.data(), input_features(), *int8_.keys, M, false);
      kernels::pattention_norm_forward(device_, weights_.data(), scores_.data(), M, P, kind_, scale_tokens());
      kernels::gemm_q8(device_, out.data(), output_features(), weights_.data(), P, *int8_.values, M, accumulate);
    } else {
      (void)out, (void)in, (void)accumulate;
    }
  }

  /// The attached int8 copies; a copied or moved-to layer starts without them (they belong to the
  /// attacher, which detaches the layer it attached).
  struct Int8Copies {
    const kernels::Q8Matrix* keys = nullptr;
    const kernels::Q8Matrix* values = nullptr;
    Int8Copies() = default;
    Int8Copies(const Int8Copies&) {}
    Int8Copies& operator=(const Int8Copies&) {
      keys = values = nullptr;
      return *this;
    }
  };

  Device device_{};
  Normalization kind_ = Normalization::l2_norm_gelu;
  index_t pinned_scale_tokens_ = 0;
  Int8Copies int8_;
  bool last_int8_ = false;       // the last forward used the int8 copies (backward refuses)
  Parameter<T, Device> keys_;    // (P, d_in)
  Parameter<T, Device> values_;  // (P, d_out)
  Tensor<T, Device> scores_;     // (M, P) activation cache: X·K_Pᵀ of the last forward
  Tensor<T, Device> weights_;    // (M, P) activation cache: Θ(scores); reused for d_scores in backward
  Tensor<T, Device> d_weights_;  // (M, P) backward scratch, unless shared
  /// A shared_ptr that a copy does not share: a copied layer gets its own scratch (no two copies
  /// running on two threads can collide); a moved one keeps it.
  struct UnsharedOnCopy {
    std::shared_ptr<Tensor<T, Device>> pointer;
    UnsharedOnCopy() = default;
    UnsharedOnCopy(const UnsharedOnCopy&) {}
    UnsharedOnCopy(UnsharedOnCopy&&) = default;
    UnsharedOnCopy& operator=(const UnsharedOnCopy&) {
      pointer.reset();
      return *this;
    }
    UnsharedOnCopy& operator=(UnsharedOnCopy&&) = default;
  };
  UnsharedOnCopy shared_scratch_;
};

}  // namespace tokenformer

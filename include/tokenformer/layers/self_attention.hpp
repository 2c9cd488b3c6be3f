// tokenformer/layers/self_attention.hpp: multi-head self-attention whose four projections (Q, K, V
// and output) are Pattentions.
//
// forward(out, x): q, k, v = Pattention_{query,key,value}(x); rotary on the first rotary_dims of each
// head of q and k (position = place in the sequence); ctx = softmax attention (scale 1/√D) under the
// layout's mask (default: causal over the whole sequence); out (+)= Pattention_proj(ctx).
// backward(d_x, d_out, x) follows the same steps in reverse, from the activations the forward kept.
// An AttentionLayout restricts attention to groups of consecutive positions and picks the mask (FIT's
// local and global layers). Requires: heads divide hidden; rotary dims even. Shapes: x and out [B*T, C].
// The projection type is a template parameter: Pattention (the default, TokenFormer) or Linear (the
// plain Transformer baseline); both have forward(out, in, accumulate) and backward(d_in, d_out, in,
// accumulate).
//
// Inference with a KV cache (model/generation.hpp's Generator attaches one): forward then runs B
// sequences of T new positions each, sequence b being row first_row + b of the cache, which already
// holds lengths[row] positions. The new keys (after rotary at their positions) and values are written
// into the cache, and the queries attend to every cached position before them. A decode step (T = 1)
// uses kernels::attention_decode with the cache's scratch and allocates nothing; a cached forward
// cannot be differentiated.
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/grouped_attention.hpp"
#include "tokenformer/layers/pattention.hpp"

namespace tokenformer {

/// Which positions of a sequence of T attend to which.
struct AttentionLayout {
  kernels::AttentionMask mask = kernels::AttentionMask::causal;  ///< the mask within each group
  /// 0: the whole sequence is one group; otherwise positions attend only within groups of `group`
  /// consecutive positions (T must be a multiple of it).
  index_t group = 0;
  /// block_causal only: positions per block (a block sees itself and every earlier block).
  index_t block = 1;
  /// 0: every position is real; otherwise the positions from `valid` on are padding at the end of the
  /// last group, which no query sees (needed only with the mask none; see grouped_attention.hpp).
  index_t valid = 0;
};

/// The positions a KV cache holds for each of its rows (sequences), shared by every layer's cache.
struct KvCacheState {
  index_t rows = 0;              ///< sequences the cache holds
  index_t capacity = 0;          ///< positions per sequence
  std::vector<index_t> lengths;  ///< positions cached per row (advanced by the caller after each forward)
  index_t first_row = 0;         ///< a forward of B sequences works on rows [first_row, first_row + B)
};

/// One attention layer's view of a KV cache: its keys and values, the shared state and scratch.
template <class T, class Device>
struct KvCacheBinding {
  T* keys = nullptr;                    ///< (rows * capacity, C): row r's position p at r * capacity + p; after rotary
  T* values = nullptr;                  ///< (rows * capacity, C)
  T* scratch = nullptr;                 ///< heads * capacity values, for attention_decode
  const KvCacheState* state = nullptr;  ///< the cached lengths and rows, shared by every layer
};

/// Multi-head self-attention with rotary positions whose Q, K, V and output projections are
/// `Projection`s (Pattentions, or Linear layers for the Transformer baseline). x and out: [B·T, C].
template <class T, class Device = cpu, class Projection = Pattention<T, Device>>
class SelfAttention {
 public:
  SelfAttention() = default;
  /// Pattention projections of qkv_tokens (Q, K, V) and proj_tokens (output) tokens.
  SelfAttention(index_t hidden_size, index_t num_heads, index_t qkv_tokens, index_t proj_tokens, double rotary_pct,
                Normalization kind, double rotary_base = 10000.0, Device device = {})
      : SelfAttention(Projection(hidden_size, hidden_size, qkv_tokens, kind, device),
                      Projection(hidden_size, hidden_size, qkv_tokens, kind, device),
                      Projection(hidden_size, hidden_size, qkv_tokens, kind, device),
                      Projection(hidden_size, hidden_size, proj_tokens, kind, device), hidden_size, num_heads,
                      rotary_pct, rotary_base, device) {}
  /// Any projections mapping hidden_size to hidden_size (Linear layers for the Transformer baseline).
  SelfAttention(Projection q, Projection k, Projection v, Projection o, index_t hidden_size, index_t num_heads,
                double rotary_pct, double rotary_base, Device device)
      : query(std::move(q)),
        key(std::move(k)),
        value(std::move(v)),
        proj(std::move(o)),
        device_(device),
        hidden_size_(hidden_size),
        num_heads_(num_heads),
        rotary_dims_(num_heads > 0 ? rotary_dims_of(hidden_size / num_heads, rotary_pct) : 0),
        rotary_base_(rotary_base) {
    if (num_heads <= 0 || hidden_size % num_heads != 0)
      throw config_error("num_heads (" + std::to_string(num_heads) + ") must be positive and divide hidden_size (" +
                         std::to_string(hidden_size) + ")");
    if (rotary_dims_ % 2 != 0) throw config_error("rotary dims must be even, got " + std::to_string(rotary_dims_));
  }

  ///@{
  /// The Q, K, V and output projections, each mapping C features to C.
  Projection query, key, value, proj;
  ///@}

  index_t hidden_size() const { return hidden_size_; }            ///< C
  index_t num_heads() const { return num_heads_; }                ///< H
  index_t head_dim() const { return hidden_size_ / num_heads_; }  ///< D = C / H
  index_t rotary_dims() const { return rotary_dims_; }            ///< leading dims of each head that rotary rotates
  const AttentionLayout& layout() const { return layout_; }       ///< the layout of the next forward calls
  /// Sets the attention layout of the next forward calls; throws for a bad mask or negative sizes.
  void set_layout(const AttentionLayout& layout) {
    if (layout.group < 0 || layout.block < 1 || layout.valid < 0)
      throw config_error("attention layout needs group >= 0, block >= 1, valid >= 0");
    if (layout.valid > 0 && layout.mask != kernels::AttentionMask::none)
      throw config_error("attention layout: padding (valid > 0) needs the mask none; causal masks never see it");
    kernels::check_attention_shape(kernels::AttentionShape{1, 1, 1, 1, 1, layout.mask, layout.block, layout.block});
    layout_ = layout;
  }

  /// Visits (name, Parameter&) of each parameter: the projections', prefixed "query.", "key.",
  /// "value." and "proj.".
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    const auto prefixed = [&](const char* prefix) {
      return [&visit, prefix](const std::string& name, Parameter<T, Device>& p) { visit(prefix + name, p); };
    };
    query.for_each_parameter(prefixed("query."));
    key.for_each_parameter(prefixed("key."));
    value.for_each_parameter(prefixed("value."));
    proj.for_each_parameter(prefixed("proj."));
  }

  /// Visits (path, role, Pattention&) of each Pattention: "query", "key", "value" (qkv) and "proj"
  /// (none when the projections are not Pattentions).
  template <class Visitor>
  void for_each_pattention(Visitor&& visit) {
    if constexpr (std::is_same<Projection, Pattention<T, Device>>::value) {
      visit(std::string("query"), PattentionRole::qkv, query);
      visit(std::string("key"), PattentionRole::qkv, key);
      visit(std::string("value"), PattentionRole::qkv, value);
      visit(std::string("proj"), PattentionRole::proj, proj);
    } else {
      (void)visit;
    }
  }

  /// Attaches a KV cache (see the header comment): every later forward is a cached inference
  /// forward, until detach_cache(). The binding's memory must outlive the attachment.
  void attach_cache(const KvCacheBinding<T, Device>& binding) {
    if (binding.keys == nullptr || binding.values == nullptr || binding.scratch == nullptr || binding.state == nullptr)
      throw argument_error("attach_cache needs keys, values, scratch and state");
    if (layout_.mask != kernels::AttentionMask::causal || layout_.group != 0 || layout_.valid != 0)
      throw config_error("a KV cache needs the plain causal attention layout");
    cache_ = CacheSlot(binding);
  }
  void detach_cache() { cache_ = CacheSlot(); }               ///< later forwards are training forwards again
  bool has_cache() const { return cache_.state != nullptr; }  ///< whether a KV cache is attached

  /// out (+)= attention(x) for B sequences of T positions; positions start at `position_offset`
  /// (with a KV cache attached: at each sequence's cached length, and position_offset is ignored).
  void forward(TensorView<T, Device> out,      // (B*T, C)
               TensorView<const T, Device> x,  // (B*T, C)
               index_t B, index_t T_len, bool accumulate = false, index_t position_offset = 0) {
    const Shape expected{B * T_len, hidden_size_};
    expect_shape(x.shape().rank() == 2 ? x.shape() : Shape{x.rows(), x.cols()}, expected, "SelfAttention input");
    expect_shape(out.shape().rank() == 2 ? out.shape() : Shape{out.rows(), out.cols()}, expected,
                 "SelfAttention output");
    if (has_cache()) {
      forward_cached(out, x, B, T_len, accumulate);
      return;
    }
    for (auto* t : {&q_, &k_, &v_, &context_}) t->resize(expected);
    query.forward(q_, x);  // (B*T, C)
    key.forward(k_, x);    // (B*T, C)
    value.forward(v_, x);  // (B*T, C)
    const index_t D = head_dim();
    kernels::rotary_forward(device_, q_.data(), B, T_len, num_heads_, D, rotary_dims_, rotary_base_, position_offset);
    kernels::rotary_forward(device_, k_.data(), B, T_len, num_heads_, D, rotary_dims_, rotary_base_, position_offset);
    lse_.resize(Shape{B, num_heads_, T_len});
    const auto [shape, groups, last_keys] = attention_shape(B, T_len);
    grouped_attention_forward(device_, context_.data(), lse_.data(), q_.data(), k_.data(), v_.data(), shape, groups,
                              last_keys);
    proj.forward(out, context_, accumulate);  // (B*T, C)
    last_B_ = B;
    last_T_ = T_len;
    last_offset_ = position_offset;
    last_cached_ = false;
  }

  /// Backward of the last forward (which received x): adds parameter gradients and writes dL/dx into
  /// d_x (adds to it when `accumulate`).
  void backward(TensorView<T, Device> d_x,          // (B*T, C)
                TensorView<const T, Device> d_out,  // (B*T, C)
                TensorView<const T, Device> x,      // (B*T, C)
                bool accumulate = false) {
    if (last_cached_) throw argument_error("SelfAttention backward after a KV-cache (inference) forward");
    const index_t B = last_B_, T_len = last_T_, D = head_dim();
    const Shape expected{B * T_len, hidden_size_};
    expect_shape(Shape{x.rows(), x.cols()}, expected, "SelfAttention backward input");
    for (auto* t : {&d_q_, &d_k_, &d_v_, &d_context_}) t->resize(expected);
    proj.backward(d_context_, d_out, context_);  // (B*T, C)
    const auto [shape, groups, last_keys] = attention_shape(B, T_len);
    grouped_attention_backward(device_, d_q_.data(), d_k_.data(), d_v_.data(), d_context_.data(), q_.data(), k_.data(),
                               v_.data(), context_.data(), lse_.data(), shape, groups, last_keys);
    kernels::rotary_backward(device_, d_q_.data(), B, T_len, num_heads_, D, rotary_dims_, rotary_base_, last_offset_);
    kernels::rotary_backward(device_, d_k_.data(), B, T_len, num_heads_, D, rotary_dims_, rotary_base_, last_offset_);
    query.backward(d_x, d_q_, x, accumulate);
    key.backward(d_x, d_k_, x, /*accumulate=*/true);
    value.backward(d_x, d_v_, x, /*accumulate=*/true);
  }

 private:
  /// The forward with a KV cache attached (see the header comment).
  void forward_cached(TensorView<T, Device> out, TensorView<const T, Device> x, index_t B, index_t T_len,
                      bool accumulate) {
    const KvCacheState& state = *cache_.state;
    const index_t C = hidden_size_, D = head_dim(), H = num_heads_, first = state.first_row;
    if (B <= 0 || T_len <= 0) throw shape_error("a cached forward needs B > 0 and T > 0");
    if (first < 0 || first + B > state.rows || static_cast<index_t>(state.lengths.size()) != state.rows)
      throw argument_error("KV cache: rows [" + std::to_string(first) + ", " + std::to_string(first + B) +
                           ") are outside its " + std::to_string(state.rows) + " rows");
    bool same_length = true;
    for (index_t b = 0; b < B; ++b) {
      const index_t length = state.lengths[static_cast<std::size_t>(first + b)];
      if (length < 0 || length + T_len > state.capacity)
        throw argument_error("KV cache full: sequence " + std::to_string(first + b) + " holds " +
                             std::to_string(length) + " positions, " + std::to_string(T_len) + " more exceed its " +
                             std::to_string(state.capacity));
      same_length = same_length && length == state.lengths[static_cast<std::size_t>(first)];
    }
    const Shape shape{B * T_len, C};
    for (auto* t : {&q_, &k_, &v_, &context_}) t->resize(shape);
    query.forward(q_, x);
    key.forward(k_, x);
    value.forward(v_, x);
    const auto length_of = [&](index_t b) { return state.lengths[static_cast<std::size_t>(first + b)]; };
    if (same_length) {
      kernels::rotary_forward(device_, q_.data(), B, T_len, H, D, rotary_dims_, rotary_base_, length_of(0));
      kernels::rotary_forward(device_, k_.data(), B, T_len, H, D, rotary_dims_, rotary_base_, length_of(0));
    } else {
      for (index_t b = 0; b < B; ++b) {
        kernels::rotary_forward(device_, q_.data() + b * T_len * C, 1, T_len, H, D, rotary_dims_, rotary_base_,
                                length_of(b));
        kernels::rotary_forward(device_, k_.data() + b * T_len * C, 1, T_len, H, D, rotary_dims_, rotary_base_,
                                length_of(b));
      }
    }
    lse_.resize(Shape{B, H, T_len});
    for (index_t b = 0; b < B; ++b) {
      const index_t row = first + b, past = length_of(b);
      T* keys = cache_.keys + row * state.capacity * C;
      T* values = cache_.values + row * state.capacity * C;
      kernels::copy(device_, keys + past * C, k_.data() + b * T_len * C, T_len * C);
      kernels::copy(device_, values + past * C, v_.data() + b * T_len * C, T_len * C);
      if (T_len == 1) {
        kernels::attention_decode(device_, context_.data() + b * C, q_.data() + b * C, keys, values, cache_.scratch,
                                  past + 1, H, D);
      } else {
        const kernels::AttentionShape s{1, T_len, past + T_len, H, D, kernels::AttentionMask::causal, 1, 1};
        kernels::attention_forward(device_, context_.data() + b * T_len * C, lse_.data() + b * H * T_len,
                                   q_.data() + b * T_len * C, keys, values, s);
      }
    }
    proj.forward(out, context_, accumulate);
    last_B_ = B;
    last_T_ = T_len;
    last_cached_ = true;
  }

  struct GroupedShape {
    kernels::AttentionShape shape;
    index_t groups = 1, last_keys = 0;
  };
  /// The attention call of B sequences of T positions under the layout.
  GroupedShape attention_shape(index_t B, index_t T_len) const {
    const index_t group = layout_.group > 0 ? layout_.group : T_len;
    if (T_len % group != 0)
      throw shape_error("sequence length " + std::to_string(T_len) + " is not a multiple of the attention group " +
                        std::to_string(group));
    const index_t groups = T_len / group;
    index_t last_keys = 0;  // 0: no padding (valid unset, or valid >= T)
    if (layout_.valid > 0 && layout_.valid < T_len) {
      last_keys = layout_.valid - (groups - 1) * group;
      if (last_keys <= 0) throw shape_error("attention layout: the padding fills more than the last group");
    }
    const kernels::AttentionShape shape{B * groups, group,        group,         num_heads_,
                                        head_dim(), layout_.mask, layout_.block, layout_.block};
    return {shape, groups, last_keys};
  }

  Device device_{};
  AttentionLayout layout_{};
  index_t hidden_size_ = 0, num_heads_ = 1, rotary_dims_ = 0;
  double rotary_base_ = 10000.0;
  index_t last_B_ = 0, last_T_ = 0, last_offset_ = 0;
  bool last_cached_ = false;
  /// The attached cache; a copy of the layer starts without one (the cache belongs to the original).
  struct CacheSlot : KvCacheBinding<T, Device> {
    CacheSlot() = default;
    CacheSlot(const KvCacheBinding<T, Device>& binding) : KvCacheBinding<T, Device>(binding) {}
    CacheSlot(const CacheSlot&) : KvCacheBinding<T, Device>() {}
    CacheSlot& operator=(const CacheSlot&) { return *this; }
    CacheSlot(CacheSlot&&) = default;
    CacheSlot& operator=(CacheSlot&&) = default;
  } cache_{};
  Tensor<T, Device> q_, k_, v_, context_;          // (B*T, C) activation cache (q, k after rotary)
  Tensor<T, Device> lse_;                          // (B, H, T) log-sum-exp of each attention row
  Tensor<T, Device> d_q_, d_k_, d_v_, d_context_;  // (B*T, C) backward scratch
};

}  // namespace tokenformer

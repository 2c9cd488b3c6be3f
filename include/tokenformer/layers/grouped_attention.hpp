// tokenformer/layers/grouped_attention.hpp: attention over groups whose last group is padded.
//
// FIT cuts each sequence into `groups` groups of equal size and pads the last group when the length
// is not a multiple of the group size. An attention call over all groups of `sequences` sequences is
// one AttentionShape with batch = sequences * groups; with the causal or block-causal masks padding
// sits after every real key a real query sees, so one call is exact. Without a mask (the encoder)
// every query would see the padding keys, so where the last group has only `last_keys` real keys
// these functions split the call: the full groups of each sequence in one call, its last group in
// another with keys = last_keys. Padding keys then receive zero gradient. Calls are also split into at
// most 65535 groups each (the CUDA kernels put groups on a grid dimension of that size).
#pragma once

#include <algorithm>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/kernels/kernels.hpp"

namespace tokenformer {

namespace grouped_attention_detail {

/// The most groups one attention call takes.
constexpr index_t max_call_groups = 65535;

/// Calls f(first group, group count, keys) for each call the padded layout needs.
template <class F>
void for_each_call(const kernels::AttentionShape& s, index_t groups, index_t last_keys, F&& f) {
  if (last_keys <= 0 || last_keys >= s.keys) {
    for (index_t first = 0; first < s.batch || first == 0; first += max_call_groups)
      f(first, std::min(max_call_groups, s.batch - first), s.keys);
    return;
  }
  if (s.mask != kernels::AttentionMask::none)
    throw shape_error("padded groups need the mask none (masked attention never sees trailing padding)");
  if (groups <= 0 || s.batch % groups != 0)
    throw shape_error("attention batch " + std::to_string(s.batch) + " is not a multiple of " + std::to_string(groups) +
                      " groups");
  for (index_t first = 0; first < s.batch; first += groups) {
    for (index_t g = 0; g < groups - 1; g += max_call_groups)
      f(first + g, std::min(max_call_groups, groups - 1 - g), s.keys);
    f(first + groups - 1, index_t(1), last_keys);
  }
}

}  // namespace grouped_attention_detail

/// attention_forward over s.batch groups, `groups` per sequence, where the last group of each
/// sequence has only `last_keys` real keys (0 or >= s.keys: all are real). Same tensors as
/// kernels::attention_forward.
template <class T, class Device>
void grouped_attention_forward(const Device& device, T* out, T* lse, const T* q, const T* k, const T* v,
                               const kernels::AttentionShape& s, index_t groups, index_t last_keys) {
  const index_t W = s.width();
  grouped_attention_detail::for_each_call(s, groups, last_keys, [&](index_t first, index_t count, index_t keys) {
    kernels::AttentionShape part = s;
    part.batch = count;
    part.keys = keys;
    kernels::attention_forward(device, out + first * s.queries * W, lse + first * s.heads * s.queries,
                               q + first * s.queries * W, k + first * s.keys * W, v + first * s.keys * W, part);
  });
}

/// The backward of grouped_attention_forward: overwrites dq, dk, dv (zero for padding keys).
template <class T, class Device>
void grouped_attention_backward(const Device& device, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                const T* v, const T* out, const T* lse, const kernels::AttentionShape& s,
                                index_t groups, index_t last_keys) {
  const index_t W = s.width();
  if (last_keys > 0 && last_keys < s.keys) {
    device_memory<Device>::zero(device, dk, static_cast<std::size_t>(s.key_rows() * W) * sizeof(T));
    device_memory<Device>::zero(device, dv, static_cast<std::size_t>(s.key_rows() * W) * sizeof(T));
  }
  grouped_attention_detail::for_each_call(s, groups, last_keys, [&](index_t first, index_t count, index_t keys) {
    kernels::AttentionShape part = s;
    part.batch = count;
    part.keys = keys;
    const index_t qo = first * s.queries * W, ko = first * s.keys * W;
    kernels::attention_backward(device, dq + qo, dk + ko, dv + ko, dout + qo, q + qo, k + ko, v + ko, out + qo,
                                lse + first * s.heads * s.queries, part);
  });
}

}  // namespace tokenformer

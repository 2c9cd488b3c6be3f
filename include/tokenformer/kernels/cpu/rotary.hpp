// tokenformer/kernels/cpu/rotary.hpp: rotary embedding (rotate-half) on the CPU.
//
// Over the reference: cos/sin computed once per (position, frequency) into a table instead of per
// head; rows in parallel with OpenMP.
#pragma once

#include <cmath>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/kernels/cpu/parallel.hpp"

namespace tokenformer::kernels {

namespace detail {

/// Rotates by +angle (direction = 1, forward) or −angle (direction = −1, backward).
template <class T>
void rotate(T* x, index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
            index_t position_offset, double direction) {
  const index_t half = rotary_dims / 2;
  if (half == 0 || B == 0 || T_len == 0) return;
  // Tables of a few positions (decoding) live on the stack: a decode step allocates nothing.
  constexpr index_t stack_entries = 512;
  T cos_stack[stack_entries], sin_stack[stack_entries];
  std::vector<T> cos_heap, sin_heap;
  T* cos_table = cos_stack;
  T* sin_table = sin_stack;
  if (T_len * half > stack_entries) {
    cos_heap.resize(static_cast<std::size_t>(T_len * half));
    sin_heap.resize(cos_heap.size());
    cos_table = cos_heap.data();
    sin_table = sin_heap.data();
  }
  for (index_t t = 0; t < T_len; ++t)
    for (index_t j = 0; j < half; ++j) {
      const double theta = std::pow(base, -2.0 * static_cast<double>(j) / static_cast<double>(rotary_dims));
      const double angle = static_cast<double>(position_offset + t) * theta;
      cos_table[t * half + j] = static_cast<T>(std::cos(angle));
      sin_table[t * half + j] = static_cast<T>(direction * std::sin(angle));
    }
  const index_t rows = B * T_len;
  detail::parallel_for(rows, rows * H * half > 32768, [&](index_t row) {
    const index_t t = row % T_len;
    const T* c = cos_table + t * half;
    const T* s = sin_table + t * half;
    for (index_t h = 0; h < H; ++h) {
      T* head = x + row * H * D + h * D;
      for (index_t j = 0; j < half; ++j) {
        const T x1 = head[j], x2 = head[j + half];
        head[j] = x1 * c[j] - x2 * s[j];
        head[j + half] = x2 * c[j] + x1 * s[j];
      }
    }
  });
}

}  // namespace detail

/// Rotates the first `rotary_dims` dims of every head of x in place; same contract as
/// reference::rotary_forward.
template <class T>
void rotary_forward(const cpu&, T* x,  // (B*T, H*D), in place
                    index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
                    index_t position_offset) {
  detail::rotate(x, B, T_len, H, D, rotary_dims, base, position_offset, 1.0);
}

/// Gradient of rotary_forward (the inverse rotation), in place; same contract as
/// reference::rotary_backward.
template <class T>
void rotary_backward(const cpu&, T* dx,  // (B*T, H*D), in place
                     index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
                     index_t position_offset) {
  detail::rotate(dx, B, T_len, H, D, rotary_dims, base, position_offset, -1.0);
}

}  // namespace tokenformer::kernels

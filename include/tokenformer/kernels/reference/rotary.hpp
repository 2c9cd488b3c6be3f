// tokenformer/kernels/reference/rotary.hpp: plain rotary embedding (GPT-NeoX rotate-half form),
// the specification of kernels::rotary_forward.
#pragma once

#include <cmath>

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels::reference {

/// Rotates the first `rotary_dims` dims of every head of x in place by `direction` · p·θ_j.
template <class T>
void rotate_pairs(T* x, index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
                  index_t position_offset, double direction) {
  const index_t half = rotary_dims / 2;
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T_len; ++t)
      for (index_t h = 0; h < H; ++h) {
        T* head = x + (b * T_len + t) * H * D + h * D;
        for (index_t j = 0; j < half; ++j) {
          const double theta = std::pow(base, -2.0 * static_cast<double>(j) / static_cast<double>(rotary_dims));
          const double angle = direction * static_cast<double>(position_offset + t) * theta;
          const double x1 = static_cast<double>(head[j]), x2 = static_cast<double>(head[j + half]);
          head[j] = static_cast<T>(x1 * std::cos(angle) - x2 * std::sin(angle));
          head[j + half] = static_cast<T>(x2 * std::cos(angle) + x1 * std::sin(angle));
        }
      }
}

/// Rotates the first `rotary_dims` dims of every head of x in place. x is [B*T, H*D]; row b*T + t is
/// at position `position_offset + t`. With r = rotary_dims / 2 and θ_j = base^(-2j / rotary_dims):
///   x[j]     <- x[j] · cos(p θ_j) - x[j + r] · sin(p θ_j)
///   x[j + r] <- x[j + r] · cos(p θ_j) + x[j] · sin(p θ_j)       for j < r.
template <class T>
void rotary_forward(T* x,  // (B*T, H*D), in place
                    index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
                    index_t position_offset) {
  rotate_pairs(x, B, T_len, H, D, rotary_dims, base, position_offset, 1.0);
}

/// Gradient of rotary_forward, in place on the gradient: the rotation is orthogonal, so its
/// transpose is the rotation by the opposite angle.
template <class T>
void rotary_backward(T* dx,  // (B*T, H*D), in place
                     index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
                     index_t position_offset) {
  rotate_pairs(dx, B, T_len, H, D, rotary_dims, base, position_offset, -1.0);
}

}  // namespace tokenformer::kernels::reference

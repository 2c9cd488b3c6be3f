// tokenformer/kernels/cpu/elementwise.hpp: copies and checks over whole tensors on the CPU.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/kernels/cpu/parallel.hpp"
#include "tokenformer/kernels/cpu/simd.hpp"

namespace tokenformer::kernels {

/// out[i] = in[i] for n elements (no overlap).
template <class T>
void copy(const cpu&, T* out, const T* in, index_t n) {
  if (n > 0 && out != in) std::memcpy(out, in, static_cast<std::size_t>(n) * sizeof(T));
}

/// out[i] = gelu(x[i]) (exact GeLU, as torch.nn.functional.gelu); out may alias x.
template <class T>
void gelu_forward(const cpu&, T* out, const T* x, index_t n) {
  using B = simd::batch<T>;
  constexpr index_t W = static_cast<index_t>(B::size), chunk = 4096;
  detail::parallel_for((n + chunk - 1) / chunk, n > 65536, [&](index_t c) {
    const index_t begin = c * chunk, end = std::min(n, begin + chunk), vec_end = begin + (end - begin) / W * W;
    for (index_t i = begin; i < vec_end; i += W) simd::gelu(B::load_unaligned(x + i)).store_unaligned(out + i);
    for (index_t i = vec_end; i < end; ++i) out[i] = simd::gelu(x[i]);
  });
}

/// dx[i] = dy[i] · gelu'(x[i]); dx may alias dy.
template <class T>
void gelu_backward(const cpu&, T* dx, const T* dy, const T* x, index_t n) {
  using B = simd::batch<T>;
  constexpr index_t W = static_cast<index_t>(B::size), chunk = 4096;
  detail::parallel_for((n + chunk - 1) / chunk, n > 65536, [&](index_t c) {
    const index_t begin = c * chunk, end = std::min(n, begin + chunk), vec_end = begin + (end - begin) / W * W;
    for (index_t i = begin; i < vec_end; i += W)
      (B::load_unaligned(dy + i) * simd::gelu_derivative(B::load_unaligned(x + i))).store_unaligned(dx + i);
    for (index_t i = vec_end; i < end; ++i) dx[i] = dy[i] * simd::gelu_derivative(x[i]);
  });
}

/// Index of the first element of x that is NaN or ±Inf, or -1 if all are finite.
template <class T>
index_t first_non_finite(const cpu&, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

}  // namespace tokenformer::kernels

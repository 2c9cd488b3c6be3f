// tokenformer/kernels/cpu/simd.hpp: small xsimd helpers shared by the CPU row kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "tokenformer/core/eigen.hpp"  // first: it includes the intrinsic headers (GCC 12 warning)

#include <xsimd/xsimd.hpp>

#include "tokenformer/core/config.hpp"

/// Small xsimd helpers shared by the CPU row kernels: a value on a SIMD batch and on a scalar tail.
namespace tokenformer::kernels::simd {

/// A SIMD register of T at the widest instruction set the build targets.
template <class T>
using batch = xsimd::batch<T>;

/// Exact GeLU on a SIMD batch: 0.5 · x · (1 + erf(x / √2)).
template <class T>
inline batch<T> gelu(const batch<T>& x) {
  const batch<T> half(T(0.5)), one(T(1)), inv_sqrt2(static_cast<T>(0.70710678118654752440));
  return half * x * (one + xsimd::erf(x * inv_sqrt2));
}
/// Exact GeLU on a scalar, for row tails.
template <class T>
inline T gelu(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(0.70710678118654752440)));
}

/// d gelu/dx = Φ(x) + x·φ(x) on a SIMD batch.
template <class T>
inline batch<T> gelu_derivative(const batch<T>& x) {
  const batch<T> half(T(0.5)), one(T(1)), inv_sqrt2(static_cast<T>(0.70710678118654752440)),
      inv_sqrt_2pi(static_cast<T>(0.39894228040143267794));
  return half * (one + xsimd::erf(x * inv_sqrt2)) + x * inv_sqrt_2pi * xsimd::exp(-half * x * x);
}
/// d gelu/dx on a scalar, for row tails.
template <class T>
inline T gelu_derivative(T x) {
  return T(0.5) * (T(1) + std::erf(x * static_cast<T>(0.70710678118654752440))) +
         x * static_cast<T>(0.39894228040143267794) * std::exp(T(-0.5) * x * x);
}

/// Σ a[i]·b[i] over n elements.
template <class T>
inline T dot(const T* a, const T* b, index_t n) {
  constexpr index_t W = static_cast<index_t>(batch<T>::size);
  const index_t end = n - n % W;
  batch<T> acc(T(0));
  for (index_t i = 0; i < end; i += W)
    acc = xsimd::fma(batch<T>::load_unaligned(a + i), batch<T>::load_unaligned(b + i), acc);
  T sum = xsimd::hadd(acc);
  for (index_t i = end; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

/// The last n % W elements of x, zero-padded to one full batch (so element i always lands in lane
/// i mod W: appending zeros to a row never changes a lane-wise reduction's result).
template <class T>
inline batch<T> load_tail(const T* x, index_t n) {
  constexpr index_t W = static_cast<index_t>(batch<T>::size);
  alignas(64) T lanes[batch<T>::size] = {};
  for (index_t i = n - n % W, l = 0; i < n; ++i, ++l) lanes[l] = x[i];
  return batch<T>::load_aligned(lanes);
}

/// Σ x[i]² over n elements. Lane-wise, so the result is the same bits after zeros are appended.
template <class T>
inline T sum_of_squares(const T* x, index_t n) {
  constexpr index_t W = static_cast<index_t>(batch<T>::size);
  const index_t end = n - n % W;
  batch<T> acc(T(0));
  for (index_t i = 0; i < end; i += W) {
    const auto v = batch<T>::load_unaligned(x + i);
    acc = xsimd::fma(v, v, acc);
  }
  if (end < n) {
    const auto v = load_tail(x, n);
    acc = xsimd::fma(v, v, acc);
  }
  return xsimd::hadd(acc);
}

/// Σ x[i] over n elements (lane-wise, like sum_of_squares).
template <class T>
inline T sum(const T* x, index_t n) {
  constexpr index_t W = static_cast<index_t>(batch<T>::size);
  const index_t end = n - n % W;
  batch<T> acc(T(0));
  for (index_t i = 0; i < end; i += W) acc += batch<T>::load_unaligned(x + i);
  if (end < n) acc += load_tail(x, n);
  return xsimd::hadd(acc);
}

/// max x[i] over n >= 1 elements (NaN-propagating is not required: NaN rows are caught elsewhere).
template <class T>
inline T max(const T* x, index_t n) {
  constexpr index_t W = static_cast<index_t>(batch<T>::size);
  const index_t end = n - n % W;
  T m = -std::numeric_limits<T>::infinity();
  if (end > 0) {
    batch<T> acc = batch<T>::load_unaligned(x);
    for (index_t i = W; i < end; i += W) acc = xsimd::max(acc, batch<T>::load_unaligned(x + i));
    alignas(64) T lanes[batch<T>::size];
    acc.store_aligned(lanes);
    for (std::size_t l = 0; l < batch<T>::size; ++l) m = std::max(m, lanes[l]);
  }
  for (index_t i = end; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

/// out[i] = exp(x[i] − shift) over n elements (xsimd's exp; std::exp on the tail); returns Σ out[i].
/// out may alias x. With shift = max x this is the numerator of a stable softmax.
template <class T>
inline T exp_shifted(T* out, const T* x, T shift, index_t n) {
  constexpr index_t W = static_cast<index_t>(batch<T>::size);
  const index_t end = n - n % W;
  const batch<T> m(shift);
  batch<T> acc(T(0));
  for (index_t i = 0; i < end; i += W) {
    const batch<T> e = xsimd::exp(batch<T>::load_unaligned(x + i) - m);
    e.store_unaligned(out + i);
    acc += e;
  }
  T sum = xsimd::hadd(acc);
  for (index_t i = end; i < n; ++i) {
    out[i] = std::exp(x[i] - shift);
    sum += out[i];
  }
  return sum;
}

/// out[i] = x[i] · scale over n elements; out may alias x.
template <class T>
inline void scale(T* out, const T* x, T factor, index_t n) {
  constexpr index_t W = static_cast<index_t>(batch<T>::size);
  const index_t end = n - n % W;
  const batch<T> f(factor);
  for (index_t i = 0; i < end; i += W) (batch<T>::load_unaligned(x + i) * f).store_unaligned(out + i);
  for (index_t i = end; i < n; ++i) out[i] = x[i] * factor;
}

}  // namespace tokenformer::kernels::simd

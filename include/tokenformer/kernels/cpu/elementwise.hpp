// tokenformer/kernels/cpu/elementwise.hpp: copies and checks over whole tensors on the CPU.
#pragma once

#include <cmath>
#include <cstring>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"

namespace tokenformer::kernels {

/// out[i] = in[i] for n elements (no overlap).
template <class T>
void copy(const cpu&, T* out, const T* in, index_t n) {
  if (n > 0 && out != in) std::memcpy(out, in, static_cast<std::size_t>(n) * sizeof(T));
}

/// Index of the first element of x that is NaN or ±Inf, or -1 if all are finite.
template <class T>
index_t first_non_finite(const cpu&, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

}  // namespace tokenformer::kernels

// tokenformer/kernels/cpu/adamw.hpp: AdamW step and gradient reductions on the CPU.
//
// Over the reference: computes in T (as torch does for float parameters) with xsimd vectors and
// OpenMP over chunks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/kernels/adamw_segment.hpp"
#include "tokenformer/kernels/cpu/simd.hpp"

namespace tokenformer::kernels {

/// One AdamW step; same contract as reference::adamw_step.
template <class T>
void adamw_step(const cpu&, T* p, T* m, T* v, const T* g, index_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, long step) {
  using B = simd::batch<T>;
  constexpr index_t W = static_cast<index_t>(B::size);
  const T bias1 = static_cast<T>(1.0 - std::pow(beta1, static_cast<double>(step)));
  const T bias2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step))));
  const T decay = static_cast<T>(1.0 - lr * weight_decay), b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2);
  const T step_size = static_cast<T>(lr) / bias1, epsilon = static_cast<T>(eps);
  const index_t end = n - n % W;
#if TOKENFORMER_OPENMP
#pragma omp parallel for schedule(static) if (n > 65536)
#endif
  for (index_t i = 0; i < end; i += W) {
    const B gi = B::load_unaligned(g + i);
    const B mi = B(b1) * B::load_unaligned(m + i) + B(T(1) - b1) * gi;
    const B vi = B(b2) * B::load_unaligned(v + i) + B(T(1) - b2) * gi * gi;
    const B pi =
        B::load_unaligned(p + i) * B(decay) - B(step_size) * mi / (xsimd::sqrt(vi) / B(bias2_sqrt) + B(epsilon));
    pi.store_unaligned(p + i);
    mi.store_unaligned(m + i);
    vi.store_unaligned(v + i);
  }
  for (index_t i = end; i < n; ++i) {
    m[i] = b1 * m[i] + (T(1) - b1) * g[i];
    v[i] = b2 * v[i] + (T(1) - b2) * g[i] * g[i];
    p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(v[i]) / bias2_sqrt + epsilon);
  }
}

/// One AdamW step over several parameters at once (on the CPU, one adamw_step each).
template <class T>
void adamw_step_many(const cpu& device, const AdamWSegment<T>* segments, std::size_t count, double lr, double beta1,
                     double beta2, double eps, long step) {
  for (std::size_t i = 0; i < count; ++i) {
    const AdamWSegment<T>& s = segments[i];
    adamw_step(device, s.p, s.m, s.v, s.g, s.n, lr, beta1, beta2, eps, s.weight_decay, step);
  }
}

/// Σ x[i]² in double (for global gradient norms).
template <class T>
double sum_of_squares(const cpu&, const T* x, index_t n) {
  double total = 0.0;
  constexpr index_t chunk = 4096;
#if TOKENFORMER_OPENMP
#pragma omp parallel for schedule(static) reduction(+ : total) if (n > 65536)
#endif
  for (index_t begin = 0; begin < n; begin += chunk)
    total += static_cast<double>(simd::sum_of_squares(x + begin, std::min(chunk, n - begin)));
  return total;
}

/// x[i] *= factor.
template <class T>
void scale(const cpu&, T* x, T factor, index_t n) {
  simd::scale(x, x, factor, n);
}

/// y += x (n elements).
template <class T>
void add(const cpu&, T* y, const T* x, index_t n) {
#pragma omp parallel for schedule(static) if (n > (index_t(1) << 16))
  for (index_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace tokenformer::kernels

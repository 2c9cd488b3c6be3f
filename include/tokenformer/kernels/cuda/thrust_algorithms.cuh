// tokenformer/kernels/cuda/thrust_algorithms.cuh: the element-wise and reduction algorithms of the
// CUDA kernels, written once with Thrust and an execution policy.
//
// Nothing here is CUDA-specific: the CUDA kernels pass `thrust::cuda::par.on(stream)`, and the
// tests compile this header with a host compiler for Thrust's CPP and OpenMP backends
// (THRUST_DEVICE_SYSTEM) and check it against the CPU kernels on machines without a GPU.
#pragma once

#include <thrust/execution_policy.h>
#include <thrust/find.h>
#include <thrust/for_each.h>
#include <thrust/functional.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform.h>
#include <thrust/transform_reduce.h>

#include <cmath>

#include "tokenformer/core/config.hpp"

/// The element-wise and reduction algorithms of the CUDA kernels, written once with Thrust and an
/// execution policy, so that they also run (and are tested) on Thrust's CPU backends.
namespace tokenformer::kernels::thrust_algorithms {

/// √x on the host and on the device.
template <class T>
TOKENFORMER_HOST_DEVICE inline T square_root(T x) {
#if defined(__CUDA_ARCH__)
  return ::sqrt(x);
#else
  return std::sqrt(x);
#endif
}

/// Whether x is neither NaN nor ±Inf, on the host and on the device.
template <class T>
TOKENFORMER_HOST_DEVICE inline bool is_finite(T x) {
#if defined(__CUDA_ARCH__)
  return ::isfinite(x);
#else
  return std::isfinite(x);
#endif
}

/// The per-step constants of AdamW, computed once on the host exactly as the CPU kernel does.
template <class T>
struct AdamWCoefficients {
  ///@{
  /// β1, β2, the decay factor 1 - lr·weight_decay, the step size lr / (1 - β1^step), √(1 - β2^step)
  /// and ε, in T.
  T beta1, beta2, decay, step_size, bias2_sqrt, eps;
  ///@}

  /// The coefficients of AdamW step `step` (from 1) with these hyperparameters.
  static AdamWCoefficients make(double lr, double beta1, double beta2, double eps, double weight_decay, long step) {
    const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    AdamWCoefficients c;
    c.beta1 = static_cast<T>(beta1);
    c.beta2 = static_cast<T>(beta2);
    c.decay = static_cast<T>(1.0 - lr * weight_decay);
    c.step_size = static_cast<T>(lr) / static_cast<T>(bias1);
    c.bias2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step))));
    c.eps = static_cast<T>(eps);
    return c;
  }
};

/// One AdamW update of one element (the same arithmetic, in T, as kernels::adamw_step on the CPU).
template <class T>
TOKENFORMER_HOST_DEVICE inline void adamw_element(T& p, T& m, T& v, T g, const AdamWCoefficients<T>& c) {
  m = c.beta1 * m + (T(1) - c.beta1) * g;
  v = c.beta2 * v + (T(1) - c.beta2) * g * g;
  p = p * c.decay - c.step_size * m / (square_root(v) / c.bias2_sqrt + c.eps);
}

namespace detail {

template <class T>
struct square_in_double {
  TOKENFORMER_HOST_DEVICE double operator()(T x) const { return static_cast<double>(x) * static_cast<double>(x); }
};
template <class T>
struct to_double {
  TOKENFORMER_HOST_DEVICE double operator()(T x) const { return static_cast<double>(x); }
};
template <class T>
struct times {
  T factor;
  TOKENFORMER_HOST_DEVICE T operator()(T x) const { return x * factor; }
};
template <class T>
struct not_finite {
  TOKENFORMER_HOST_DEVICE bool operator()(T x) const { return !is_finite(x); }
};
template <class T>
struct adamw_at {
  T* p;
  T* m;
  T* v;
  const T* g;
  AdamWCoefficients<T> c;
  TOKENFORMER_HOST_DEVICE void operator()(index_t i) const { adamw_element(p[i], m[i], v[i], g[i], c); }
};

}  // namespace detail

/// Σ x[i]², accumulated in double.
template <class Policy, class T>
double sum_of_squares(const Policy& policy, const T* x, index_t n) {
  if (n <= 0) return 0.0;
  return thrust::transform_reduce(policy, x, x + n, detail::square_in_double<T>{}, 0.0, thrust::plus<double>());
}

/// Σ x[i], accumulated in double.
template <class Policy, class T>
double sum(const Policy& policy, const T* x, index_t n) {
  if (n <= 0) return 0.0;
  return thrust::transform_reduce(policy, x, x + n, detail::to_double<T>{}, 0.0, thrust::plus<double>());
}

/// x[i] *= factor.
template <class Policy, class T>
void scale(const Policy& policy, T* x, T factor, index_t n) {
  if (n > 0) thrust::transform(policy, x, x + n, x, detail::times<T>{factor});
}

/// y[i] += x[i].
template <class Policy, class T>
void add(const Policy& policy, T* y, const T* x, index_t n) {
  if (n > 0) thrust::transform(policy, y, y + n, x, y, thrust::plus<T>());
}

/// Index of the first NaN or ±Inf in x, or −1.
template <class Policy, class T>
index_t first_non_finite(const Policy& policy, const T* x, index_t n) {
  if (n <= 0) return -1;
  const T* found = thrust::find_if(policy, x, x + n, detail::not_finite<T>{});
  return found == x + n ? index_t(-1) : static_cast<index_t>(found - x);
}

/// One AdamW step over n elements.
template <class Policy, class T>
void adamw_step(const Policy& policy, T* p, T* m, T* v, const T* g, index_t n, const AdamWCoefficients<T>& c) {
  if (n <= 0) return;
  thrust::for_each(policy, thrust::counting_iterator<index_t>(0), thrust::counting_iterator<index_t>(n),
                   detail::adamw_at<T>{p, m, v, g, c});
}

}  // namespace tokenformer::kernels::thrust_algorithms

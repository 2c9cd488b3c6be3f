// tokenformer/kernels/cpu/pattention_norm.hpp: Θ of Pattention on the CPU.
//
// Over the reference: one fused pass per row pair (reduction, then scale + GeLU / exp) with xsimd
// vectors, accumulating in T instead of double; rows in parallel with OpenMP.
#pragma once

#include <cmath>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/normalization.hpp"
#include "tokenformer/kernels/cpu/parallel.hpp"
#include "tokenformer/kernels/cpu/simd.hpp"

namespace tokenformer::kernels {

namespace detail {

template <class T>
void pattention_norm_row(T* o, const T* s, index_t n, Normalization kind, T scale_tokens) {
  using B = simd::batch<T>;
  constexpr index_t W = static_cast<index_t>(B::size);
  const index_t end = n - n % W;
  switch (kind) {
    case Normalization::l2_norm_gelu: {
      const T ss = simd::sum_of_squares(s, n);
      if (ss == T(0)) {  // all-zero row: official 0/0 = NaN; gelu(0) = 0 is the continuous answer
        for (index_t i = 0; i < n; ++i) o[i] = T(0);
        return;
      }
      const T scale = std::sqrt(scale_tokens) / std::sqrt(ss);
      const B f(scale);
      for (index_t i = 0; i < end; i += W) simd::gelu(B::load_unaligned(s + i) * f).store_unaligned(o + i);
      for (index_t i = end; i < n; ++i) o[i] = simd::gelu(s[i] * scale);
      return;
    }
    case Normalization::gelu_l2_norm: {
      for (index_t i = 0; i < end; i += W) simd::gelu(B::load_unaligned(s + i)).store_unaligned(o + i);
      for (index_t i = end; i < n; ++i) o[i] = simd::gelu(s[i]);
      const T ss = simd::sum_of_squares(o, n);
      if (ss == T(0)) {
        for (index_t i = 0; i < n; ++i) o[i] = T(0);
        return;
      }
      simd::scale(o, o, std::sqrt(scale_tokens) / std::sqrt(ss), n);
      return;
    }
    case Normalization::softmax: {
      const T sum = simd::exp_shifted(o, s, simd::max(s, n), n);
      simd::scale(o, o, scale_tokens / sum, n);
      return;
    }
  }
}

}  // namespace detail

/// Applies Θ to each row of scores; same contract as reference::pattention_norm_forward.
template <class T>
void pattention_norm_forward(const cpu&, T* out,  // (R, n)
                             const T* scores,     // (R, n)
                             index_t rows, index_t n, Normalization kind, index_t scale_tokens) {
  check_normalization(kind, "pattention_norm_forward");
  const T tokens = static_cast<T>(scale_tokens);
  detail::parallel_for(rows, rows * n > 32768,
                       [&](index_t r) { detail::pattention_norm_row(out + r * n, scores + r * n, n, kind, tokens); });
}

namespace detail {

template <class T>
void pattention_norm_backward_row(T* ds, const T* dw, const T* s, index_t n, Normalization kind, T N) {
  using B = simd::batch<T>;
  constexpr index_t W = static_cast<index_t>(B::size);
  const index_t end = n - n % W;
  switch (kind) {
    case Normalization::l2_norm_gelu: {
      // u = f·s with f = √N/‖s‖;  g = dw·gelu'(u);  ds = f·(g − s·(g·s)/‖s‖²)
      const T ss = simd::sum_of_squares(s, n);
      if (ss == T(0)) {
        for (index_t i = 0; i < n; ++i) ds[i] = T(0);
        return;
      }
      const T f = std::sqrt(N) / std::sqrt(ss);
      const B fb(f);
      B acc(T(0));
      for (index_t i = 0; i < end; i += W) {
        const B si = B::load_unaligned(s + i);
        const B g = B::load_unaligned(dw + i) * simd::gelu_derivative(si * fb);
        g.store_unaligned(ds + i);
        acc = xsimd::fma(g, si, acc);
      }
      T dot = xsimd::hadd(acc);
      for (index_t i = end; i < n; ++i) {
        ds[i] = dw[i] * simd::gelu_derivative(s[i] * f);
        dot += ds[i] * s[i];
      }
      const T k = dot / ss;
      const B kb(k);
      for (index_t i = 0; i < end; i += W)
        (fb * (B::load_unaligned(ds + i) - B::load_unaligned(s + i) * kb)).store_unaligned(ds + i);
      for (index_t i = end; i < n; ++i) ds[i] = f * (ds[i] - s[i] * k);
      return;
    }
    case Normalization::gelu_l2_norm: {
      // h = gelu(s), f = √N/‖h‖;  ds = f·(dw − h·(dw·h)/‖h‖²)·gelu'(s).  ds holds h in between.
      B acc_hh(T(0)), acc_dot(T(0));
      for (index_t i = 0; i < end; i += W) {
        const B h = simd::gelu(B::load_unaligned(s + i));
        h.store_unaligned(ds + i);
        acc_hh = xsimd::fma(h, h, acc_hh);
        acc_dot = xsimd::fma(h, B::load_unaligned(dw + i), acc_dot);
      }
      T hh = xsimd::hadd(acc_hh), dot = xsimd::hadd(acc_dot);
      for (index_t i = end; i < n; ++i) {
        ds[i] = simd::gelu(s[i]);
        hh += ds[i] * ds[i];
        dot += ds[i] * dw[i];
      }
      if (hh == T(0)) {
        for (index_t i = 0; i < n; ++i) ds[i] = T(0);
        return;
      }
      const T f = std::sqrt(N) / std::sqrt(hh), k = dot / hh;
      const B fb(f), kb(k);
      for (index_t i = 0; i < end; i += W) {
        const B si = B::load_unaligned(s + i);
        (fb * (B::load_unaligned(dw + i) - B::load_unaligned(ds + i) * kb) * simd::gelu_derivative(si))
            .store_unaligned(ds + i);
      }
      for (index_t i = end; i < n; ++i) ds[i] = f * (dw[i] - ds[i] * k) * simd::gelu_derivative(s[i]);
      return;
    }
    case Normalization::softmax: {
      // p = softmax(s);  ds = N·p·(dw − dw·p).  ds holds p in between.
      const T max = simd::max(s, n);
      const B m(max);
      B acc(T(0));
      for (index_t i = 0; i < end; i += W) {
        const B e = xsimd::exp(B::load_unaligned(s + i) - m);
        e.store_unaligned(ds + i);
        acc += e;
      }
      T sum = xsimd::hadd(acc);
      for (index_t i = end; i < n; ++i) {
        ds[i] = std::exp(s[i] - max);
        sum += ds[i];
      }
      const T inv = T(1) / sum;
      const T dot = simd::dot(ds, dw, n) * inv;
      const B scale(N * inv), db(dot);
      for (index_t i = 0; i < end; i += W)
        (scale * B::load_unaligned(ds + i) * (B::load_unaligned(dw + i) - db)).store_unaligned(ds + i);
      for (index_t i = end; i < n; ++i) ds[i] = N * inv * ds[i] * (dw[i] - dot);
      return;
    }
  }
}

}  // namespace detail

/// Gradient of Θ; same contract as reference::pattention_norm_backward, except that d_scores must not
/// alias d_weights or scores (it is used as scratch).
template <class T>
void pattention_norm_backward(const cpu&, T* d_scores,  // (R, n)
                              const T* d_weights,       // (R, n)
                              const T* scores,          // (R, n) before Θ
                              index_t rows, index_t n, Normalization kind, index_t scale_tokens) {
  check_normalization(kind, "pattention_norm_backward");
  const T tokens = static_cast<T>(scale_tokens);
  detail::parallel_for(rows, rows * n > 32768, [&](index_t r) {
    detail::pattention_norm_backward_row(d_scores + r * n, d_weights + r * n, scores + r * n, n, kind, tokens);
  });
}

}  // namespace tokenformer::kernels

// tokenformer/kernels/cpu/pattention_norm.hpp: Θ of Pattention on the CPU.
//
// Over the reference: one fused pass per row pair (reduction, then scale + GeLU / exp) with xsimd
// vectors, accumulating in T instead of double; rows in parallel with OpenMP.
#pragma once

#include <cmath>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/model_config.hpp"
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
      const T max = simd::max(s, n);
      const B m(max);
      B acc(T(0));
      for (index_t i = 0; i < end; i += W) {
        const B e = xsimd::exp(B::load_unaligned(s + i) - m);
        e.store_unaligned(o + i);
        acc += e;
      }
      T sum = xsimd::hadd(acc);
      for (index_t i = end; i < n; ++i) {
        o[i] = std::exp(s[i] - max);
        sum += o[i];
      }
      simd::scale(o, o, scale_tokens / sum, n);
      return;
    }
    case Normalization::dynamic: return;  // rejected by the caller before the parallel loop
  }
}

}  // namespace detail

/// Applies Θ to each row of scores; same contract as reference::pattention_norm_forward.
template <class T>
void pattention_norm_forward(const cpu&, T* out,           // (R, n)
                             const T* scores,              // (R, n)
                             index_t rows, index_t n, Normalization kind, index_t scale_tokens) {
  if (kind == Normalization::dynamic) throw config_error("pattention_norm_forward needs a concrete normalization");
  const T tokens = static_cast<T>(scale_tokens);
#if TOKENFORMER_OPENMP
#pragma omp parallel for schedule(static) if (rows * n > 32768)
#endif
  for (index_t r = 0; r < rows; ++r) detail::pattention_norm_row(out + r * n, scores + r * n, n, kind, tokens);
}

}  // namespace tokenformer::kernels

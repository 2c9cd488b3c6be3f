// tokenformer/kernels/cpu/layer_norm.hpp: LayerNorm on the CPU.
//
// Over the reference: xsimd row reductions and a vectorized normalize pass, accumulating in T;
// rows in parallel with OpenMP.
#pragma once

#include <cmath>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/kernels/cpu/parallel.hpp"
#include "tokenformer/kernels/cpu/simd.hpp"

namespace tokenformer::kernels {

/// out = (x - mean) / sqrt(var + eps) [· weight + bias] per row; same contract as
/// reference::layer_norm_forward (weight and bias both null for the non-parametric form).
template <class T>
void layer_norm_forward(const cpu&, T* out,  // (R, C)
                        T* mean,             // (R) or null
                        T* rstd,             // (R) or null
                        const T* x,          // (R, C)
                        const T* weight,     // (C) or null
                        const T* bias,       // (C) or null
                        index_t rows, index_t C, double eps) {
  using B = simd::batch<T>;
  constexpr index_t W = static_cast<index_t>(B::size);
  const index_t end = C - C % W;
  detail::parallel_for(rows, rows * C > 32768, [&](index_t r) {
    const T* xr = x + r * C;
    T* o = out + r * C;
    const T m = simd::sum(xr, C) / static_cast<T>(C);
    const B mb(m);
    B acc(T(0));
    for (index_t i = 0; i < end; i += W) {
      const B d = B::load_unaligned(xr + i) - mb;
      acc = xsimd::fma(d, d, acc);
    }
    T var = xsimd::hadd(acc);
    for (index_t i = end; i < C; ++i) var += (xr[i] - m) * (xr[i] - m);
    var /= static_cast<T>(C);
    const T rs = T(1) / std::sqrt(var + static_cast<T>(eps));
    const B rb(rs);
    if (weight == nullptr) {
      for (index_t i = 0; i < end; i += W) ((B::load_unaligned(xr + i) - mb) * rb).store_unaligned(o + i);
      for (index_t i = end; i < C; ++i) o[i] = (xr[i] - m) * rs;
    } else {
      for (index_t i = 0; i < end; i += W)
        xsimd::fma((B::load_unaligned(xr + i) - mb) * rb, B::load_unaligned(weight + i), B::load_unaligned(bias + i))
            .store_unaligned(o + i);
      for (index_t i = end; i < C; ++i) o[i] = (xr[i] - m) * rs * weight[i] + bias[i];
    }
    if (mean != nullptr) mean[r] = m;
    if (rstd != nullptr) rstd[r] = rs;
  });
}

/// Gradient of layer_norm_forward; same contract as reference::layer_norm_backward. Rows run in
/// parallel; the affine form (the final norm, and the plain Transformer's two norms per block) runs its
/// weight and bias reduction serially, an O(rows·C) pass.
template <class T>
void layer_norm_backward(const cpu&, T* dx,  // (R, C)
                         T* d_weight,        // (C) or null
                         T* d_bias,          // (C) or null
                         const T* dy,        // (R, C)
                         const T* x,         // (R, C)
                         const T* weight,    // (C) or null
                         const T* mean,      // (R)
                         const T* rstd,      // (R)
                         index_t rows, index_t C, bool accumulate = false) {
  const auto row_pass = [&](index_t r) {
    const T m = mean[r], rs = rstd[r];
    const T* xr = x + r * C;
    const T* g = dy + r * C;
    T sum_dxhat = T(0), sum_dxhat_xhat = T(0);
    for (index_t i = 0; i < C; ++i) {
      const T xhat = (xr[i] - m) * rs;
      const T dxhat = weight ? g[i] * weight[i] : g[i];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * xhat;
    }
    const T mean_dxhat = sum_dxhat / static_cast<T>(C), mean_dxhat_xhat = sum_dxhat_xhat / static_cast<T>(C);
    T* out = dx + r * C;
    for (index_t i = 0; i < C; ++i) {
      const T xhat = (xr[i] - m) * rs;
      const T dxhat = weight ? g[i] * weight[i] : g[i];
      const T v = rs * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
      out[i] = accumulate ? out[i] + v : v;
    }
  };
  if (d_weight == nullptr) {
    detail::parallel_for(rows, rows * C > 32768, row_pass);
    return;
  }
  for (index_t r = 0; r < rows; ++r) {
    const T m = mean[r], rs = rstd[r];
    for (index_t i = 0; i < C; ++i) {
      d_weight[i] += dy[r * C + i] * (x[r * C + i] - m) * rs;
      d_bias[i] += dy[r * C + i];
    }
  }
  detail::parallel_for(rows, rows * C > 32768, row_pass);
}

}  // namespace tokenformer::kernels

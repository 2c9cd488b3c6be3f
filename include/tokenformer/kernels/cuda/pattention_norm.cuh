// tokenformer/kernels/cuda/pattention_norm.cuh: Θ of Pattention on the GPU.
//
// One fused kernel per direction: a block owns a row of scores, reduces it (sum of squares, or
// maximum and sum of exponentials) and writes the normalized, activated row in the same launch.
#pragma once

#include "tokenformer/core/normalization.hpp"
#include "tokenformer/kernels/cuda/common.cuh"

namespace tokenformer::kernels {

namespace cuda_detail {

template <class T>
__global__ void pattention_norm_forward_kernel(T* out, const T* scores, index_t rows, index_t n, Normalization kind,
                                               T tokens) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* s = scores + r * n;
    T* o = out + r * n;
    if (kind == Normalization::l2_norm_gelu) {
      T ss = T(0);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) ss += s[i] * s[i];
      ss = block_sum(ss);
      // An all-zero row gives gelu(0) = 0 (the official code would give 0/0 = NaN).
      const T f = ss == T(0) ? T(0) : sqrt_(tokens) / sqrt_(ss);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) o[i] = gelu(s[i] * f);
    } else if (kind == Normalization::gelu_l2_norm) {
      T ss = T(0);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) {
        const T h = gelu(s[i]);
        o[i] = h;
        ss += h * h;
      }
      ss = block_sum(ss);
      const T f = ss == T(0) ? T(0) : sqrt_(tokens) / sqrt_(ss);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) o[i] *= f;  // each thread rescales what it wrote
    } else {                                                            // softmax
      T m = T(-INFINITY);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) m = max(m, s[i]);
      m = block_max(m);
      T sum = T(0);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) {
        const T e = exp_(s[i] - m);
        o[i] = e;
        sum += e;
      }
      sum = block_sum(sum);
      const T f = tokens / sum;
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) o[i] *= f;
    }
  }
}

template <class T>
__global__ void pattention_norm_backward_kernel(T* d_scores, const T* d_weights, const T* scores, index_t rows,
                                                index_t n, Normalization kind, T tokens) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* s = scores + r * n;
    const T* dw = d_weights + r * n;
    T* ds = d_scores + r * n;
    if (kind == Normalization::l2_norm_gelu) {
      // u = f·s with f = √N/‖s‖;  g = dw·gelu'(u);  ds = f·(g − s·(g·s)/‖s‖²)
      T ss = T(0);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) ss += s[i] * s[i];
      ss = block_sum(ss);
      if (ss == T(0)) {
        for (index_t i = threadIdx.x; i < n; i += blockDim.x) ds[i] = T(0);
        continue;
      }
      const T f = sqrt_(tokens) / sqrt_(ss);
      T dot = T(0);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) {
        const T g = dw[i] * gelu_derivative(s[i] * f);
        ds[i] = g;
        dot += g * s[i];
      }
      const T k = block_sum(dot) / ss;
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) ds[i] = f * (ds[i] - s[i] * k);
    } else if (kind == Normalization::gelu_l2_norm) {
      // h = gelu(s), f = √N/‖h‖;  ds = f·(dw − h·(dw·h)/‖h‖²)·gelu'(s)
      T hh = T(0), dot = T(0);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) {
        const T h = gelu(s[i]);
        ds[i] = h;
        hh += h * h;
        dot += h * dw[i];
      }
      hh = block_sum(hh);
      dot = block_sum(dot);
      if (hh == T(0)) {
        for (index_t i = threadIdx.x; i < n; i += blockDim.x) ds[i] = T(0);
        continue;
      }
      const T f = sqrt_(tokens) / sqrt_(hh), k = dot / hh;
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) ds[i] = f * (dw[i] - ds[i] * k) * gelu_derivative(s[i]);
    } else {  // softmax: p = softmax(s);  ds = N·p·(dw − dw·p)
      T m = T(-INFINITY);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) m = max(m, s[i]);
      m = block_max(m);
      T sum = T(0), dot = T(0);
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) {
        const T e = exp_(s[i] - m);
        ds[i] = e;
        sum += e;
        dot += e * dw[i];
      }
      sum = block_sum(sum);
      dot = block_sum(dot);
      const T inv = T(1) / sum;
      const T p_dot = dot * inv;
      for (index_t i = threadIdx.x; i < n; i += blockDim.x) ds[i] = tokens * inv * ds[i] * (dw[i] - p_dot);
    }
  }
}

}  // namespace cuda_detail

/// Applies Θ to each row of scores; the contract of the CPU kernel.
template <class T>
void pattention_norm_forward(const cuda& device, T* out,  // (R, n)
                             const T* scores,             // (R, n)
                             index_t rows, index_t n, Normalization kind, index_t scale_tokens) {
  check_normalization(kind, "pattention_norm_forward");
  if (rows == 0 || n == 0) return;
  cuda_detail::pattention_norm_forward_kernel<<<cuda_detail::blocks_for_rows(rows), cuda_detail::block_threads, 0,
                                                device.stream()>>>(out, scores, rows, n, kind,
                                                                   static_cast<T>(scale_tokens));
  cuda_detail::check_launch("pattention_norm_forward_kernel");
}

/// Gradient of Θ; the contract of the CPU kernel (d_scores must not alias d_weights or scores).
template <class T>
void pattention_norm_backward(const cuda& device, T* d_scores,  // (R, n)
                              const T* d_weights,               // (R, n)
                              const T* scores,                  // (R, n) before Θ
                              index_t rows, index_t n, Normalization kind, index_t scale_tokens) {
  check_normalization(kind, "pattention_norm_backward");
  if (rows == 0 || n == 0) return;
  cuda_detail::pattention_norm_backward_kernel<<<cuda_detail::blocks_for_rows(rows), cuda_detail::block_threads, 0,
                                                 device.stream()>>>(d_scores, d_weights, scores, rows, n, kind,
                                                                    static_cast<T>(scale_tokens));
  cuda_detail::check_launch("pattention_norm_backward_kernel");
}

}  // namespace tokenformer::kernels

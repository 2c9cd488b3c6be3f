// tokenformer/kernels/cuda/layer_norm.cuh: LayerNorm on the GPU.
//
// A block per row computes the mean and variance (two passes over the row, as the CPU does) and
// writes the normalized row; the affine form's weight and bias gradients are a column reduction
// over row chunks with one atomic add per column and chunk.
#pragma once

#include "tokenformer/kernels/cuda/common.cuh"

namespace tokenformer::kernels {

namespace cuda_detail {

template <class T>
__global__ void layer_norm_forward_kernel(T* out, T* mean, T* rstd, const T* x, const T* weight, const T* bias,
                                          index_t rows, index_t C, T eps) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * C;
    T* o = out + r * C;
    T sum = T(0);
    for (index_t i = threadIdx.x; i < C; i += blockDim.x) sum += xr[i];
    const T m = block_sum(sum) / static_cast<T>(C);
    T var = T(0);
    for (index_t i = threadIdx.x; i < C; i += blockDim.x) var += (xr[i] - m) * (xr[i] - m);
    var = block_sum(var) / static_cast<T>(C);
    const T rs = T(1) / sqrt_(var + eps);
    for (index_t i = threadIdx.x; i < C; i += blockDim.x) {
      const T v = (xr[i] - m) * rs;
      o[i] = weight == nullptr ? v : v * weight[i] + bias[i];
    }
    if (threadIdx.x == 0) {
      if (mean != nullptr) mean[r] = m;
      if (rstd != nullptr) rstd[r] = rs;
    }
  }
}

template <class T>
__global__ void layer_norm_backward_kernel(T* dx, const T* dy, const T* x, const T* weight, const T* mean,
                                           const T* rstd, index_t rows, index_t C, bool accumulate) {
  for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T m = mean[r], rs = rstd[r];
    const T* xr = x + r * C;
    const T* g = dy + r * C;
    T sum_dxhat = T(0), sum_dxhat_xhat = T(0);
    for (index_t i = threadIdx.x; i < C; i += blockDim.x) {
      const T dxhat = weight ? g[i] * weight[i] : g[i];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * (xr[i] - m) * rs;
    }
    const T mean_dxhat = block_sum(sum_dxhat) / static_cast<T>(C);
    const T mean_dxhat_xhat = block_sum(sum_dxhat_xhat) / static_cast<T>(C);
    T* out = dx + r * C;
    for (index_t i = threadIdx.x; i < C; i += blockDim.x) {
      const T xhat = (xr[i] - m) * rs;
      const T dxhat = weight ? g[i] * weight[i] : g[i];
      const T v = rs * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
      out[i] = accumulate ? out[i] + v : v;
    }
  }
}

/// d_weight[c] += Σ_r dy[r, c]·x̂[r, c],  d_bias[c] += Σ_r dy[r, c]; blockIdx.y picks a chunk of rows.
template <class T>
__global__ void layer_norm_affine_grad_kernel(T* d_weight, T* d_bias, const T* dy, const T* x, const T* mean,
                                              const T* rstd, index_t rows, index_t C, index_t chunk) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const index_t r0 = blockIdx.y * chunk;
  const index_t r1 = min(rows, r0 + chunk);
  T dw = T(0), db = T(0);
  for (index_t r = r0; r < r1; ++r) {
    const T g = dy[r * C + c];
    dw += g * (x[r * C + c] - mean[r]) * rstd[r];
    db += g;
  }
  atomicAdd(d_weight + c, dw);
  atomicAdd(d_bias + c, db);
}

}  // namespace cuda_detail

/// The contract of the CPU layer_norm_forward (weight and bias both null for the non-parametric form).
template <class T>
void layer_norm_forward(const cuda& device, T* out,  // (R, C)
                        T* mean,                     // (R) or null
                        T* rstd,                     // (R) or null
                        const T* x,                  // (R, C)
                        const T* weight,             // (C) or null
                        const T* bias,               // (C) or null
                        index_t rows, index_t C, double eps) {
  if ((weight == nullptr) != (bias == nullptr)) throw argument_error("layer_norm_forward: weight and bias go together");
  if (rows == 0 || C == 0) return;
  cuda_detail::
      layer_norm_forward_kernel<<<cuda_detail::blocks_for_rows(rows), cuda_detail::block_threads, 0, device.stream()>>>(
          out, mean, rstd, x, weight, bias, rows, C, static_cast<T>(eps));
  cuda_detail::check_launch("layer_norm_forward_kernel");
}

/// The contract of the CPU layer_norm_backward (d_weight and d_bias are added to).
template <class T>
void layer_norm_backward(const cuda& device, T* dx,  // (R, C)
                         T* d_weight,                // (C) or null
                         T* d_bias,                  // (C) or null
                         const T* dy,                // (R, C)
                         const T* x,                 // (R, C)
                         const T* weight,            // (C) or null
                         const T* mean,              // (R)
                         const T* rstd,              // (R)
                         index_t rows, index_t C, bool accumulate = false) {
  if ((d_weight == nullptr) != (d_bias == nullptr))
    throw argument_error("layer_norm_backward: d_weight and d_bias go together");
  if (rows == 0 || C == 0) return;
  if (d_weight != nullptr) {
    const index_t chunk = std::max<index_t>(64, (rows + 65534) / 65535);  // rows per block, grid.y <= 65535
    const dim3 grid(static_cast<unsigned>((C + cuda_detail::block_threads - 1) / cuda_detail::block_threads),
                    static_cast<unsigned>((rows + chunk - 1) / chunk));
    cuda_detail::layer_norm_affine_grad_kernel<<<grid, cuda_detail::block_threads, 0, device.stream()>>>(
        d_weight, d_bias, dy, x, mean, rstd, rows, C, chunk);
    cuda_detail::check_launch("layer_norm_affine_grad_kernel");
  }
  cuda_detail::layer_norm_backward_kernel<<<cuda_detail::blocks_for_rows(rows), cuda_detail::block_threads, 0,
                                            device.stream()>>>(dx, dy, x, weight, mean, rstd, rows, C, accumulate);
  cuda_detail::check_launch("layer_norm_backward_kernel");
}

}  // namespace tokenformer::kernels

// tokenformer/kernels/cuda/rotary.cuh: rotary embedding (rotate-half) on the GPU.
//
// One thread per (row, head, frequency) pair; the angle is computed in double and rounded to T, as
// the CPU's table is.
#pragma once

#include "tokenformer/kernels/cuda/common.cuh"

namespace tokenformer::kernels {

namespace cuda_detail {

template <class T>
__global__ void rotary_kernel(T* x, index_t rows, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
                              index_t position_offset, double direction) {
  const index_t half = rotary_dims / 2;
  const index_t total = rows * H * half;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < total; i += index_t(gridDim.x) * blockDim.x) {
    const index_t j = i % half;
    const index_t h = (i / half) % H;
    const index_t row = i / (half * H);
    const index_t t = row % T_len;
    const double theta = pow(base, -2.0 * static_cast<double>(j) / static_cast<double>(rotary_dims));
    double s, c;
    sincos(static_cast<double>(position_offset + t) * theta, &s, &c);
    const T cos_a = static_cast<T>(c), sin_a = static_cast<T>(direction * s);
    T* head = x + row * H * D + h * D;
    const T x1 = head[j], x2 = head[j + half];
    head[j] = x1 * cos_a - x2 * sin_a;
    head[j + half] = x2 * cos_a + x1 * sin_a;
  }
}

template <class T>
void rotate(const cuda& device, T* x, index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
            index_t position_offset, double direction) {
  if (rotary_dims < 0 || rotary_dims > D || rotary_dims % 2 != 0)
    throw argument_error("rotary: rotary_dims " + std::to_string(rotary_dims) +
                         " must be even and at most the head size " + std::to_string(D));
  const index_t total = B * T_len * H * (rotary_dims / 2);
  if (total == 0) return;
  rotary_kernel<<<blocks_for(total), block_threads, 0, device.stream()>>>(x, B * T_len, T_len, H, D, rotary_dims, base,
                                                                          position_offset, direction);
  check_launch("rotary_kernel");
}

}  // namespace cuda_detail

/// Rotates the first `rotary_dims` dims of every head of x in place; the contract of the CPU kernel.
template <class T>
void rotary_forward(const cuda& device, T* x,  // (B*T, H*D), in place
                    index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
                    index_t position_offset) {
  cuda_detail::rotate(device, x, B, T_len, H, D, rotary_dims, base, position_offset, 1.0);
}

/// Gradient of rotary_forward (the inverse rotation), in place.
template <class T>
void rotary_backward(const cuda& device, T* dx,  // (B*T, H*D), in place
                     index_t B, index_t T_len, index_t H, index_t D, index_t rotary_dims, double base,
                     index_t position_offset) {
  cuda_detail::rotate(device, dx, B, T_len, H, D, rotary_dims, base, position_offset, -1.0);
}

}  // namespace tokenformer::kernels

// tokenformer/kernels/cpu/attention.hpp: causal multi-head attention on the CPU.
//
// Over the reference: work split into (batch, head, block of 64 queries) tasks run in parallel with
// OpenMP; each task computes its [64, t_end] score block with one Eigen GEMM (single-threaded inside
// the parallel region), a vectorizable masked softmax, and one GEMM with V. No [T, T] matrix per
// head is stored: each thread owns one [64, T] scratch block.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/tensor.hpp"

namespace tokenformer::kernels {

/// Causal softmax attention with scale 1/√D; same contract as reference::attention_forward.
template <class T>
void attention_forward(const cpu&, T* out,                       // (B*T, H*D)
                       const T* q, const T* k, const T* v,        // (B*T, H*D) each
                       index_t B, index_t T_len, index_t H, index_t D) {
  using Stride = Eigen::OuterStride<>;
  using In = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Stride>;
  using Out = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Stride>;
  constexpr index_t block = 64;
  const index_t C = H * D;
  const index_t blocks = (T_len + block - 1) / block;
  const index_t tasks = B * H * blocks;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
#if TOKENFORMER_OPENMP
#pragma omp parallel if (tasks > 1 && T_len * D > 4096)
#endif
  {
    std::vector<T> scratch(static_cast<std::size_t>(std::min(block, T_len) * T_len));
#if TOKENFORMER_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (index_t task = 0; task < tasks; ++task) {
      // Later query blocks have more keys: walk blocks from the last so the big ones start first.
      const index_t blk = blocks - 1 - task % blocks;
      const index_t h = (task / blocks) % H;
      const index_t b = task / (blocks * H);
      const index_t t0 = blk * block, t1 = std::min(T_len, t0 + block);
      const index_t rows = t1 - t0, keys = t1;
      const T* base_q = q + (b * T_len + t0) * C + h * D;
      const T* base_k = k + (b * T_len) * C + h * D;
      const T* base_v = v + (b * T_len) * C + h * D;
      In Q(base_q, rows, D, Stride(C)), K(base_k, keys, D, Stride(C)), V(base_v, keys, D, Stride(C));
      Out S(scratch.data(), rows, keys, Stride(keys));
      S.noalias() = scale * Q * K.transpose();
      for (index_t i = 0; i < rows; ++i) {
        T* srow = scratch.data() + i * keys;
        const index_t valid = t0 + i + 1;  // keys 0..t0+i are visible to query t0+i
        T max = srow[0];
        for (index_t j = 1; j < valid; ++j) max = std::max(max, srow[j]);
        T sum = T(0);
        for (index_t j = 0; j < valid; ++j) {
          srow[j] = std::exp(srow[j] - max);
          sum += srow[j];
        }
        const T inv = T(1) / sum;
        for (index_t j = 0; j < valid; ++j) srow[j] *= inv;
        for (index_t j = valid; j < keys; ++j) srow[j] = T(0);
      }
      Out O(out + (b * T_len + t0) * C + h * D, rows, D, Stride(C));
      O.noalias() = S * V;
    }
  }
}

}  // namespace tokenformer::kernels

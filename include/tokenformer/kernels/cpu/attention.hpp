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

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/eigen.hpp"
#include "tokenformer/core/tensor.hpp"

namespace tokenformer::kernels {

namespace detail {

/// Runs run(task, scratch) for task in [0, tasks), in an OpenMP team when `parallel` (dynamic
/// schedule, one scratch vector of `scratch_size` per thread), else serially. The serial path does
/// not open a one-thread team: Eigen products inside a one-thread team would start nested teams
/// (new threads at every call); outside any team they use the normal thread pool.
template <class T, class Run>
void for_each_task(index_t tasks, bool parallel, std::size_t scratch_size, const Run& run) {
#if TOKENFORMER_OPENMP
  if (parallel) {
#pragma omp parallel
    {
      std::vector<T> scratch(scratch_size);
#pragma omp for schedule(dynamic, 1)
      for (index_t task = 0; task < tasks; ++task) run(task, scratch);
    }
    return;
  }
#else
  (void)parallel;
#endif
  std::vector<T> scratch(scratch_size);
  for (index_t task = 0; task < tasks; ++task) run(task, scratch);
}

/// Softmax over each of `rows` score rows of length `keys`, where row i is query t0 + i and sees
/// keys 0..t0+i; masked entries become 0.
template <class T>
void causal_softmax_rows(T* scores, index_t rows, index_t keys, index_t t0) {
  for (index_t i = 0; i < rows; ++i) {
    T* row = scores + i * keys;
    const index_t valid = t0 + i + 1;
    T max = row[0];
    for (index_t j = 1; j < valid; ++j) max = std::max(max, row[j]);
    T sum = T(0);
    for (index_t j = 0; j < valid; ++j) {
      row[j] = std::exp(row[j] - max);
      sum += row[j];
    }
    const T inv = T(1) / sum;
    for (index_t j = 0; j < valid; ++j) row[j] *= inv;
    for (index_t j = valid; j < keys; ++j) row[j] = T(0);
  }
}

}  // namespace detail

/// Causal softmax attention with scale 1/√D; same contract as reference::attention_forward.
template <class T>
void attention_forward(const cpu&, T* out,                  // (B*T, H*D)
                       const T* q, const T* k, const T* v,  // (B*T, H*D) each
                       index_t B, index_t T_len, index_t H, index_t D) {
  using Stride = Eigen::OuterStride<>;
  using In = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Stride>;
  using Out = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Stride>;
  constexpr index_t block = 64;
  const index_t C = H * D;
  const index_t blocks = (T_len + block - 1) / block;
  const index_t tasks = B * H * blocks;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const auto run = [&](index_t task, std::vector<T>& scratch) {
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
    detail::causal_softmax_rows(scratch.data(), rows, keys, t0);
    Out O(out + (b * T_len + t0) * C + h * D, rows, D, Stride(C));
    O.noalias() = S * V;
  };
  detail::for_each_task<T>(tasks, tasks > 1 && T_len * D > 4096,
                           static_cast<std::size_t>(std::min(block, T_len) * T_len), run);
}

/// Gradient of attention_forward; same contract as reference::attention_backward.
/// Over the reference: one task per (batch, head) in parallel; within it, blocks of 64 queries
/// recompute their probabilities with one GEMM (no [T, T] matrix saved by the forward) and update
/// dq, dk, dv with four GEMMs.
template <class T>
void attention_backward(const cpu&, T* dq, T* dk, T* dv,     // (B*T, H*D) each
                        const T* dout,                       // (B*T, H*D)
                        const T* q, const T* k, const T* v,  // (B*T, H*D) each
                        index_t B, index_t T_len, index_t H, index_t D) {
  using Stride = Eigen::OuterStride<>;
  using In = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Stride>;
  using Out = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Stride>;
  constexpr index_t block = 64;
  const index_t C = H * D;
  const index_t tasks = B * H;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const std::size_t block_size = static_cast<std::size_t>(std::min(block, T_len) * T_len);
  const auto run = [&](index_t task, std::vector<T>& scratch) {
    T* const probs_data = scratch.data();
    T* const dprobs_data = scratch.data() + block_size;
    const index_t h = task % H, b = task / H;
    const index_t offset = b * T_len * C + h * D;
    Out dK(dk + offset, T_len, D, Stride(C)), dV(dv + offset, T_len, D, Stride(C));
    dK.setZero();
    dV.setZero();
    for (index_t t0 = 0; t0 < T_len; t0 += block) {
      const index_t t1 = std::min(T_len, t0 + block), rows = t1 - t0, keys = t1;
      In Q(q + offset + t0 * C, rows, D, Stride(C)), K(k + offset, keys, D, Stride(C)),
          V(v + offset, keys, D, Stride(C)), dO(dout + offset + t0 * C, rows, D, Stride(C));
      Out P(probs_data, rows, keys, Stride(keys)), dP(dprobs_data, rows, keys, Stride(keys));
      P.noalias() = scale * Q * K.transpose();
      detail::causal_softmax_rows(probs_data, rows, keys, t0);
      dV.topRows(keys).noalias() += P.transpose() * dO;  // (keys, D)
      dP.noalias() = dO * V.transpose();                 // (rows, keys)
      for (index_t i = 0; i < rows; ++i) {               // dS = P ⊙ (dP − rowsum(dP ⊙ P)), scaled
        T* p = probs_data + i * keys;
        T* g = dprobs_data + i * keys;
        T dot = T(0);
        for (index_t j = 0; j < keys; ++j) dot += p[j] * g[j];
        for (index_t j = 0; j < keys; ++j) g[j] = p[j] * (g[j] - dot) * scale;
      }
      Out dQ(dq + offset + t0 * C, rows, D, Stride(C));
      dQ.noalias() = dP * K;                             // (rows, D)
      dK.topRows(keys).noalias() += dP.transpose() * Q;  // (keys, D)
    }
  };
  detail::for_each_task<T>(tasks, tasks > 1 && T_len * D > 4096, 2 * block_size, run);
}

}  // namespace tokenformer::kernels

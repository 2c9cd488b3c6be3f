// tokenformer/kernels/cpu/attention.hpp: multi-head attention on the CPU, with every mask of
// kernels/attention_shape.hpp (causal, bidirectional, cross, block-causal; many groups per call).
//
// Over the reference: the forward splits the work into (group, head, block of 64 queries) tasks run
// in parallel with OpenMP; each task computes its [64, visible keys] score block with one GEMM
// (kernels::gemm, so the GEMM backend of gemm.hpp; single-threaded inside the parallel region), a
// softmax vectorized with xsimd (exp included), and one GEMM with V, and keeps each row's log-sum-exp. No [Tq, Tk]
// matrix per head is stored: each thread owns one [64, Tk] scratch block. The backward rebuilds each block's
// probabilities from the saved log-sum-exp (one GEMM and one exp per entry, no max or sum pass) and uses Δ = rowsum(dO
// ⊙ O) from the saved output, as flash attention does.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/eigen.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/attention_shape.hpp"
#include "tokenformer/kernels/cpu/gemm.hpp"
#include "tokenformer/kernels/cpu/simd.hpp"

namespace tokenformer::kernels {

namespace detail {

/// Runs run(task, scratch) for task in [0, tasks), in an OpenMP team when `parallel` (dynamic
/// schedule, one scratch vector of `scratch_size` per thread), else serially. The serial path does
/// not open a one-thread team: Eigen products inside a one-thread team would start nested teams
/// (new threads at every call); outside any team they use the normal thread pool. An exception in a
/// task (kernels::gemm's config_error for a bad TOKENFORMER_GEMM, bad_alloc) skips the remaining tasks
/// and is rethrown after the team ends: an exception may not leave an OpenMP region.
template <class T, class Run>
void for_each_task(index_t tasks, bool parallel, std::size_t scratch_size, const Run& run) {
#if TOKENFORMER_OPENMP
  if (parallel) {
    std::exception_ptr failure;
    std::atomic<bool> failed{false};
    const auto record = [&] {
#pragma omp critical(tokenformer_for_each_task)
      if (!failure) failure = std::current_exception();
      failed.store(true, std::memory_order_relaxed);
    };
#pragma omp parallel
    {
      std::vector<T> scratch;
      try {
        scratch.resize(scratch_size);
      } catch (...) {
        record();
      }
#pragma omp for schedule(dynamic, 1)
      for (index_t task = 0; task < tasks; ++task) {
        if (failed.load(std::memory_order_relaxed)) continue;
        try {
          run(task, scratch);
        } catch (...) {
          record();
        }
      }
    }
    if (failure) std::rethrow_exception(failure);
    return;
  }
#else
  (void)parallel;
#endif
  std::vector<T> scratch(scratch_size);
  for (index_t task = 0; task < tasks; ++task) run(task, scratch);
}

/// Softmax over row[0, valid) in place (xsimd exp); zeros row[valid, total). Returns the row's
/// log-sum-exp. valid >= 1.
template <class T>
T softmax_prefix(T* row, index_t valid, index_t total) {
  const T max = simd::max(row, valid);
  const T sum = simd::exp_shifted(row, row, max, valid);
  simd::scale(row, row, T(1) / sum, valid);
  std::fill(row + valid, row + total, T(0));
  return max + std::log(sum);
}

/// row[j] = exp(row[j] − lse) for j < valid (the probabilities of a row whose log-sum-exp is known);
/// zeros row[valid, total).
template <class T>
void probabilities_from_lse(T* row, T lse, index_t valid, index_t total) {
  simd::exp_shifted(row, row, lse, valid);
  std::fill(row + valid, row + total, T(0));
}

/// Whether a call is worth an OpenMP team: more than one task and about a million multiply-adds.
inline bool attention_parallel(index_t tasks, const AttentionShape& s) {
  const double work = static_cast<double>(s.batch) * static_cast<double>(s.heads) * static_cast<double>(s.queries) *
                      static_cast<double>(s.keys) * static_cast<double>(s.head_dim);
  return tasks > 1 && work > double(1 << 20);
}

constexpr index_t attention_query_block = 64;

}  // namespace detail

/// Softmax attention with scale 1/√D and the mask of `s`; writes out and (unless null) lse. The
/// contract of reference::attention_forward.
template <class T>
void attention_forward(const cpu& device, T* out, non_deduced<T>* lse,  // (batch*Tq, H*D), (batch, H, Tq) or null
                       const T* q, const T* k, const T* v,              // (batch*Tq, H*D), (batch*Tk, H*D) x2
                       const AttentionShape& s) {
  check_attention_shape(s);
  constexpr index_t block = detail::attention_query_block;
  const index_t C = s.width(), D = s.head_dim, H = s.heads;
  const index_t blocks = (s.queries + block - 1) / block;
  const index_t tasks = s.batch * H * blocks;
  if (tasks == 0) return;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const auto run = [&](index_t task, std::vector<T>& scratch) {
    // Later query blocks may see more keys: walk blocks from the last so the big ones start first.
    const index_t blk = blocks - 1 - task % blocks;
    const index_t h = (task / blocks) % H;
    const index_t g = task / (blocks * H);
    const index_t t0 = blk * block, t1 = std::min(s.queries, t0 + block);
    const index_t rows = t1 - t0, keys = s.visible_end(t1 - 1);
    const T* Q = q + (g * s.queries + t0) * C + h * D;  // (rows, D), row stride C
    const T* K = k + g * s.keys * C + h * D;            // (keys, D), row stride C
    const T* V = v + g * s.keys * C + h * D;            // (keys, D), row stride C
    T* S = scratch.data();                              // (rows, keys)
    gemm(device, S, keys, Q, C, false, K, C, true, rows, keys, D, scale);
    for (index_t i = 0; i < rows; ++i) {
      const T row_lse = detail::softmax_prefix(scratch.data() + i * keys, s.visible_end(t0 + i), keys);
      if (lse != nullptr) lse[(g * H + h) * s.queries + t0 + i] = row_lse;
    }
    gemm(device, out + (g * s.queries + t0) * C + h * D, C, S, keys, false, V, C, false, rows, D, keys);
  };
  detail::for_each_task<T>(tasks, detail::attention_parallel(tasks, s),
                           static_cast<std::size_t>(std::min(block, s.queries) * s.keys), run);
}

/// One decoding step with a KV cache (the contract of reference::attention_decode): the query row q
/// attends to all `keys` rows of k and v. Heads run in parallel with OpenMP when the cache is long;
/// `scratch` (H * keys) holds the weights, so nothing is allocated.
template <class T>
void attention_decode(const cpu&, T* out, const T* q, const T* k, const T* v,  // (H*D), (keys, H*D) x2
                      T* scratch, index_t keys, index_t H, index_t D) {
  if (keys <= 0 || H <= 0 || D <= 0) throw shape_error("attention_decode needs keys, heads and head_dim >= 1");
  const index_t C = H * D;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const auto head = [&](index_t h) {
    T* p = scratch + h * keys;
    const T* qh = q + h * D;
    for (index_t u = 0; u < keys; ++u) p[u] = scale * simd::dot(qh, k + u * C + h * D, D);
    const T max = simd::max(p, keys);
    const T sum = simd::exp_shifted(p, p, max, keys);
    const T inv = T(1) / sum;
    T* o = out + h * D;
    std::fill(o, o + D, T(0));
    for (index_t u = 0; u < keys; ++u) {
      const T w = p[u] * inv;
      const T* vu = v + u * C + h * D;
      for (index_t d = 0; d < D; ++d) o[d] += w * vu[d];
    }
  };
#if TOKENFORMER_OPENMP
  if (H > 1 && static_cast<double>(keys) * static_cast<double>(C) > double(1 << 16)) {
#pragma omp parallel for schedule(static)
    for (index_t h = 0; h < H; ++h) head(h);
    return;
  }
#endif
  for (index_t h = 0; h < H; ++h) head(h);
}

/// Gradient of attention_forward: overwrites dq, dk, dv, given the forward's inputs, its output and
/// its log-sum-exp. Same result as reference::attention_backward (which recomputes everything).
/// One task per (group, head) in parallel; within it, blocks of 64 queries rebuild their
/// probabilities from lse with one GEMM and update dq, dk, dv with four GEMMs.
template <class T>
void attention_backward(const cpu& device, T* dq, T* dk, T* dv,  // like q, k, v
                        const T* dout,                           // like q
                        const T* q, const T* k, const T* v,      // as given to the forward
                        const T* out, const T* lse,              // the forward's results
                        const AttentionShape& s) {
  check_attention_shape(s);
  using Stride = Eigen::OuterStride<>;
  using Out = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Stride>;
  constexpr index_t block = detail::attention_query_block;
  const index_t C = s.width(), D = s.head_dim, H = s.heads;
  const index_t tasks = s.batch * H;
  if (tasks == 0) return;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const std::size_t block_size = static_cast<std::size_t>(std::min(block, s.queries) * s.keys);
  const auto run = [&](index_t task, std::vector<T>& scratch) {
    T* const probs_data = scratch.data();
    T* const dprobs_data = scratch.data() + block_size;
    const index_t h = task % H, g = task / H;
    const index_t q_offset = g * s.queries * C + h * D, k_offset = g * s.keys * C + h * D;
    const T* row_lse = lse + (g * H + h) * s.queries;
    Out(dk + k_offset, s.keys, D, Stride(C)).setZero();
    Out(dv + k_offset, s.keys, D, Stride(C)).setZero();
    // Every matrix below has row stride C (one head's D columns of the [tokens, H*D] tensors) except
    // the probabilities P and their gradient dP, (rows, keys) blocks of the scratch.
    const T *K = k + k_offset, *V = v + k_offset;
    T *dK = dk + k_offset, *dV = dv + k_offset;
    for (index_t t0 = 0; t0 < s.queries; t0 += block) {
      const index_t t1 = std::min(s.queries, t0 + block), rows = t1 - t0, keys = s.visible_end(t1 - 1);
      const T *Q = q + q_offset + t0 * C, *dO = dout + q_offset + t0 * C;
      gemm(device, probs_data, keys, Q, C, false, K, C, true, rows, keys, D, scale);  // P = scale·Q·Kᵀ, then exp
      for (index_t i = 0; i < rows; ++i)
        detail::probabilities_from_lse(probs_data + i * keys, row_lse[t0 + i], s.visible_end(t0 + i), keys);
      gemm(device, dV, C, probs_data, keys, true, dO, C, false, keys, D, rows, T(1), T(1));  // dV += Pᵀ·dO
      gemm(device, dprobs_data, keys, dO, C, false, V, C, true, rows, keys, D);              // dP = dO·Vᵀ
      for (index_t i = 0; i < rows; ++i) {  // dS = P ⊙ (dP − Δ), Δ = rowsum(dO ⊙ O); scaled
        const index_t row = q_offset + (t0 + i) * C;
        const T delta = simd::dot(dout + row, out + row, D);
        T* p = probs_data + i * keys;
        T* grad = dprobs_data + i * keys;
        for (index_t j = 0; j < keys; ++j) grad[j] = p[j] * (grad[j] - delta) * scale;
      }
      gemm(device, dq + q_offset + t0 * C, C, dprobs_data, keys, false, K, C, false, rows, D, keys);  // dQ = dS·K
      gemm(device, dK, C, dprobs_data, keys, true, Q, C, false, keys, D, rows, T(1), T(1));           // dK += dSᵀ·Q
    }
  };
  detail::for_each_task<T>(tasks, detail::attention_parallel(tasks, s), 2 * block_size, run);
}

}  // namespace tokenformer::kernels

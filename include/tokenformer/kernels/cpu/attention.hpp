// tokenformer/kernels/cpu/attention.hpp: multi-head attention on the CPU, with every mask of
// kernels/attention_shape.hpp (causal, bidirectional, cross, block-causal; many groups per call).
//
// Over the reference, flash attention on the CPU: the forward splits the work into (group, head,
// block of 64 queries) tasks run in parallel with OpenMP. Each task walks the visible keys in tiles of
// 256: one GEMM (kernels::gemm, so the GEMM backend of gemm.hpp; single-threaded inside the parallel
// region) gives the [64, 256] score tile, an online softmax (running row max and sum, exp vectorized
// with xsimd) turns it into weights and rescales the [64, D] output accumulator, and one GEMM adds the
// tile's weighted values. No score row longer than a tile is stored, whatever the sequence length; each
// row's log-sum-exp is kept for the backward. Tiles a query block cannot see are skipped. The backward
// rebuilds each tile's probabilities from the saved log-sum-exp (one GEMM and one exp per entry, no max
// or sum pass) and uses Δ = rowsum(dO ⊙ O) from the saved output, as flash attention does. A query
// block whose visible keys fit one tile (every block when T <= 256) takes the plain path: one score
// block, the softmax normalized in place, one GEMM into the output.
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

constexpr index_t attention_query_block = 64;  ///< query rows per task (forward) and per step (backward)
constexpr index_t attention_key_tile = 256;    ///< keys per score tile: [64, 256] floats stay in L2

/// Keys of the tile [u0, u1) that query t sees: a prefix of the tile, possibly empty.
inline index_t visible_in_tile(const AttentionShape& s, index_t t, index_t u0, index_t u1) {
  const index_t end = std::min(s.visible_end(t), u1);
  return end > u0 ? end - u0 : 0;
}

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
  const index_t tile = std::min(detail::attention_key_tile, s.keys);
  const index_t rows_max = std::min(block, s.queries);
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
    T* S = scratch.data();                              // (rows, width) score tile, then weights
    T* o = out + (g * s.queries + t0) * C + h * D;      // (rows, D), row stride C
    if (keys <= tile) {  // one tile: the plain softmax, normalized in place, and one GEMM into out
      gemm(device, S, keys, Q, C, false, K, C, true, rows, keys, D, scale);
      for (index_t i = 0; i < rows; ++i) {
        T* p = S + i * keys;
        const index_t valid = s.visible_end(t0 + i);
        const T max = simd::max(p, valid);
        const T sum = simd::exp_shifted(p, p, max, valid);
        simd::scale(p, p, T(1) / sum, valid);
        std::fill(p + valid, p + keys, T(0));
        if (lse != nullptr) lse[(g * H + h) * s.queries + t0 + i] = max + std::log(sum);
      }
      gemm(device, o, C, S, keys, false, V, C, false, rows, D, keys);
      return;
    }
    T* acc = S + rows_max * tile;     // (rows, D) unnormalized output
    T* row_max = acc + rows_max * D;  // (rows) running max of the scores
    T* row_sum = row_max + rows_max;  // (rows) running Σ exp(score − max)
    for (index_t u0 = 0; u0 < keys; u0 += tile) {
      const index_t u1 = std::min(keys, u0 + tile), width = u1 - u0;
      const bool first = u0 == 0;  // every query sees key 0, so the first tile has a visible key in every row
      gemm(device, S, width, Q, C, false, K + u0 * C, C, true, rows, width, D, scale);
      for (index_t i = 0; i < rows; ++i) {
        T* p = S + i * width;
        const index_t valid = detail::visible_in_tile(s, t0 + i, u0, u1);
        if (valid > 0) {
          const T tile_max = simd::max(p, valid);
          const T max = first ? tile_max : std::max(row_max[i], tile_max);
          const T sum = simd::exp_shifted(p, p, max, valid);
          if (first) {
            row_sum[i] = sum;
          } else {
            const T correction = std::exp(row_max[i] - max);
            if (correction != T(1)) simd::scale(acc + i * D, acc + i * D, correction, D);
            row_sum[i] = row_sum[i] * correction + sum;
          }
          row_max[i] = max;
        }
        std::fill(p + valid, p + width, T(0));
      }
      gemm(device, acc, D, S, width, false, V + u0 * C, C, false, rows, D, width, T(1), first ? T(0) : T(1));
    }
    for (index_t i = 0; i < rows; ++i) {
      simd::scale(o + i * C, acc + i * D, T(1) / row_sum[i], D);
      if (lse != nullptr) lse[(g * H + h) * s.queries + t0 + i] = row_max[i] + std::log(row_sum[i]);
    }
  };
  detail::for_each_task<T>(tasks, detail::attention_parallel(tasks, s),
                           static_cast<std::size_t>(rows_max * (tile + D + 2)), run);
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
/// One task per (group, head) in parallel; within it, blocks of 64 queries walk their visible keys in
/// tiles of 256: each tile's probabilities are rebuilt from lse with one GEMM, and four GEMMs update
/// dq (accumulated over the tiles), dk and dv.
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
  const index_t tile = std::min(detail::attention_key_tile, s.keys);
  const index_t rows_max = std::min(block, s.queries);
  const std::size_t tile_size = static_cast<std::size_t>(rows_max * tile);
  const auto run = [&](index_t task, std::vector<T>& scratch) {
    T* const probs_data = scratch.data();               // (rows, width) probabilities P, then dS
    T* const dprobs_data = scratch.data() + tile_size;  // (rows, width) their gradient dP
    T* const delta = dprobs_data + tile_size;           // (rows) Δ = rowsum(dO ⊙ O)
    const index_t h = task % H, g = task / H;
    const index_t q_offset = g * s.queries * C + h * D, k_offset = g * s.keys * C + h * D;
    const T* row_lse = lse + (g * H + h) * s.queries;
    Out(dk + k_offset, s.keys, D, Stride(C)).setZero();
    Out(dv + k_offset, s.keys, D, Stride(C)).setZero();
    // Every matrix below has row stride C (one head's D columns of the [tokens, H*D] tensors) except
    // the tiles P, dP and dS, (rows, width) blocks of the scratch.
    for (index_t t0 = 0; t0 < s.queries; t0 += block) {
      const index_t t1 = std::min(s.queries, t0 + block), rows = t1 - t0, keys = s.visible_end(t1 - 1);
      const T *Q = q + q_offset + t0 * C, *dO = dout + q_offset + t0 * C;
      T* dQ = dq + q_offset + t0 * C;
      for (index_t i = 0; i < rows; ++i) delta[i] = simd::dot(dO + i * C, out + q_offset + (t0 + i) * C, D);
      for (index_t u0 = 0; u0 < keys; u0 += tile) {
        const index_t u1 = std::min(keys, u0 + tile), width = u1 - u0;
        const T *K = k + k_offset + u0 * C, *V = v + k_offset + u0 * C;
        T *dK = dk + k_offset + u0 * C, *dV = dv + k_offset + u0 * C;
        gemm(device, probs_data, width, Q, C, false, K, C, true, rows, width, D, scale);  // scale·Q·Kᵀ, then exp
        for (index_t i = 0; i < rows; ++i)
          detail::probabilities_from_lse(probs_data + i * width, row_lse[t0 + i],
                                         detail::visible_in_tile(s, t0 + i, u0, u1), width);
        gemm(device, dV, C, probs_data, width, true, dO, C, false, width, D, rows, T(1), T(1));  // dV += Pᵀ·dO
        gemm(device, dprobs_data, width, dO, C, false, V, C, true, rows, width, D);              // dP = dO·Vᵀ
        for (index_t i = 0; i < rows; ++i) {  // dS = P ⊙ (dP − Δ), scaled
          T* p = probs_data + i * width;
          const T* grad = dprobs_data + i * width;
          for (index_t j = 0; j < width; ++j) p[j] = p[j] * (grad[j] - delta[i]) * scale;
        }
        const T dq_beta = u0 == 0 ? T(0) : T(1);
        gemm(device, dQ, C, probs_data, width, false, K, C, false, rows, D, width, T(1), dq_beta);  // dQ (+)= dS·K
        gemm(device, dK, C, probs_data, width, true, Q, C, false, width, D, rows, T(1), T(1));      // dK += dSᵀ·Q
      }
    }
  };
  detail::for_each_task<T>(tasks, detail::attention_parallel(tasks, s),
                           2 * tile_size + static_cast<std::size_t>(rows_max), run);
}

}  // namespace tokenformer::kernels

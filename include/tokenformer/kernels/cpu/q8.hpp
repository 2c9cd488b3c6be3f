// tokenformer/kernels/cpu/q8.hpp: int8 weight matrices (Q8_0: a float scale per 32 values of a row)
// for inference on the CPU, and the two products a Pattention needs from them.
//
// The row kernels are the embedded model's (embedded/static_model.hpp: dot_q8_row, axpy_q8_row,
// quantize_q8), so the static model and LanguageModel's int8 decode (model/generation.hpp,
// WeightFormat::int8) run the same int8 arithmetic; here they are spread over OpenMP threads.
// Decoding reads every weight once per token, so at sizes where the weights do not fit in the caches
// int8 reads 3.55x fewer bytes than float (bench/bench_embedded.cpp measures it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/embedded/static_model.hpp"
#include "tokenformer/kernels/cpu/parallel.hpp"

namespace tokenformer::kernels {

/// A [rows, cols] row-major matrix of int8 values with one float scale per block of 32 values of a
/// row (value = scale · q), owned.
struct Q8Matrix {
  index_t rows = 0;                 ///< rows
  index_t cols = 0;                 ///< columns
  std::vector<std::int8_t> values;  ///< rows · cols
  std::vector<float> scales;        ///< rows · blocks()

  /// Scales per row: ceil(cols / 32).
  index_t blocks() const { return (cols + embedded::q8::block - 1) / embedded::q8::block; }
  /// Whether values and scales have the sizes rows and cols imply.
  bool consistent() const {
    return rows >= 0 && cols > 0 && values.size() == static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols) &&
           scales.size() == static_cast<std::size_t>(rows) * static_cast<std::size_t>(blocks());
  }
  /// Bytes of values and scales.
  std::size_t bytes() const { return values.size() + scales.size() * sizeof(float); }

  /// The Q8_0 quantization of a [rows, cols] float matrix (embedded::kernels::quantize_q8).
  static Q8Matrix quantize(const float* x, index_t rows, index_t cols) {
    if (rows < 0 || cols <= 0) throw argument_error("Q8Matrix needs rows >= 0 and cols > 0");
    for (index_t i = 0; i < rows * cols; ++i)
      if (!(x[i] - x[i] == 0.0f))
        throw numeric_error("Q8Matrix: a non-finite value at element " + std::to_string(i) + " cannot be quantized");
    Q8Matrix m;
    m.rows = rows;
    m.cols = cols;
    m.values.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols));
    m.scales.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(m.blocks()));
    embedded::kernels::quantize_q8(x, rows, cols, m.values.data(), m.scales.data());
    return m;
  }
};

/// out[M, N] (+)= X[M, K] · Bᵀ for an int8 B [N, K]: every output is a row dot product (rows of B
/// over threads).
inline void gemm_q8_transposed(const cpu&, float* out, index_t ldo, const float* X, index_t ldx, const Q8Matrix& B,
                               index_t M, bool accumulate) {
  const index_t N = B.rows, K = B.cols, blocks = B.blocks();
  detail::parallel_for(N, M * N * K > 32768, [&](index_t n) {
    const std::int8_t* q = B.values.data() + n * K;
    const float* s = B.scales.data() + n * blocks;
    for (index_t m = 0; m < M; ++m) {
      const float v = embedded::kernels::dot_q8_row(q, s, X + m * ldx, K);
      out[m * ldo + n] = accumulate ? out[m * ldo + n] + v : v;
    }
  });
}

/// out[M, N] (+)= W[M, K] · B for an int8 B [K, N]: each output row gathers Σ_k W[m, k] · B_k (blocks
/// of 32 columns over threads, so each thread reads its own slice of every row of B).
inline void gemm_q8(const cpu&, float* out, index_t ldo, const float* W, index_t ldw, const Q8Matrix& B, index_t M,
                    bool accumulate) {
  const index_t K = B.rows, N = B.cols, blocks = B.blocks(), block = embedded::q8::block;
  detail::parallel_for(blocks, M * N * K > 32768, [&](index_t j) {
    const index_t begin = j * block, count = N - begin < block ? N - begin : block;
    for (index_t m = 0; m < M; ++m) {
      float* y = out + m * ldo + begin;
      if (!accumulate)
        for (index_t i = 0; i < count; ++i) y[i] = 0.0f;
      const float* w = W + m * ldw;
      for (index_t k = 0; k < K; ++k)
        embedded::kernels::axpy_q8_row(w[k], B.values.data() + k * N + begin, B.scales.data() + k * blocks + j, y,
                                       count);
    }
  });
}

}  // namespace tokenformer::kernels

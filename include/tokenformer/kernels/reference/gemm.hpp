// tokenformer/kernels/reference/gemm.hpp: plain triple-loop GEMM, the specification of kernels::gemm.
#pragma once

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels::reference {

/// C = alpha · op(A) · op(B) + beta · C, all row-major with leading dimensions (row strides).
/// op(A) is [M, K]: A is stored [M, K] (lda >= K) or, if transpose_a, [K, M] (lda >= M).
/// op(B) is [K, N]: B is stored [K, N] (ldb >= N) or, if transpose_b, [N, K] (ldb >= K).
/// Accumulates in double. When beta == 0, C is not read (it may hold NaN).
template <class T>
void gemm(T* C, index_t ldc,                          // (M, N)
          const T* A, index_t lda, bool transpose_a,  // (M, K) or (K, M)
          const T* B, index_t ldb, bool transpose_b,  // (K, N) or (N, K)
          index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0)) {
  for (index_t i = 0; i < M; ++i) {
    for (index_t j = 0; j < N; ++j) {
      double sum = 0.0;
      for (index_t k = 0; k < K; ++k) {
        const double a = static_cast<double>(transpose_a ? A[k * lda + i] : A[i * lda + k]);
        const double b = static_cast<double>(transpose_b ? B[j * ldb + k] : B[k * ldb + j]);
        sum += a * b;
      }
      T& c = C[i * ldc + j];
      c = static_cast<T>(static_cast<double>(alpha) * sum + (beta == T(0) ? 0.0 : static_cast<double>(beta) * c));
    }
  }
}

}  // namespace tokenformer::kernels::reference

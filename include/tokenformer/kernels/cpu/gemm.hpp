// tokenformer/kernels/cpu/gemm.hpp: GEMM on the CPU through Eigen.
//
// Over the reference: Eigen's blocked, vectorized GEMM, multithreaded with OpenMP when called outside
// a parallel region. Define EIGEN_USE_BLAS (CMake option TOKENFORMER_USE_OPENBLAS) to route it to
// OpenBLAS instead. Products of a few rows (decoding with a KV cache: one row per sequence) are
// matrix-vector products that Eigen runs on one thread; they read all of B once, so they are bound by
// memory bandwidth, which one core does not saturate. Those are split by columns of C over the
// OpenMP team, each thread streaming its own slice of B.
#pragma once

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <algorithm>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/eigen.hpp"
#include "tokenformer/core/tensor.hpp"

namespace tokenformer::kernels {

/// C = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions; see reference::gemm for
/// the exact contract. When beta == 0, C is not read.
template <class T>
void gemm(const cpu&, T* C, index_t ldc,              // (M, N)
          const T* A, index_t lda, bool transpose_a,  // (M, K) or (K, M)
          const T* B, index_t ldb, bool transpose_b,  // (K, N) or (N, K)
          index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0));

namespace detail {

/// Rows of C at most this many (and B at least 2^18 values) take the column-split path.
constexpr index_t gemm_few_rows = 8;

/// Whether to split a product of few rows by columns over the OpenMP team (see the header comment).
inline bool gemm_split_columns(index_t M, index_t N, index_t K) {
#if TOKENFORMER_OPENMP
  return M <= gemm_few_rows && static_cast<double>(N) * static_cast<double>(K) >= double(1 << 18) &&
         omp_get_max_threads() > 1 && !omp_in_parallel();
#else
  (void)M, (void)N, (void)K;
  return false;
#endif
}

}  // namespace detail

template <class T>
void gemm(const cpu& device, T* C, index_t ldc,       // (M, N)
          const T* A, index_t lda, bool transpose_a,  // (M, K) or (K, M)
          const T* B, index_t ldb, bool transpose_b,  // (K, N) or (N, K)
          index_t M, index_t N, index_t K, T alpha, T beta) {
#if TOKENFORMER_OPENMP
  if (K > 0 && detail::gemm_split_columns(M, N, K)) {
#pragma omp parallel
    {
      const index_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const index_t chunk = ((N + threads - 1) / threads + 15) / 16 * 16;  // whole cache lines of C
      const index_t n0 = std::min(N, t * chunk), n1 = std::min(N, n0 + chunk);
      if (n1 > n0)  // inside the team, so this call runs on this thread alone
        gemm(device, C + n0, ldc, A, lda, transpose_a, transpose_b ? B + n0 * ldb : B + n0, ldb, transpose_b, M,
             n1 - n0, K, alpha, beta);
    }
    return;
  }
#endif
  using Stride = Eigen::OuterStride<>;
  using Out = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Stride>;
  using In = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Stride>;
  if (M == 0 || N == 0) return;
  Out c(C, M, N, Stride(ldc));
  if (K == 0) {
    if (beta == T(0))
      c.setZero();
    else
      c *= beta;
    return;
  }
  In a(A, transpose_a ? K : M, transpose_a ? M : K, Stride(lda));
  In b(B, transpose_b ? N : K, transpose_b ? K : N, Stride(ldb));
  if (beta == T(0)) {
    if (!transpose_a && !transpose_b)
      c.noalias() = alpha * a * b;
    else if (!transpose_a)
      c.noalias() = alpha * a * b.transpose();
    else if (!transpose_b)
      c.noalias() = alpha * a.transpose() * b;
    else
      c.noalias() = alpha * a.transpose() * b.transpose();
  } else {
    if (beta != T(1)) c *= beta;
    if (!transpose_a && !transpose_b)
      c.noalias() += alpha * a * b;
    else if (!transpose_a)
      c.noalias() += alpha * a * b.transpose();
    else if (!transpose_b)
      c.noalias() += alpha * a.transpose() * b;
    else
      c.noalias() += alpha * a.transpose() * b.transpose();
  }
}

/// `batch` independent GEMMs: C_i = alpha · op(A_i) · op(B_i) + beta · C_i with A_i = A + i·stride_a
/// (and likewise B_i, C_i); each as in gemm.
template <class T>
void gemm_strided_batched(const cpu& device, T* C, index_t ldc, index_t stride_c,       // (M, N) each
                          const T* A, index_t lda, index_t stride_a, bool transpose_a,  // (M, K) or (K, M)
                          const T* B, index_t ldb, index_t stride_b, bool transpose_b,  // (K, N) or (N, K)
                          index_t batch, index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0)) {
  if (batch < 0) throw shape_error("gemm_strided_batched: negative batch count");
  for (index_t i = 0; i < batch; ++i)
    gemm(device, C + i * stride_c, ldc, A + i * stride_a, lda, transpose_a, B + i * stride_b, ldb, transpose_b, M, N, K,
         alpha, beta);
}

}  // namespace tokenformer::kernels

// tokenformer/kernels/cpu/gemm.hpp: GEMM on the CPU through Eigen.
//
// Over the reference: Eigen's blocked, vectorized GEMM, multithreaded with OpenMP when called outside
// a parallel region. Define EIGEN_USE_BLAS (CMake option TOKENFORMER_USE_OPENBLAS) to route it to
// OpenBLAS instead.
#pragma once

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
          index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0)) {
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

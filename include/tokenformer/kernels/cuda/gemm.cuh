// tokenformer/kernels/cuda/gemm.cuh: GEMM and strided batched GEMM through cuBLAS.
//
// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS gets B before A and N
// before M. Float GEMMs run in the context's GemmPrecision (FP32, TF32 or BF16 inputs with FP32
// accumulation); double GEMMs always in FP64.
#pragma once

#include <type_traits>

#include "tokenformer/kernels/cuda/common.cuh"

namespace tokenformer::kernels {

namespace cuda_detail {

inline cublasComputeType_t compute_type(GemmPrecision precision) {
  switch (precision) {
    case GemmPrecision::tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case GemmPrecision::bf16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    case GemmPrecision::fp32: break;
  }
  return CUBLAS_COMPUTE_32F;
}

/// C = beta · C for an (M, N) matrix with leading dimension ldc (the K = 0 case).
template <class T>
__global__ void scale_matrix_kernel(T* C, index_t ldc, index_t M, index_t N, T beta) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < M * N; i += index_t(gridDim.x) * blockDim.x) {
    T& c = C[(i / N) * ldc + i % N];
    c = beta == T(0) ? T(0) : c * beta;
  }
}

template <class T>
void scale_matrix(const cuda& device, T* C, index_t ldc, index_t M, index_t N, T beta) {
  scale_matrix_kernel<<<blocks_for(M * N), block_threads, 0, device.stream()>>>(C, ldc, M, N, beta);
  check_launch("scale_matrix_kernel");
}

}  // namespace cuda_detail

/// C = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions; the contract of the CPU
/// gemm. When beta == 0, C is not read.
template <class T>
void gemm(const cuda& device, T* C, index_t ldc,      // (M, N)
          const T* A, index_t lda, bool transpose_a,  // (M, K) or (K, M)
          const T* B, index_t ldb, bool transpose_b,  // (K, N) or (N, K)
          index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0)) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "cuda gemm: float or double");
  if (M == 0 || N == 0) return;
  if (K == 0) return cuda_detail::scale_matrix(device, C, ldc, M, N, beta);
  using cuda_detail::blas_int;
  const cuda_context& context = device.context();
  const cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = blas_int(M, "M"), n = blas_int(N, "N"), k = blas_int(K, "K");
  const int la = blas_int(lda, "lda"), lb = blas_int(ldb, "ldb"), lc = blas_int(ldc, "ldc");
  if constexpr (std::is_same<T, double>::value) {
    TOKENFORMER_CUBLAS_CHECK(cublasDgemm(context.cublas(), op_b, op_a, n, m, k, &alpha, B, lb, A, la, &beta, C, lc));
  } else {
    TOKENFORMER_CUBLAS_CHECK(cublasGemmEx(context.cublas(), op_b, op_a, n, m, k, &alpha, B, CUDA_R_32F, lb, A,
                                          CUDA_R_32F, la, &beta, C, CUDA_R_32F, lc,
                                          cuda_detail::compute_type(context.gemm_precision()), CUBLAS_GEMM_DEFAULT));
  }
}

/// `batch` independent GEMMs at fixed strides; the contract of the CPU gemm_strided_batched.
template <class T>
void gemm_strided_batched(const cuda& device, T* C, index_t ldc, index_t stride_c,      // (M, N) each
                          const T* A, index_t lda, index_t stride_a, bool transpose_a,  // (M, K) or (K, M)
                          const T* B, index_t ldb, index_t stride_b, bool transpose_b,  // (K, N) or (N, K)
                          index_t batch, index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0)) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "cuda gemm: float or double");
  if (batch < 0) throw shape_error("gemm_strided_batched: negative batch count");
  if (batch == 0 || M == 0 || N == 0) return;
  if (K == 0) {
    for (index_t i = 0; i < batch; ++i) cuda_detail::scale_matrix(device, C + i * stride_c, ldc, M, N, beta);
    return;
  }
  using cuda_detail::blas_int;
  const cuda_context& context = device.context();
  const cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = blas_int(M, "M"), n = blas_int(N, "N"), k = blas_int(K, "K"), count = blas_int(batch, "batch");
  const int la = blas_int(lda, "lda"), lb = blas_int(ldb, "ldb"), lc = blas_int(ldc, "ldc");
  if constexpr (std::is_same<T, double>::value) {
    TOKENFORMER_CUBLAS_CHECK(cublasDgemmStridedBatched(context.cublas(), op_b, op_a, n, m, k, &alpha, B, lb, stride_b,
                                                       A, la, stride_a, &beta, C, lc, stride_c, count));
  } else {
    TOKENFORMER_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        context.cublas(), op_b, op_a, n, m, k, &alpha, B, CUDA_R_32F, lb, stride_b, A, CUDA_R_32F, la, stride_a, &beta,
        C, CUDA_R_32F, lc, stride_c, count, cuda_detail::compute_type(context.gemm_precision()), CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace tokenformer::kernels

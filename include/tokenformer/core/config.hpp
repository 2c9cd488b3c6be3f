// tokenformer/core/config.hpp: the one place for the library's macros and build switches.
//
// Every macro the library defines lives here and starts with TOKENFORMER_.
#pragma once

/// @file
/// The library's macros and build switches. The reference shows them as nvcc sees them; a host
/// compiler gets an empty TOKENFORMER_HOST_DEVICE, TOKENFORMER_CUDA_COMPILER 0 and no CUDA checks.

///@{
/// The library's version, major.minor.patch.
#define TOKENFORMER_VERSION_MAJOR 0
#define TOKENFORMER_VERSION_MINOR 1
#define TOKENFORMER_VERSION_PATCH 0
///@}

// Functions callable from both host and device code when compiled by nvcc.
#if defined(__CUDACC__)
/// Marks a function callable from host and device code: `__host__ __device__` under nvcc, else nothing.
#define TOKENFORMER_HOST_DEVICE __host__ __device__
/// 1 when the translation unit is compiled by nvcc (the cuda device and its kernels exist), else 0.
#define TOKENFORMER_CUDA_COMPILER 1
/// Throws tokenformer::cuda_error naming the call, the status and the place when a CUDA runtime call
/// fails (nvcc only; defined in core/cuda.cuh).
#define TOKENFORMER_CUDA_CHECK(call) ::tokenformer::detail::cuda_check((call), #call, __FILE__, __LINE__)
/// Throws tokenformer::cuda_error naming the call, the status and the place when a cuBLAS call fails
/// (nvcc only).
#define TOKENFORMER_CUBLAS_CHECK(call) ::tokenformer::detail::cublas_check((call), #call, __FILE__, __LINE__)
#else
#define TOKENFORMER_HOST_DEVICE
#define TOKENFORMER_CUDA_COMPILER 0
#endif

// OpenMP is optional: without it every parallel loop runs serially.
#if defined(_OPENMP)
/// 1 when compiled with OpenMP (the CPU kernels' parallel loops run in parallel), else 0.
#define TOKENFORMER_OPENMP 1
#else
#define TOKENFORMER_OPENMP 0
#endif

// The freestanding embedded model (embedded/static_model.hpp) uses xsimd where the target has a SIMD
// instruction set xsimd knows (SSE/AVX, NEON) and xsimd is installed; its portable scalar path
// elsewhere (Cortex-M) and wherever TOKENFORMER_EMBEDDED_SCALAR is defined (bit-identical results
// across targets).
#if !defined(TOKENFORMER_EMBEDDED_SCALAR) && (defined(__SSE2__) || defined(__ARM_NEON)) && defined(__has_include)
#if __has_include(<xsimd/xsimd.hpp>)
/// 1 where the embedded model's kernels use xsimd, 0 for its portable scalar path.
#define TOKENFORMER_EMBEDDED_SIMD 1
#endif
#endif
#if !defined(TOKENFORMER_EMBEDDED_SIMD)
/// 1 where the embedded model's kernels use xsimd, 0 for its portable scalar path.
#define TOKENFORMER_EMBEDDED_SIMD 0
#endif

#include <cstddef>

namespace tokenformer {

/// Signed index type for sizes and offsets, the same as Eigen::Index.
using index_t = std::ptrdiff_t;

}  // namespace tokenformer

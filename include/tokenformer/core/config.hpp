// tokenformer/core/config.hpp: the one place for the library's macros and build switches.
//
// Every macro the library defines lives here and starts with TOKENFORMER_.
#pragma once

#define TOKENFORMER_VERSION_MAJOR 0
#define TOKENFORMER_VERSION_MINOR 1
#define TOKENFORMER_VERSION_PATCH 0

// Functions callable from both host and device code when compiled by nvcc.
#if defined(__CUDACC__)
#define TOKENFORMER_HOST_DEVICE __host__ __device__
#define TOKENFORMER_CUDA_COMPILER 1
// Throw tokenformer::cuda_error naming the call when a CUDA runtime / cuBLAS call fails
// (defined in core/cuda.cuh).
#define TOKENFORMER_CUDA_CHECK(call) ::tokenformer::detail::cuda_check((call), #call, __FILE__, __LINE__)
#define TOKENFORMER_CUBLAS_CHECK(call) ::tokenformer::detail::cublas_check((call), #call, __FILE__, __LINE__)
#else
#define TOKENFORMER_HOST_DEVICE
#define TOKENFORMER_CUDA_COMPILER 0
#endif

// OpenMP is optional: without it every parallel loop runs serially.
#if defined(_OPENMP)
#define TOKENFORMER_OPENMP 1
#else
#define TOKENFORMER_OPENMP 0
#endif

#include <cstddef>

namespace tokenformer {

/// Signed index type for sizes and offsets, the same as Eigen::Index.
using index_t = std::ptrdiff_t;

}  // namespace tokenformer

# The CUDA device: TOKENFORMER_ENABLE_CUDA (on by default when nvcc is found) and the interface
# target tokenformer::cuda that .cu consumers link (tokenformer + cuBLAS + the CUDA runtime).
#
# The GPU architectures come from CMAKE_CUDA_ARCHITECTURES (default: 80;90, A100 and H100/H200).
include(CheckLanguage)
if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(ENV{CUDACXX} /usr/local/cuda/bin/nvcc)
endif()
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  set(tokenformer_cuda_default ON)
else()
  set(tokenformer_cuda_default OFF)
endif()
option(TOKENFORMER_ENABLE_CUDA "Build the CUDA device's tests, example and benchmarks (needs nvcc)"
       ${tokenformer_cuda_default})

if(TOKENFORMER_ENABLE_CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "TOKENFORMER_ENABLE_CUDA is on but no CUDA compiler was found: set CUDACXX or "
                        "CMAKE_CUDA_COMPILER to nvcc (for example /usr/local/cuda/bin/nvcc)")
  endif()
  # The CUDA language is needed only for our own .cu programs; a consumer project enables it itself.
  if(TOKENFORMER_BUILD_TESTS OR TOKENFORMER_BUILD_EXAMPLES OR TOKENFORMER_BUILD_BENCHMARKS)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90 CACHE STRING "GPU architectures to build for")
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  endif()
  find_package(CUDAToolkit REQUIRED)
  add_library(tokenformer_cuda INTERFACE)
  add_library(tokenformer::cuda ALIAS tokenformer_cuda)
  set_target_properties(tokenformer_cuda PROPERTIES EXPORT_NAME cuda)
  target_link_libraries(tokenformer_cuda INTERFACE tokenformer CUDA::cublas CUDA::cudart)
  # Eigen is used on the host only in .cu files; OpenMP for the CPU kernels compiled by nvcc's host compiler.
  target_compile_definitions(tokenformer_cuda INTERFACE EIGEN_NO_CUDA)
  target_compile_options(tokenformer_cuda INTERFACE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fopenmp>)
  message(STATUS "tokenformer: CUDA on (${CMAKE_CUDA_COMPILER}, architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "tokenformer: CUDA off (no nvcc found, or TOKENFORMER_ENABLE_CUDA=OFF)")
endif()

# Thrust's headers for compiling the Thrust algorithms with a host compiler against Thrust's CPP and
# OpenMP backends: the CUDA toolkit's where there is one, else Debian's libthrust-dev (Thrust 1.17).
find_path(TOKENFORMER_THRUST_INCLUDE_DIR thrust/version.h
          HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include PATH_SUFFIXES cccl)

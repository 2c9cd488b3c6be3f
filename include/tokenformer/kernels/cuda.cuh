// tokenformer/kernels/cuda.cuh: every CUDA kernel (nvcc only; kernels.hpp includes this under nvcc).
#pragma once

#include "tokenformer/core/cuda.cuh"
#include "tokenformer/kernels/cuda/adamw.cuh"
#include "tokenformer/kernels/cuda/attention.cuh"
#include "tokenformer/kernels/cuda/cross_entropy.cuh"
#include "tokenformer/kernels/cuda/elementwise.cuh"
#include "tokenformer/kernels/cuda/embedding.cuh"
#include "tokenformer/kernels/cuda/gemm.cuh"
#include "tokenformer/kernels/cuda/layer_norm.cuh"
#include "tokenformer/kernels/cuda/pattention_norm.cuh"
#include "tokenformer/kernels/cuda/rotary.cuh"

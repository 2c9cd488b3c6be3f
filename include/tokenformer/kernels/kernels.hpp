// tokenformer/kernels/kernels.hpp: the kernels of every device this translation unit can use (cpu,
// reference, and cuda under nvcc).
//
// Layers include this header and call `kernels::op(device, ...)`; overload resolution on the device
// tag picks the implementation. kernels/device_contract.hpp lists the entry points every device
// provides and checks them at compile time. The CUDA kernels join when the translation unit is compiled by nvcc.
#pragma once

#include "tokenformer/core/config.hpp"
#include "tokenformer/kernels/cpu.hpp"
#include "tokenformer/kernels/reference/device.hpp"
#if TOKENFORMER_CUDA_COMPILER
#include "tokenformer/kernels/cuda.cuh"
#endif
// Last: the contract's checks see every device's kernels.
#include "tokenformer/kernels/device_contract.hpp"

/// @namespace tokenformer::kernels
/// The math, as free functions overloaded on the device tag (`kernels::gemm(cpu{}, ...)`): outputs
/// first, inputs next, sizes last, each a forward/backward pair. device_contract.hpp lists them.

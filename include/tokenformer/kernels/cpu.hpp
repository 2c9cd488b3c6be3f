// tokenformer/kernels/cpu.hpp: every CPU kernel.
#pragma once

#include "tokenformer/kernels/cpu/adamw.hpp"
#include "tokenformer/kernels/cpu/attention.hpp"
#include "tokenformer/kernels/cpu/cross_entropy.hpp"
#include "tokenformer/kernels/cpu/elementwise.hpp"
#include "tokenformer/kernels/cpu/embedding.hpp"
#include "tokenformer/kernels/cpu/gemm.hpp"
#include "tokenformer/kernels/cpu/layer_norm.hpp"
#include "tokenformer/kernels/cpu/pattention_norm.hpp"
#include "tokenformer/kernels/cpu/q8.hpp"
#include "tokenformer/kernels/cpu/rotary.hpp"

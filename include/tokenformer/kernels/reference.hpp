// tokenformer/kernels/reference.hpp: every plain reference kernel (the specification and test oracle).
#pragma once

#include "tokenformer/kernels/reference/adamw.hpp"
#include "tokenformer/kernels/reference/attention.hpp"
#include "tokenformer/kernels/reference/cross_entropy.hpp"
#include "tokenformer/kernels/reference/device.hpp"
#include "tokenformer/kernels/reference/embedding.hpp"
#include "tokenformer/kernels/reference/gemm.hpp"
#include "tokenformer/kernels/reference/layer_norm.hpp"
#include "tokenformer/kernels/reference/pattention_norm.hpp"
#include "tokenformer/kernels/reference/rotary.hpp"

/// @namespace tokenformer::kernels::reference
/// Plain reference kernels that accumulate in double: the specification and test oracle of every
/// optimized kernel, and the kernels of the `reference` device.

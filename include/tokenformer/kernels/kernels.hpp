// tokenformer/kernels/kernels.hpp: the kernels of every device this translation unit can use.
//
// Layers include this header and call `kernels::op(device, ...)`; overload resolution on the device
// tag picks the implementation.
#pragma once

#include "tokenformer/core/config.hpp"
#include "tokenformer/kernels/cpu.hpp"

// tokenformer/core/precision.hpp: the arithmetic precision of a model's matrix products.
//
//   fp32  float operands, float accumulation.
//   bf16  mixed precision: the operands of every float GEMM rounded to bfloat16 (8 significant bits),
//         the products accumulated in float; parameters, optimizer state, normalizations, softmax and
//         the loss stay float (kernels::gemm on the CPU; TrainerOptions::precision).
#pragma once

#include <string>

#include "tokenformer/core/error.hpp"

namespace tokenformer {

/// The precision of matrix products (see the header comment).
enum class Precision : int { fp32, bf16 };

/// "fp32" or "bf16".
inline const char* to_string(Precision precision) noexcept {
  switch (precision) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
  }
  return "unknown";
}

/// The precision called `name` ("fp32" or "bf16"); config_error naming both otherwise.
inline Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw config_error("unknown precision '" + name + "' (expected fp32 or bf16)");
}

/// Throws config_error unless `precision` is one of the enum's values (e.g. a cast from a bad int).
inline void check_precision(Precision precision) {
  if (precision != Precision::fp32 && precision != Precision::bf16)
    throw config_error("unknown precision value " + std::to_string(static_cast<int>(precision)));
}

}  // namespace tokenformer

// tokenformer/core/normalization_kind.hpp: the names of the modified softmax Θ of Pattention, and
// nothing else: no strings, no exceptions, so that the freestanding embedded model
// (embedded/static_model.hpp) shares the enum with the rest of the library. The functions that name,
// parse and check a Normalization are in core/normalization.hpp.
#pragma once

namespace tokenformer {

/// The modified softmax Θ of Pattention, applied to each row of scores s = X·K_Pᵀ with n tokens.
enum class Normalization {
  l2_norm_gelu,  ///< gelu(s / ||s||₂ · √n): the official default.
  gelu_l2_norm,  ///< g / ||g||₂ · √n with g = gelu(s).
  softmax,       ///< exp(s) / Σexp(s) · n.
};

/// Every normalization, in enum order: the one list tests and tools iterate over.
inline constexpr Normalization all_normalizations[] = {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm,
                                                       Normalization::softmax};

}  // namespace tokenformer

// tokenformer/core/normalization.hpp: the modified softmax Θ of Pattention, by name.
//
// Only concrete normalizations exist: a static config leaves the choice to run time with
// `static constexpr std::optional<Normalization> normalization = std::nullopt` (core/presets.hpp), so
// no kernel ever sees a placeholder. A value outside the enum (a cast from a bad integer) is refused
// with config_error by check_normalization, which every entry point taking a Normalization calls.
#pragma once

#include <string>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/normalization_kind.hpp"

namespace tokenformer {

/// The official name of a normalization (`norm_activation_type` in the official configs).
inline const char* to_string(Normalization kind) {
  switch (kind) {
    case Normalization::l2_norm_gelu: return "l2_norm_gelu";
    case Normalization::gelu_l2_norm: return "gelu_l2_norm";
    case Normalization::softmax: return "softmax";
  }
  return "unknown";
}

/// Throws config_error naming `who` unless `kind` is one of the enum's values.
inline void check_normalization(Normalization kind, const char* who) {
  switch (kind) {
    case Normalization::l2_norm_gelu:
    case Normalization::gelu_l2_norm:
    case Normalization::softmax: return;
  }
  throw config_error(std::string(who) + ": unknown normalization value " + std::to_string(static_cast<int>(kind)));
}

/// Parses an official normalization name; throws config_error naming the accepted values.
inline Normalization parse_normalization(const std::string& name) {
  for (Normalization kind : all_normalizations)
    if (name == to_string(kind)) return kind;
  throw config_error("unknown norm_activation_type '" + name + "' (expected l2_norm_gelu, gelu_l2_norm or softmax)");
}

}  // namespace tokenformer

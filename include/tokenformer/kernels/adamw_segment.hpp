// tokenformer/kernels/adamw_segment.hpp: one parameter's share of a fused AdamW step.
#pragma once

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels {

/// n elements of a parameter (p), its AdamW moments (m, v) and its gradient (g), all on one device,
/// updated with the given decoupled weight decay (0 for none).
template <class T>
struct AdamWSegment {
  T* p;                 ///< the parameter's elements, updated in place
  T* m;                 ///< AdamW's first moment, updated in place
  T* v;                 ///< AdamW's second moment, updated in place
  const T* g;           ///< the gradient
  index_t n;            ///< number of elements of each array
  double weight_decay;  ///< decoupled weight decay (0: none)
};

}  // namespace tokenformer::kernels

// tokenformer/kernels/adamw_segment.hpp: one parameter's share of a fused AdamW step.
#pragma once

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels {

/// n elements of a parameter (p), its AdamW moments (m, v) and its gradient (g), all on one device,
/// updated with the given decoupled weight decay (0 for none).
template <class T>
struct AdamWSegment {
  T* p;
  T* m;
  T* v;
  const T* g;
  index_t n;
  double weight_decay;
};

}  // namespace tokenformer::kernels

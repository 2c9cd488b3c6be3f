// tokenformer/kernels/cpu/parallel.hpp: the one OpenMP loop helper of the CPU kernels.
//
// `#pragma omp parallel for if (small)` still opens a one-thread team when the condition is false,
// and libgomp allocates and frees that team on every call; a decode step of generation runs dozens
// of small kernels, so it would allocate dozens of times. parallel_for branches instead: a team
// only for work worth one, otherwise a plain loop on the calling thread.
#pragma once

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels::detail {

/// body(i) for i in [0, n): statically scheduled over an OpenMP team when `parallel`, else serially.
template <class Body>
void parallel_for(index_t n, bool parallel, const Body& body) {
#if TOKENFORMER_OPENMP
  if (parallel) {
#pragma omp parallel for schedule(static)
    for (index_t i = 0; i < n; ++i) body(i);
    return;
  }
#else
  (void)parallel;
#endif
  for (index_t i = 0; i < n; ++i) body(i);
}

}  // namespace tokenformer::kernels::detail

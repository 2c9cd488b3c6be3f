// tokenformer/kernels/cpu/embedding.hpp: embedding lookup on the CPU.
//
// Over the reference: one memcpy per row, rows in parallel with OpenMP.
#pragma once

#include <cstdint>
#include <cstring>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"

namespace tokenformer::kernels {

/// out[i] = table[tokens[i]]; same contract as reference::embedding_forward.
template <class T>
void embedding_forward(const cpu&, T* out,          // (N, C)
                       const std::int32_t* tokens,  // (N)
                       const T* table,              // (V, C)
                       index_t N, index_t C) {
#if TOKENFORMER_OPENMP
#pragma omp parallel for schedule(static) if (N * C > 65536)
#endif
  for (index_t i = 0; i < N; ++i)
    std::memcpy(out + i * C, table + static_cast<index_t>(tokens[i]) * C, static_cast<std::size_t>(C) * sizeof(T));
}

}  // namespace tokenformer::kernels

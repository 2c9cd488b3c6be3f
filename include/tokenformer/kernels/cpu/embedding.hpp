// tokenformer/kernels/cpu/embedding.hpp: embedding lookup on the CPU.
//
// Over the reference: one memcpy per row, rows in parallel with OpenMP.
#pragma once

#include <cstdint>
#include <cstring>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/kernels/cpu/parallel.hpp"

namespace tokenformer::kernels {

/// out[i] = table[tokens[i]]; same contract as reference::embedding_forward.
template <class T>
void embedding_forward(const cpu&, T* out,          // (N, C)
                       const std::int32_t* tokens,  // (N)
                       const T* table,              // (V, C)
                       index_t N, index_t C) {
  detail::parallel_for(N, N * C > 65536, [&](index_t i) {
    std::memcpy(out + i * C, table + static_cast<index_t>(tokens[i]) * C, static_cast<std::size_t>(C) * sizeof(T));
  });
}

/// Gradient of embedding_forward: d_table[tokens[i]] += dout[i]; same contract as
/// reference::embedding_backward. Serial: rows sharing a token would race.
template <class T>
void embedding_backward(const cpu&, T* d_table,      // (V, C)
                        const T* dout,               // (N, C)
                        const std::int32_t* tokens,  // (N)
                        index_t N, index_t C) {
  for (index_t i = 0; i < N; ++i) {
    T* row = d_table + static_cast<index_t>(tokens[i]) * C;
    const T* g = dout + i * C;
    for (index_t c = 0; c < C; ++c) row[c] += g[c];
  }
}

}  // namespace tokenformer::kernels

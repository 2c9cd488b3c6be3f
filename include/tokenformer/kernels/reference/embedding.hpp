// tokenformer/kernels/reference/embedding.hpp: plain embedding lookup, the specification of
// kernels::embedding_forward.
#pragma once

#include <cstdint>

#include "tokenformer/core/config.hpp"

namespace tokenformer::kernels::reference {

/// out[i] = table[tokens[i]]. Token ids must be in [0, V) (checked by the caller).
template <class T>
void embedding_forward(T* out,                      // (N, C)
                       const std::int32_t* tokens,  // (N)
                       const T* table,              // (V, C)
                       index_t N, index_t C) {
  for (index_t i = 0; i < N; ++i)
    for (index_t c = 0; c < C; ++c) out[i * C + c] = table[static_cast<index_t>(tokens[i]) * C + c];
}

/// Gradient of embedding_forward: d_table[tokens[i]] += dout[i] (accumulates into d_table).
template <class T>
void embedding_backward(T* d_table,                  // (V, C)
                        const T* dout,               // (N, C)
                        const std::int32_t* tokens,  // (N)
                        index_t N, index_t C) {
  for (index_t i = 0; i < N; ++i)
    for (index_t c = 0; c < C; ++c) d_table[static_cast<index_t>(tokens[i]) * C + c] += dout[i * C + c];
}

}  // namespace tokenformer::kernels::reference

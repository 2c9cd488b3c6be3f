// The attention shapes every device's attention kernels are tested on (forward against the
// reference, backward against the reference, float64 gradient checks): causal, end-aligned causal
// cross-attention, bidirectional self- and cross-attention (also with more queries than keys),
// block-causal self-attention (FIT's latents) and block-causal cross-attention (tokens reading
// latents), with odd lengths, lengths that are not a multiple of any tile, and several groups.
#pragma once

#include <vector>

#include "tokenformer/kernels/attention_shape.hpp"

namespace test_util {

using tokenformer::index_t;
using tokenformer::kernels::AttentionMask;
using tokenformer::kernels::AttentionShape;

inline AttentionShape attention_case(index_t batch, index_t queries, index_t keys, index_t heads, index_t head_dim,
                                     AttentionMask mask, index_t query_block = 1, index_t key_block = 1) {
  return AttentionShape{batch, queries, keys, heads, head_dim, mask, query_block, key_block};
}

/// Shapes for forward/backward comparisons (up to a few hundred rows).
inline std::vector<AttentionShape> attention_cases() {
  using M = AttentionMask;
  return {
      attention_case(1, 1, 1, 1, 1, M::causal),                    // one position
      attention_case(2, 5, 5, 3, 4, M::causal),                    //
      attention_case(1, 64, 64, 2, 8, M::causal),                  // one query block
      attention_case(2, 65, 65, 2, 16, M::causal),                 // one row past it
      attention_case(1, 150, 150, 3, 12, M::causal),               //
      attention_case(2, 7, 19, 2, 4, M::causal),                   // cross, end-aligned
      attention_case(1, 70, 135, 1, 8, M::causal),                 // cross over more than one tile
      attention_case(3, 9, 9, 2, 4, M::none),                      // bidirectional
      attention_case(1, 130, 130, 1, 8, M::none),                  //
      attention_case(2, 5, 33, 2, 4, M::none),                     // cross
      attention_case(1, 100, 3, 2, 5, M::none),                    // more queries than keys
      attention_case(2, 12, 12, 2, 4, M::block_causal, 4, 4),      // latents: 3 groups of 4
      attention_case(1, 111, 111, 1, 6, M::block_causal, 37, 37),  // blocks across tiles
      attention_case(2, 80, 10, 2, 4, M::block_causal, 16, 2),     // 5 groups of 16 tokens read 2 latents each
      attention_case(1, 70, 9, 1, 3, M::block_causal, 13, 2),      // partial last block, keys run out
      attention_case(7, 16, 16, 2, 8, M::causal),                  // many groups (FIT's local layers)
      // Over the CPU kernel's key tiles of 256: several tiles, a partial last one, masks ending inside
      // a tile, query blocks that skip whole tiles.
      attention_case(1, 300, 300, 2, 4, M::causal),                  // 2 tiles, diagonal crosses the boundary
      attention_case(2, 70, 600, 1, 4, M::causal),                   // end-aligned: 3 tiles, the last partial
      attention_case(1, 20, 530, 2, 3, M::none),                     // 3 tiles seen in full by every query
      attention_case(1, 300, 300, 1, 5, M::block_causal, 100, 100),  // blocks of 100 across tiles
      attention_case(1, 130, 520, 1, 3, M::block_causal, 26, 104),   // 5 groups read 104 keys each
      attention_case(2, 300, 300, 4, 16, M::causal),                 // enough work for the OpenMP team
  };
}

/// Small shapes for float64 finite-difference checks (one of each kind, some over a 64-query block).
inline std::vector<AttentionShape> attention_gradcheck_cases() {
  using M = AttentionMask;
  return {
      attention_case(1, 1, 1, 1, 2, M::causal),
      attention_case(2, 5, 5, 2, 4, M::causal),
      attention_case(1, 70, 70, 1, 3, M::causal),
      attention_case(2, 4, 9, 1, 3, M::causal),
      attention_case(2, 5, 7, 2, 3, M::none),
      attention_case(1, 6, 2, 1, 3, M::none),
      attention_case(1, 9, 9, 1, 3, M::block_causal, 3, 3),
      attention_case(1, 67, 9, 1, 2, M::block_causal, 16, 2),
      attention_case(1, 3, 300, 1, 2, M::causal),                // end-aligned over two key tiles of 256
      attention_case(1, 2, 260, 1, 2, M::block_causal, 1, 200),  // the second query's keys cross a tile
  };
}

}  // namespace test_util

// tokenformer/kernels/attention_shape.hpp: what one attention call computes, shared by the reference,
// CPU and CUDA kernels.
//
// An attention call runs `batch` independent groups (sequences, or FIT's groups of tokens) at once.
// Each group has `queries` query rows and `keys` key/value rows; every row holds `heads` heads of
// `head_dim` values. Tensors are row-major with head h in columns [h*D, (h+1)*D):
//   q, out  [batch * queries, heads * head_dim]
//   k, v    [batch * keys,    heads * head_dim]
//   lse     [batch, heads, queries]   (log Σ_u exp(score) of each row, the softmax statistic)
//
// Every mask is a prefix mask: query t sees keys [0, visible_end(t)), a count that never decreases
// with t and is at least 1. That is what lets the tiled kernels skip whole tiles.
//   none          every key (bidirectional attention, cross-attention)
//   causal        keys u <= t + keys - queries (end-aligned: with keys == queries the usual causal
//                 mask; with more keys, the last `queries` positions of a longer sequence, as when
//                 decoding with a KV cache). Needs keys >= queries.
//   block_causal  queries in blocks of `query_block`, keys in blocks of `key_block`; query block i
//                 sees key blocks 0..i in full (FIT's latents: full attention within a group's
//                 latents, causal across groups).
#pragma once

#include <string>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/error.hpp"

namespace tokenformer::kernels {

/// T in a non-deduced context: lets a caller pass nullptr for an optional T* (the lse output).
template <class T>
struct type_identity {
  using type = T;  ///< T itself
};
/// T, not deduced from the argument it types (see type_identity).
template <class T>
using non_deduced = typename type_identity<T>::type;

/// Which keys each query sees (prefix masks; see the header's comment): every key, end-aligned causal,
/// or block-causal.
enum class AttentionMask : int { none, causal, block_causal };

/// The mask's name: "none", "causal" or "block_causal".
inline const char* to_string(AttentionMask mask) {
  switch (mask) {
    case AttentionMask::none: return "none";
    case AttentionMask::causal: return "causal";
    case AttentionMask::block_causal: return "block_causal";
  }
  return "unknown";
}

/// The sizes and mask of one attention call: `batch` groups of `queries` query rows and `keys` key/value
/// rows, each row `heads` heads of `head_dim` values. check_attention_shape() validates one.
struct AttentionShape {
  index_t batch = 1;                           ///< independent groups in the call
  index_t queries = 0;                         ///< query rows per group (Tq)
  index_t keys = 0;                            ///< key/value rows per group (Tk)
  index_t heads = 1;                           ///< attention heads (H)
  index_t head_dim = 1;                        ///< values per head (D)
  AttentionMask mask = AttentionMask::causal;  ///< which keys each query sees
  index_t query_block = 1;                     ///< block_causal only: queries per block
  index_t key_block = 1;                       ///< block_causal only: keys per block

  /// Causal self-attention over `batch` sequences of `length` positions.
  static AttentionShape causal(index_t batch, index_t length, index_t heads, index_t head_dim) {
    return {batch, length, length, heads, head_dim, AttentionMask::causal, 1, 1};
  }

  /// Keys [0, visible_end(t)) are visible to query t (0 <= t < queries).
  TOKENFORMER_HOST_DEVICE index_t visible_end(index_t t) const {
    index_t end = keys;
    if (mask == AttentionMask::causal) end = t + 1 + keys - queries;
    if (mask == AttentionMask::block_causal) {
      const index_t blocks = t / query_block + 1;  // written to avoid overflow for huge blocks
      end = blocks > keys / key_block ? keys : blocks * key_block;
    }
    return end < keys ? end : keys;
  }
  /// The first query that sees key u (0 <= u < keys): queries before it see no key >= u.
  TOKENFORMER_HOST_DEVICE index_t first_query(index_t u) const {
    index_t first = 0;
    if (mask == AttentionMask::causal) first = u - keys + queries;
    if (mask == AttentionMask::block_causal) {
      const index_t block = u / key_block;
      first = block > queries / query_block ? queries : block * query_block;
    }
    return first > 0 ? first : 0;
  }

  index_t query_rows() const { return batch * queries; }        ///< rows of q and out: batch · Tq
  index_t key_rows() const { return batch * keys; }             ///< rows of k and v: batch · Tk
  index_t width() const { return heads * head_dim; }            ///< columns of q, k, v and out: H · D
  index_t lse_size() const { return batch * heads * queries; }  ///< elements of lse: batch · H · Tq

  /// The sizes and mask in words, for error messages.
  std::string describe() const {
    std::string s = "batch " + std::to_string(batch) + ", queries " + std::to_string(queries) + ", keys " +
                    std::to_string(keys) + ", heads " + std::to_string(heads) + ", head_dim " +
                    std::to_string(head_dim) + ", mask " + to_string(mask);
    if (mask == AttentionMask::block_causal)
      s += " (query_block " + std::to_string(query_block) + ", key_block " + std::to_string(key_block) + ")";
    return s;
  }
};

/// Throws shape_error (or config_error for an unknown mask) unless `s` describes a computable call:
/// non-negative sizes that do not overflow, head_dim >= 1, keys >= 1 when there are queries, keys >=
/// queries for the causal mask, positive blocks for block_causal.
inline void check_attention_shape(const AttentionShape& s) {
  const auto fail = [&](const std::string& why) { throw shape_error("attention (" + s.describe() + "): " + why); };
  if (s.mask != AttentionMask::none && s.mask != AttentionMask::causal && s.mask != AttentionMask::block_causal)
    throw config_error("attention: unknown mask value " + std::to_string(static_cast<int>(s.mask)));
  if (s.batch < 0 || s.queries < 0 || s.keys < 0 || s.heads < 0) fail("sizes must not be negative");
  if (s.head_dim < 1) fail("head_dim must be at least 1");
  constexpr index_t limit = index_t(1) << 40;  // keeps every product below 2^63 for the checks below
  for (index_t v : {s.batch, s.queries, s.keys, s.heads, s.head_dim})
    if (v > limit) fail("a size exceeds 2^40");
  if (s.heads * s.head_dim > limit || (s.queries > 0 && s.batch > limit / s.queries) ||
      (s.keys > 0 && s.batch > limit / s.keys))
    fail("the tensors' sizes overflow");
  const index_t width = s.heads * s.head_dim;
  if ((width > 0 && s.batch * s.queries > limit / width) || (width > 0 && s.batch * s.keys > limit / width))
    fail("the tensors' sizes overflow");
  if (s.batch * s.queries * s.heads > 0 && s.keys == 0) fail("queries need at least one key");
  if (s.mask == AttentionMask::causal && s.keys < s.queries) fail("the causal mask needs keys >= queries");
  if (s.mask == AttentionMask::block_causal && (s.query_block < 1 || s.key_block < 1))
    fail("block_causal needs query_block >= 1 and key_block >= 1");
}

}  // namespace tokenformer::kernels

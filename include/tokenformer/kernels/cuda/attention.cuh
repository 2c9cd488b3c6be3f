// tokenformer/kernels/cuda/attention.cuh: multi-head attention on the GPU with every mask of
// kernels/attention_shape.hpp, flash-attention style: tiled, with an online softmax, and no [Tq, Tk]
// matrix in global memory. Tiles wholly outside the (prefix) mask are skipped.
//
// A thread block owns a tile of BLOCK positions of one (sequence, head); eight threads own each row
// of the tile (a query in the forward and dQ kernels, a key in the dK/dV kernel), so a row's
// softmax statistics and its output accumulators stay in those threads' registers and need only
// warp shuffles. Tiles of Q, K, V (and dO) are staged in shared memory, padded by one element
// per row against bank conflicts. A thread computes its BLOCK/8 dot products of a tile together,
// so each element of its group's row is loaded once for all of them. (A variant that kept each group's row in registers
// and finished the dot products with a warp-shuffle reduce-scatter measured 1.5x slower on an H200.)
//
// The backward takes the forward's output and log-sum-exp per row, computes Δ = rowsum(dO ⊙ O), then
// runs a dK/dV kernel over key tiles and a dQ kernel over query tiles; neither needs atomics.
#pragma once

#include "tokenformer/kernels/attention_shape.hpp"
#include "tokenformer/kernels/cuda/common.cuh"

namespace tokenformer::kernels {

namespace cuda_detail {

/// Rows per tile: 32 for float, 16 for double (shared memory).
template <class T>
constexpr int attention_block = sizeof(T) == 8 ? 16 : 32;

/// Loads rows [t0, t0 + BLOCK) of one head of x (row stride C) into tile (row stride ld), times
/// `factor`, with zeros past the sequence end.
template <class T, int BLOCK>
__device__ inline void load_tile(T* tile, int ld, const T* x, index_t t0, index_t T_len, index_t C, int D, T factor) {
  for (int i = threadIdx.x; i < BLOCK * D; i += blockDim.x) {
    const int row = i / D, d = i % D;
    const index_t t = t0 + row;
    tile[row * ld + d] = t < T_len ? x[t * C + d] * factor : T(0);
  }
}

template <class T>
__device__ inline T group_max(T v) {
  for (int offset = 4; offset > 0; offset >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
template <class T>
__device__ inline T group_sum(T v) {
  for (int offset = 4; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

/// s[j] = a · (row lane + 8j of `rows`), j < KPT: each element of a is loaded once for all j.
template <class T, int KPT>
__device__ inline void dots_with_rows(T (&s)[KPT], const T* a, const T* rows, int ld, int lane, int D) {
#pragma unroll
  for (int j = 0; j < KPT; ++j) s[j] = T(0);
  for (int d = 0; d < D; ++d) {
    const T x = a[d];
#pragma unroll
    for (int j = 0; j < KPT; ++j) s[j] += x * rows[(lane + 8 * j) * ld + d];
  }
}
/// dots_with_rows for two pairs at once: s[j] = a · a_rows[lane + 8j], t[j] = b · b_rows[lane + 8j].
template <class T, int KPT>
__device__ inline void two_dots_with_rows(T (&s)[KPT], T (&t)[KPT], const T* a, const T* a_rows, const T* b,
                                          const T* b_rows, int ld, int lane, int D) {
#pragma unroll
  for (int j = 0; j < KPT; ++j) s[j] = t[j] = T(0);
  for (int d = 0; d < D; ++d) {
    const T x = a[d], y = b[d];
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      s[j] += x * a_rows[(lane + 8 * j) * ld + d];
      t[j] += y * b_rows[(lane + 8 * j) * ld + d];
    }
  }
}

/// Key tiles that query tile `tile` needs: those holding keys below the visible end of its last row.
template <int BLOCK>
__device__ inline int key_tiles_for(const AttentionShape& s, int tile) {
  const index_t last = min(index_t(tile + 1) * BLOCK, s.queries) - 1;
  return static_cast<int>((s.visible_end(last) + BLOCK - 1) / BLOCK);
}

/// out = softmax(scale · Q Kᵀ + mask) V; lse (batch, H, Tq) = log Σ exp of each score row (optional).
template <class T, int BLOCK, int MAXD>
__global__ void __launch_bounds__(BLOCK * 8)
    attention_forward_kernel(T* out, T* lse, const T* q, const T* k, const T* v, AttentionShape s, T scale) {
  constexpr int KPT = BLOCK / 8, CPT = MAXD / 8, PLD = BLOCK + 1;
  extern __shared__ __align__(16) unsigned char attention_smem[];
  const int D = static_cast<int>(s.head_dim), ld = D + 1;
  T* Qs = reinterpret_cast<T*>(attention_smem);  // BLOCK x ld
  T* Ks = Qs + BLOCK * ld;                       // BLOCK x ld
  T* Vs = Ks + BLOCK * ld;                       // BLOCK x ld
  T* Ps = Vs + BLOCK * ld;                       // BLOCK x BLOCK
  const int tile = blockIdx.x, h = blockIdx.y, H = static_cast<int>(s.heads);
  const index_t g = blockIdx.z, C = s.heads * D;
  const int r = threadIdx.x / 8, lane = threadIdx.x % 8;
  const index_t t0 = index_t(tile) * BLOCK, tq = t0 + r;
  const index_t q_head = g * s.queries * C + index_t(h) * D, k_head = g * s.keys * C + index_t(h) * D;
  const index_t row_end = tq < s.queries ? s.visible_end(tq) : 0;  // padding rows see no key
  load_tile<T, BLOCK>(Qs, ld, q + q_head, t0, s.queries, C, D, scale);
  T acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; ++c) acc[c] = T(0);
  T m = T(-INFINITY), l = T(0);
  const int key_tiles = key_tiles_for<BLOCK>(s, tile);
  for (int kt = 0; kt < key_tiles; ++kt) {
    __syncthreads();  // the previous tile is no longer read
    load_tile<T, BLOCK>(Ks, ld, k + k_head, index_t(kt) * BLOCK, s.keys, C, D, T(1));
    load_tile<T, BLOCK>(Vs, ld, v + k_head, index_t(kt) * BLOCK, s.keys, C, D, T(1));
    __syncthreads();
    T sc[KPT];
    dots_with_rows(sc, Qs + r * ld, Ks, ld, lane, D);
    T tile_max = T(-INFINITY);
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      const index_t tk = index_t(kt) * BLOCK + lane + 8 * j;
      if (!(tk < row_end)) sc[j] = T(-INFINITY);
      tile_max = max(tile_max, sc[j]);
    }
    tile_max = group_max(tile_max);
    const T m_new = max(m, tile_max);
    const T correction = m == T(-INFINITY) ? T(0) : exp_(m - m_new);
    T p_sum = T(0);
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      const T p = sc[j] == T(-INFINITY) ? T(0) : exp_(sc[j] - m_new);
      Ps[r * PLD + lane + 8 * j] = p;
      p_sum += p;
    }
    l = l * correction + group_sum(p_sum);
    m = m_new;
#pragma unroll
    for (int c = 0; c < CPT; ++c) acc[c] *= correction;
    __syncwarp();  // the row's probabilities, written by its eight threads, are visible to all of them
    for (int key = 0; key < BLOCK; ++key) {
      const T p = Ps[r * PLD + key];
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        const int d = lane + 8 * c;
        if (d < D) acc[c] += p * Vs[key * ld + d];
      }
    }
  }
  if (tq >= s.queries) return;
  const T inv = T(1) / l;
#pragma unroll
  for (int c = 0; c < CPT; ++c) {
    const int d = lane + 8 * c;
    if (d < D) out[q_head + tq * C + d] = acc[c] * inv;
  }
  if (lse != nullptr && lane == 0) lse[(g * H + h) * s.queries + tq] = m + log_(l);
}

/// delta (batch, H, Tq) = Σ_d dout · out over each head's row.
template <class T>
__global__ void attention_delta_kernel(T* delta, const T* dout, const T* out, index_t batch, index_t T_len, int H,
                                       int D) {
  const index_t C = index_t(H) * D, total = batch * T_len * H;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < total; i += index_t(gridDim.x) * blockDim.x) {
    const index_t h = i % H, row = i / H, b = row / T_len, t = row % T_len;
    const T* a = dout + row * C + h * D;
    const T* o = out + row * C + h * D;
    T s = T(0);
    for (int d = 0; d < D; ++d) s += a[d] * o[d];
    delta[(b * H + h) * T_len + t] = s;
  }
}

/// dK and dV for one tile of keys, looping over the query tiles that see them.
template <class T, int BLOCK, int MAXD>
__global__ void __launch_bounds__(BLOCK * 8)
    attention_backward_kv_kernel(T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, const T* lse,
                                 const T* delta, AttentionShape s, T scale) {
  constexpr int KPT = BLOCK / 8, CPT = MAXD / 8, PLD = BLOCK + 1;
  extern __shared__ __align__(16) unsigned char attention_smem[];
  const int D = static_cast<int>(s.head_dim), ld = D + 1;
  T* Ks = reinterpret_cast<T*>(attention_smem);  // BLOCK x ld
  T* Vs = Ks + BLOCK * ld;
  T* Qs = Vs + BLOCK * ld;
  T* dOs = Qs + BLOCK * ld;
  T* Ps = dOs + BLOCK * ld;  // BLOCK x PLD, [key][query]
  T* dSs = Ps + BLOCK * PLD;
  T* lse_s = dSs + BLOCK * PLD;  // BLOCK
  T* delta_s = lse_s + BLOCK;    // BLOCK
  const int tile = blockIdx.x, h = blockIdx.y, H = static_cast<int>(s.heads);
  const index_t g = blockIdx.z, C = s.heads * D;
  const int r = threadIdx.x / 8, lane = threadIdx.x % 8;  // r: this group's key within the tile
  const index_t k0 = index_t(tile) * BLOCK, tk = k0 + r;
  const index_t q_head = g * s.queries * C + index_t(h) * D, k_head = g * s.keys * C + index_t(h) * D;
  const index_t stats = (g * H + h) * s.queries;
  load_tile<T, BLOCK>(Ks, ld, k + k_head, k0, s.keys, C, D, T(1));
  load_tile<T, BLOCK>(Vs, ld, v + k_head, k0, s.keys, C, D, T(1));
  T dk_acc[CPT], dv_acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; ++c) dk_acc[c] = dv_acc[c] = T(0);
  const int tiles = static_cast<int>((s.queries + BLOCK - 1) / BLOCK);
  for (int qt = static_cast<int>(s.first_query(k0) / BLOCK); qt < tiles; ++qt) {
    const index_t q0 = index_t(qt) * BLOCK;
    __syncthreads();
    load_tile<T, BLOCK>(Qs, ld, q + q_head, q0, s.queries, C, D, T(1));
    load_tile<T, BLOCK>(dOs, ld, dout + q_head, q0, s.queries, C, D, T(1));
    for (int i = threadIdx.x; i < BLOCK; i += blockDim.x) {
      const bool inside = q0 + i < s.queries;
      lse_s[i] = inside ? lse[stats + q0 + i] : T(0);
      delta_s[i] = inside ? delta[stats + q0 + i] : T(0);
    }
    __syncthreads();
    T sc[KPT], dp[KPT];  // Q·K[r] and dO·V[r] for queries lane + 8j
    two_dots_with_rows(sc, dp, Ks + r * ld, Qs, Vs + r * ld, dOs, ld, lane, D);
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      const int query = lane + 8 * j;
      const index_t tq = q0 + query;
      T p = T(0), ds = T(0);
      if (tq < s.queries && tk < s.visible_end(tq)) {
        p = exp_(scale * sc[j] - lse_s[query]);
        ds = p * (dp[j] - delta_s[query]);
      }
      Ps[r * PLD + query] = p;
      dSs[r * PLD + query] = ds;
    }
    __syncwarp();
    for (int query = 0; query < BLOCK; ++query) {
      const T p = Ps[r * PLD + query], ds = dSs[r * PLD + query];
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        const int d = lane + 8 * c;
        if (d < D) {
          dv_acc[c] += p * dOs[query * ld + d];
          dk_acc[c] += ds * Qs[query * ld + d];
        }
      }
    }
  }
  if (tk >= s.keys) return;
#pragma unroll
  for (int c = 0; c < CPT; ++c) {
    const int d = lane + 8 * c;
    if (d < D) {
      dk[k_head + tk * C + d] = dk_acc[c] * scale;
      dv[k_head + tk * C + d] = dv_acc[c];
    }
  }
}

/// dQ for one tile of queries, looping over the key tiles they see.
template <class T, int BLOCK, int MAXD>
__global__ void __launch_bounds__(BLOCK * 8)
    attention_backward_q_kernel(T* dq, const T* dout, const T* q, const T* k, const T* v, const T* lse, const T* delta,
                                AttentionShape s, T scale) {
  constexpr int KPT = BLOCK / 8, CPT = MAXD / 8, PLD = BLOCK + 1;
  extern __shared__ __align__(16) unsigned char attention_smem[];
  const int D = static_cast<int>(s.head_dim), ld = D + 1;
  T* Qs = reinterpret_cast<T*>(attention_smem);  // BLOCK x ld
  T* dOs = Qs + BLOCK * ld;
  T* Ks = dOs + BLOCK * ld;
  T* Vs = Ks + BLOCK * ld;
  T* dSs = Vs + BLOCK * ld;  // BLOCK x PLD, [query][key]
  const int tile = blockIdx.x, h = blockIdx.y, H = static_cast<int>(s.heads);
  const index_t g = blockIdx.z, C = s.heads * D;
  const int r = threadIdx.x / 8, lane = threadIdx.x % 8;  // r: this group's query within the tile
  const index_t q0 = index_t(tile) * BLOCK, tq = q0 + r;
  const index_t q_head = g * s.queries * C + index_t(h) * D, k_head = g * s.keys * C + index_t(h) * D;
  const index_t stats = (g * H + h) * s.queries;
  load_tile<T, BLOCK>(Qs, ld, q + q_head, q0, s.queries, C, D, T(1));
  load_tile<T, BLOCK>(dOs, ld, dout + q_head, q0, s.queries, C, D, T(1));
  const T row_lse = tq < s.queries ? lse[stats + tq] : T(0);
  const T row_delta = tq < s.queries ? delta[stats + tq] : T(0);
  const index_t row_end = tq < s.queries ? s.visible_end(tq) : 0;
  T dq_acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; ++c) dq_acc[c] = T(0);
  const int key_tiles = key_tiles_for<BLOCK>(s, tile);
  for (int kt = 0; kt < key_tiles; ++kt) {
    const index_t k0 = index_t(kt) * BLOCK;
    __syncthreads();
    load_tile<T, BLOCK>(Ks, ld, k + k_head, k0, s.keys, C, D, T(1));
    load_tile<T, BLOCK>(Vs, ld, v + k_head, k0, s.keys, C, D, T(1));
    __syncthreads();
    T sc[KPT], dp[KPT];  // Q[r]·K and dO[r]·V for keys lane + 8j
    two_dots_with_rows(sc, dp, Qs + r * ld, Ks, dOs + r * ld, Vs, ld, lane, D);
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      const int key = lane + 8 * j;
      const index_t tk = k0 + key;
      T ds = T(0);
      if (tk < row_end) {
        const T p = exp_(scale * sc[j] - row_lse);
        ds = p * (dp[j] - row_delta);
      }
      dSs[r * PLD + key] = ds;
    }
    __syncwarp();
    for (int key = 0; key < BLOCK; ++key) {
      const T ds = dSs[r * PLD + key];
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        const int d = lane + 8 * c;
        if (d < D) dq_acc[c] += ds * Ks[key * ld + d];
      }
    }
  }
  if (tq >= s.queries) return;
#pragma unroll
  for (int c = 0; c < CPT; ++c) {
    const int d = lane + 8 * c;
    if (d < D) dq[q_head + tq * C + d] = dq_acc[c] * scale;
  }
}

template <class Kernel>
void allow_shared_memory(Kernel kernel, std::size_t bytes) {
  if (bytes > 48 * 1024)
    TOKENFORMER_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

/// The library's shape checks, then this kernel's limits (grid sizes, head sizes).
inline void check_cuda_attention(const AttentionShape& s) {
  kernels::check_attention_shape(s);
  if (s.head_dim > 256)
    throw config_error("cuda attention supports head sizes from 1 to 256, got " + std::to_string(s.head_dim));
  if (s.heads > 65535 || s.batch > 65535)
    throw shape_error("cuda attention supports at most 65535 heads and 65535 groups per call (" + s.describe() + ")");
  if (s.queries > (index_t(1) << 30) || s.keys > (index_t(1) << 30))
    throw shape_error("cuda attention: sequence too long (" + s.describe() + ")");
}

template <class T, int MAXD>
void attention_forward_impl(const cuda& device, T* out, T* lse, const T* q, const T* k, const T* v,
                            const AttentionShape& s) {
  constexpr int BLOCK = attention_block<T>;
  const index_t D = s.head_dim;
  const dim3 grid(static_cast<unsigned>((s.queries + BLOCK - 1) / BLOCK), static_cast<unsigned>(s.heads),
                  static_cast<unsigned>(s.batch));
  const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(3 * BLOCK * (D + 1) + BLOCK * (BLOCK + 1));
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  auto kernel = attention_forward_kernel<T, BLOCK, MAXD>;
  allow_shared_memory(kernel, bytes);
  kernel<<<grid, BLOCK * 8, bytes, device.stream()>>>(out, lse, q, k, v, s, scale);
  check_launch("attention_forward_kernel");
}

template <class T, int MAXD>
void attention_backward_impl(const cuda& device, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                             const T* out, const T* lse, const AttentionShape& s) {
  constexpr int BLOCK = attention_block<T>;
  const index_t D = s.head_dim;
  scratch<T> delta(device, s.lse_size());
  attention_delta_kernel<<<blocks_for(s.lse_size()), block_threads, 0, device.stream()>>>(
      delta.get(), dout, out, s.batch, s.queries, static_cast<int>(s.heads), static_cast<int>(D));
  check_launch("attention_delta_kernel");
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const dim3 kv_grid(static_cast<unsigned>((s.keys + BLOCK - 1) / BLOCK), static_cast<unsigned>(s.heads),
                     static_cast<unsigned>(s.batch));
  const std::size_t kv_bytes =
      sizeof(T) * static_cast<std::size_t>(4 * BLOCK * (D + 1) + 2 * BLOCK * (BLOCK + 1) + 2 * BLOCK);
  auto kv_kernel = attention_backward_kv_kernel<T, BLOCK, MAXD>;
  allow_shared_memory(kv_kernel, kv_bytes);
  kv_kernel<<<kv_grid, BLOCK * 8, kv_bytes, device.stream()>>>(dk, dv, dout, q, k, v, lse, delta.get(), s, scale);
  check_launch("attention_backward_kv_kernel");
  const dim3 q_grid(static_cast<unsigned>((s.queries + BLOCK - 1) / BLOCK), static_cast<unsigned>(s.heads),
                    static_cast<unsigned>(s.batch));
  const std::size_t q_bytes = sizeof(T) * static_cast<std::size_t>(4 * BLOCK * (D + 1) + BLOCK * (BLOCK + 1));
  auto q_kernel = attention_backward_q_kernel<T, BLOCK, MAXD>;
  allow_shared_memory(q_kernel, q_bytes);
  q_kernel<<<q_grid, BLOCK * 8, q_bytes, device.stream()>>>(dq, dout, q, k, v, lse, delta.get(), s, scale);
  check_launch("attention_backward_q_kernel");
}

}  // namespace cuda_detail

/// Softmax attention with scale 1/√D and the mask of `s`; the contract of the CPU kernel.
template <class T>
void attention_forward(const cuda& device, T* out, non_deduced<T>* lse,  // (batch*Tq, H*D), (batch, H, Tq) or null
                       const T* q, const T* k, const T* v,               // (batch*Tq, H*D), (batch*Tk, H*D) x2
                       const AttentionShape& s) {
  cuda_detail::check_cuda_attention(s);
  if (s.batch == 0 || s.queries == 0 || s.heads == 0) return;
  const index_t D = s.head_dim;
  if (D <= 32)
    cuda_detail::attention_forward_impl<T, 32>(device, out, lse, q, k, v, s);
  else if (D <= 64)
    cuda_detail::attention_forward_impl<T, 64>(device, out, lse, q, k, v, s);
  else if (D <= 128)
    cuda_detail::attention_forward_impl<T, 128>(device, out, lse, q, k, v, s);
  else
    cuda_detail::attention_forward_impl<T, 256>(device, out, lse, q, k, v, s);
}

/// Gradient of attention_forward from its output and log-sum-exp; the contract of the CPU kernel.
template <class T>
void attention_backward(const cuda& device, T* dq, T* dk, T* dv,  // like q, k, v
                        const T* dout,                            // like q
                        const T* q, const T* k, const T* v,       // as given to the forward
                        const T* out, const T* lse,               // the forward's results
                        const AttentionShape& s) {
  cuda_detail::check_cuda_attention(s);
  if (s.batch == 0 || s.heads == 0) return;
  if (s.queries == 0) {  // no query sees a key: the key gradients are zero
    device_memory<cuda>::zero(device, dk, sizeof(T) * static_cast<std::size_t>(s.key_rows() * s.width()));
    device_memory<cuda>::zero(device, dv, sizeof(T) * static_cast<std::size_t>(s.key_rows() * s.width()));
    return;
  }
  const index_t D = s.head_dim;
  if (D <= 32)
    cuda_detail::attention_backward_impl<T, 32>(device, dq, dk, dv, dout, q, k, v, out, lse, s);
  else if (D <= 64)
    cuda_detail::attention_backward_impl<T, 64>(device, dq, dk, dv, dout, q, k, v, out, lse, s);
  else if (D <= 128)
    cuda_detail::attention_backward_impl<T, 128>(device, dq, dk, dv, dout, q, k, v, out, lse, s);
  else
    cuda_detail::attention_backward_impl<T, 256>(device, dq, dk, dv, dout, q, k, v, out, lse, s);
}

}  // namespace tokenformer::kernels

namespace tokenformer::kernels {

namespace cuda_detail {

/// One block per head: the scores into scratch (one thread per key), the block's max and sum, then one
/// thread per output dimension sums the weighted values.
template <class T>
__global__ void attention_decode_kernel(T* out, const T* q, const T* k, const T* v, T* scratch, index_t keys, index_t H,
                                        index_t D, T scale) {
  const index_t h = blockIdx.x, C = H * D;
  T* p = scratch + h * keys;
  const T* qh = q + h * D;
  T local_max = T(-INFINITY);
  for (index_t u = threadIdx.x; u < keys; u += blockDim.x) {
    const T* ku = k + u * C + h * D;
    T dot = T(0);
    for (index_t d = 0; d < D; ++d) dot += qh[d] * ku[d];
    p[u] = dot * scale;
    local_max = max(local_max, p[u]);
  }
  const T m = block_max(local_max);
  T local_sum = T(0);
  for (index_t u = threadIdx.x; u < keys; u += blockDim.x) {
    p[u] = exp_(p[u] - m);
    local_sum += p[u];
  }
  const T inv = T(1) / block_sum(local_sum);  // block_sum synchronizes: every weight is written
  for (index_t d = threadIdx.x; d < D; d += blockDim.x) {
    T acc = T(0);
    for (index_t u = 0; u < keys; ++u) acc += p[u] * v[u * C + h * D + d];
    out[h * D + d] = acc * inv;
  }
}

}  // namespace cuda_detail

/// One decoding step with a KV cache; the contract of the CPU kernel (scratch: H * keys on the GPU).
template <class T>
void attention_decode(const cuda& device, T* out, const T* q, const T* k, const T* v,  // (H*D), (keys, H*D) x2
                      T* scratch, index_t keys, index_t H, index_t D) {
  if (keys <= 0 || H <= 0 || D <= 0) throw shape_error("attention_decode needs keys, heads and head_dim >= 1");
  if (H > 65535) throw shape_error("attention_decode on the GPU: at most 65535 heads");
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  cuda_detail::attention_decode_kernel<<<static_cast<unsigned>(H), cuda_detail::block_threads, 0, device.stream()>>>(
      out, q, k, v, scratch, keys, H, D, scale);
  cuda_detail::check_launch("attention_decode_kernel");
}

}  // namespace tokenformer::kernels

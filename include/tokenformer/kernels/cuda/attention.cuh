// tokenformer/kernels/cuda/attention.cuh: causal multi-head attention on the GPU, flash-attention
// style: tiled, with an online softmax, and no [T, T] matrix in global memory.
//
// A thread block owns a tile of BLOCK positions of one (sequence, head); eight threads own each row
// of the tile (a query in the forward and dQ kernels, a key in the dK/dV kernel), so a row's
// softmax statistics and its output accumulators stay in those threads' registers and need only
// warp shuffles. Tiles of Q, K, V (and dO) are staged in shared memory, padded by one element
// per row against bank conflicts. A thread computes its BLOCK/8 dot products of a tile together,
// so each element of its group's row is loaded once for all of them. (A variant that kept each group's row in registers
// and finished the dot products with a warp-shuffle reduce-scatter measured 1.5x slower on an H200.)
//
// The backward has the CPU kernel's signature (no saved forward state), so it recomputes the
// forward's output and log-sum-exp per row first, then runs a dK/dV kernel over key tiles and a dQ
// kernel over query tiles; neither needs atomics.
#pragma once

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

/// out = softmax(scale · Q Kᵀ + causal mask) V; lse (B, H, T) = log Σ exp of each score row (optional).
template <class T, int BLOCK, int MAXD>
__global__ void __launch_bounds__(BLOCK * 8)
    attention_forward_kernel(T* out, T* lse, const T* q, const T* k, const T* v, index_t T_len, int H, int D, T scale) {
  constexpr int KPT = BLOCK / 8, CPT = MAXD / 8, PLD = BLOCK + 1;
  extern __shared__ __align__(16) unsigned char attention_smem[];
  const int ld = D + 1;
  T* Qs = reinterpret_cast<T*>(attention_smem);  // BLOCK x ld
  T* Ks = Qs + BLOCK * ld;                       // BLOCK x ld
  T* Vs = Ks + BLOCK * ld;                       // BLOCK x ld
  T* Ps = Vs + BLOCK * ld;                       // BLOCK x BLOCK
  const int tile = blockIdx.x, h = blockIdx.y;
  const index_t b = blockIdx.z, C = index_t(H) * D;
  const int r = threadIdx.x / 8, lane = threadIdx.x % 8;
  const index_t t0 = index_t(tile) * BLOCK, tq = t0 + r;
  const index_t head = b * T_len * C + index_t(h) * D;
  load_tile<T, BLOCK>(Qs, ld, q + head, t0, T_len, C, D, scale);
  T acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; ++c) acc[c] = T(0);
  T m = T(-INFINITY), l = T(0);
  for (int kt = 0; kt <= tile; ++kt) {
    __syncthreads();  // the previous tile is no longer read
    load_tile<T, BLOCK>(Ks, ld, k + head, index_t(kt) * BLOCK, T_len, C, D, T(1));
    load_tile<T, BLOCK>(Vs, ld, v + head, index_t(kt) * BLOCK, T_len, C, D, T(1));
    __syncthreads();
    T s[KPT];
    dots_with_rows(s, Qs + r * ld, Ks, ld, lane, D);
    T tile_max = T(-INFINITY);
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      const index_t tk = index_t(kt) * BLOCK + lane + 8 * j;
      if (!(tk <= tq && tk < T_len)) s[j] = T(-INFINITY);
      tile_max = max(tile_max, s[j]);
    }
    tile_max = group_max(tile_max);
    const T m_new = max(m, tile_max);
    const T correction = m == T(-INFINITY) ? T(0) : exp_(m - m_new);
    T p_sum = T(0);
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      const T p = s[j] == T(-INFINITY) ? T(0) : exp_(s[j] - m_new);
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
  if (tq >= T_len) return;
  const T inv = T(1) / l;
#pragma unroll
  for (int c = 0; c < CPT; ++c) {
    const int d = lane + 8 * c;
    if (d < D) out[head + tq * C + d] = acc[c] * inv;
  }
  if (lse != nullptr && lane == 0) lse[(b * H + h) * T_len + tq] = m + log_(l);
}

/// delta (B, H, T) = Σ_d dout · out over each head's row.
template <class T>
__global__ void attention_delta_kernel(T* delta, const T* dout, const T* out, index_t B, index_t T_len, int H, int D) {
  const index_t C = index_t(H) * D, total = B * T_len * H;
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
                                 const T* delta, index_t T_len, int H, int D, T scale) {
  constexpr int KPT = BLOCK / 8, CPT = MAXD / 8, PLD = BLOCK + 1;
  extern __shared__ __align__(16) unsigned char attention_smem[];
  const int ld = D + 1;
  T* Ks = reinterpret_cast<T*>(attention_smem);  // BLOCK x ld
  T* Vs = Ks + BLOCK * ld;
  T* Qs = Vs + BLOCK * ld;
  T* dOs = Qs + BLOCK * ld;
  T* Ps = dOs + BLOCK * ld;  // BLOCK x PLD, [key][query]
  T* dSs = Ps + BLOCK * PLD;
  T* lse_s = dSs + BLOCK * PLD;  // BLOCK
  T* delta_s = lse_s + BLOCK;    // BLOCK
  const int tile = blockIdx.x, h = blockIdx.y;
  const index_t b = blockIdx.z, C = index_t(H) * D;
  const int r = threadIdx.x / 8, lane = threadIdx.x % 8;  // r: this group's key within the tile
  const index_t k0 = index_t(tile) * BLOCK, tk = k0 + r;
  const index_t head = b * T_len * C + index_t(h) * D;
  const index_t stats = (b * H + h) * T_len;
  load_tile<T, BLOCK>(Ks, ld, k + head, k0, T_len, C, D, T(1));
  load_tile<T, BLOCK>(Vs, ld, v + head, k0, T_len, C, D, T(1));
  T dk_acc[CPT], dv_acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; ++c) dk_acc[c] = dv_acc[c] = T(0);
  const int tiles = static_cast<int>((T_len + BLOCK - 1) / BLOCK);
  for (int qt = tile; qt < tiles; ++qt) {
    const index_t q0 = index_t(qt) * BLOCK;
    __syncthreads();
    load_tile<T, BLOCK>(Qs, ld, q + head, q0, T_len, C, D, T(1));
    load_tile<T, BLOCK>(dOs, ld, dout + head, q0, T_len, C, D, T(1));
    for (int i = threadIdx.x; i < BLOCK; i += blockDim.x) {
      const bool inside = q0 + i < T_len;
      lse_s[i] = inside ? lse[stats + q0 + i] : T(0);
      delta_s[i] = inside ? delta[stats + q0 + i] : T(0);
    }
    __syncthreads();
    T s[KPT], dp[KPT];  // Q·K[r] and dO·V[r] for queries lane + 8j
    two_dots_with_rows(s, dp, Ks + r * ld, Qs, Vs + r * ld, dOs, ld, lane, D);
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      const int query = lane + 8 * j;
      const index_t tq = q0 + query;
      T p = T(0), ds = T(0);
      if (tq < T_len && tk <= tq) {
        p = exp_(scale * s[j] - lse_s[query]);
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
  if (tk >= T_len) return;
#pragma unroll
  for (int c = 0; c < CPT; ++c) {
    const int d = lane + 8 * c;
    if (d < D) {
      dk[head + tk * C + d] = dk_acc[c] * scale;
      dv[head + tk * C + d] = dv_acc[c];
    }
  }
}

/// dQ for one tile of queries, looping over the key tiles they see.
template <class T, int BLOCK, int MAXD>
__global__ void __launch_bounds__(BLOCK * 8)
    attention_backward_q_kernel(T* dq, const T* dout, const T* q, const T* k, const T* v, const T* lse, const T* delta,
                                index_t T_len, int H, int D, T scale) {
  constexpr int KPT = BLOCK / 8, CPT = MAXD / 8, PLD = BLOCK + 1;
  extern __shared__ __align__(16) unsigned char attention_smem[];
  const int ld = D + 1;
  T* Qs = reinterpret_cast<T*>(attention_smem);  // BLOCK x ld
  T* dOs = Qs + BLOCK * ld;
  T* Ks = dOs + BLOCK * ld;
  T* Vs = Ks + BLOCK * ld;
  T* dSs = Vs + BLOCK * ld;  // BLOCK x PLD, [query][key]
  const int tile = blockIdx.x, h = blockIdx.y;
  const index_t b = blockIdx.z, C = index_t(H) * D;
  const int r = threadIdx.x / 8, lane = threadIdx.x % 8;  // r: this group's query within the tile
  const index_t q0 = index_t(tile) * BLOCK, tq = q0 + r;
  const index_t head = b * T_len * C + index_t(h) * D;
  const index_t stats = (b * H + h) * T_len;
  load_tile<T, BLOCK>(Qs, ld, q + head, q0, T_len, C, D, T(1));
  load_tile<T, BLOCK>(dOs, ld, dout + head, q0, T_len, C, D, T(1));
  const T row_lse = tq < T_len ? lse[stats + tq] : T(0);
  const T row_delta = tq < T_len ? delta[stats + tq] : T(0);
  T dq_acc[CPT];
#pragma unroll
  for (int c = 0; c < CPT; ++c) dq_acc[c] = T(0);
  for (int kt = 0; kt <= tile; ++kt) {
    const index_t k0 = index_t(kt) * BLOCK;
    __syncthreads();
    load_tile<T, BLOCK>(Ks, ld, k + head, k0, T_len, C, D, T(1));
    load_tile<T, BLOCK>(Vs, ld, v + head, k0, T_len, C, D, T(1));
    __syncthreads();
    T s[KPT], dp[KPT];  // Q[r]·K and dO[r]·V for keys lane + 8j
    two_dots_with_rows(s, dp, Qs + r * ld, Ks, dOs + r * ld, Vs, ld, lane, D);
#pragma unroll
    for (int j = 0; j < KPT; ++j) {
      const int key = lane + 8 * j;
      const index_t tk = k0 + key;
      T ds = T(0);
      if (tq < T_len && tk <= tq) {
        const T p = exp_(scale * s[j] - row_lse);
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
  if (tq >= T_len) return;
#pragma unroll
  for (int c = 0; c < CPT; ++c) {
    const int d = lane + 8 * c;
    if (d < D) dq[head + tq * C + d] = dq_acc[c] * scale;
  }
}

template <class Kernel>
void allow_shared_memory(Kernel kernel, std::size_t bytes) {
  if (bytes > 48 * 1024)
    TOKENFORMER_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

inline void check_attention_shape(index_t B, index_t T_len, index_t H, index_t D) {
  if (D < 1 || D > 256)
    throw config_error("cuda attention supports head sizes from 1 to 256, got " + std::to_string(D));
  if (H > 65535 || B > 65535)
    throw shape_error("cuda attention supports at most 65535 heads and 65535 sequences per call");
  if (T_len > (index_t(1) << 30)) throw shape_error("cuda attention: sequence too long");
}

template <class T, int MAXD>
void attention_forward_impl(const cuda& device, T* out, T* lse, const T* q, const T* k, const T* v, index_t B,
                            index_t T_len, index_t H, index_t D) {
  constexpr int BLOCK = attention_block<T>;
  const dim3 grid(static_cast<unsigned>((T_len + BLOCK - 1) / BLOCK), static_cast<unsigned>(H),
                  static_cast<unsigned>(B));
  const std::size_t bytes = sizeof(T) * static_cast<std::size_t>(3 * BLOCK * (D + 1) + BLOCK * (BLOCK + 1));
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  auto kernel = attention_forward_kernel<T, BLOCK, MAXD>;
  allow_shared_memory(kernel, bytes);
  kernel<<<grid, BLOCK * 8, bytes, device.stream()>>>(out, lse, q, k, v, T_len, static_cast<int>(H),
                                                      static_cast<int>(D), scale);
  check_launch("attention_forward_kernel");
}

template <class T, int MAXD>
void attention_backward_impl(const cuda& device, T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                             index_t B, index_t T_len, index_t H, index_t D) {
  constexpr int BLOCK = attention_block<T>;
  const index_t C = H * D;
  scratch<T> out(device, B * T_len * C), lse(device, B * H * T_len), delta(device, B * H * T_len);
  attention_forward_impl<T, MAXD>(device, out.get(), lse.get(), q, k, v, B, T_len, H, D);
  attention_delta_kernel<<<blocks_for(B * T_len * H), block_threads, 0, device.stream()>>>(
      delta.get(), dout, out.get(), B, T_len, static_cast<int>(H), static_cast<int>(D));
  check_launch("attention_delta_kernel");
  const dim3 grid(static_cast<unsigned>((T_len + BLOCK - 1) / BLOCK), static_cast<unsigned>(H),
                  static_cast<unsigned>(B));
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const std::size_t kv_bytes =
      sizeof(T) * static_cast<std::size_t>(4 * BLOCK * (D + 1) + 2 * BLOCK * (BLOCK + 1) + 2 * BLOCK);
  auto kv_kernel = attention_backward_kv_kernel<T, BLOCK, MAXD>;
  allow_shared_memory(kv_kernel, kv_bytes);
  kv_kernel<<<grid, BLOCK * 8, kv_bytes, device.stream()>>>(dk, dv, dout, q, k, v, lse.get(), delta.get(), T_len,
                                                            static_cast<int>(H), static_cast<int>(D), scale);
  check_launch("attention_backward_kv_kernel");
  const std::size_t q_bytes = sizeof(T) * static_cast<std::size_t>(4 * BLOCK * (D + 1) + BLOCK * (BLOCK + 1));
  auto q_kernel = attention_backward_q_kernel<T, BLOCK, MAXD>;
  allow_shared_memory(q_kernel, q_bytes);
  q_kernel<<<grid, BLOCK * 8, q_bytes, device.stream()>>>(dq, dout, q, k, v, lse.get(), delta.get(), T_len,
                                                          static_cast<int>(H), static_cast<int>(D), scale);
  check_launch("attention_backward_q_kernel");
}

}  // namespace cuda_detail

/// Causal softmax attention with scale 1/√D; the contract of the CPU kernel.
template <class T>
void attention_forward(const cuda& device, T* out,          // (B*T, H*D)
                       const T* q, const T* k, const T* v,  // (B*T, H*D) each
                       index_t B, index_t T_len, index_t H, index_t D) {
  cuda_detail::check_attention_shape(B, T_len, H, D);
  if (B == 0 || T_len == 0 || H == 0) return;
  if (D <= 32)
    cuda_detail::attention_forward_impl<T, 32>(device, out, static_cast<T*>(nullptr), q, k, v, B, T_len, H, D);
  else if (D <= 64)
    cuda_detail::attention_forward_impl<T, 64>(device, out, static_cast<T*>(nullptr), q, k, v, B, T_len, H, D);
  else if (D <= 128)
    cuda_detail::attention_forward_impl<T, 128>(device, out, static_cast<T*>(nullptr), q, k, v, B, T_len, H, D);
  else
    cuda_detail::attention_forward_impl<T, 256>(device, out, static_cast<T*>(nullptr), q, k, v, B, T_len, H, D);
}

/// Gradient of attention_forward; the contract of the CPU kernel.
template <class T>
void attention_backward(const cuda& device, T* dq, T* dk, T* dv,  // (B*T, H*D) each
                        const T* dout,                            // (B*T, H*D)
                        const T* q, const T* k, const T* v,       // (B*T, H*D) each
                        index_t B, index_t T_len, index_t H, index_t D) {
  cuda_detail::check_attention_shape(B, T_len, H, D);
  if (B == 0 || T_len == 0 || H == 0) return;
  if (D <= 32)
    cuda_detail::attention_backward_impl<T, 32>(device, dq, dk, dv, dout, q, k, v, B, T_len, H, D);
  else if (D <= 64)
    cuda_detail::attention_backward_impl<T, 64>(device, dq, dk, dv, dout, q, k, v, B, T_len, H, D);
  else if (D <= 128)
    cuda_detail::attention_backward_impl<T, 128>(device, dq, dk, dv, dout, q, k, v, B, T_len, H, D);
  else
    cuda_detail::attention_backward_impl<T, 256>(device, dq, dk, dv, dout, q, k, v, B, T_len, H, D);
}

}  // namespace tokenformer::kernels

// tokenformer/embedded/static_model.hpp: a TokenFormer language model for inference with every size
// fixed at compile time, for embedded targets down to a Cortex-M.
//
// What changes against LanguageModel (model/language_model.hpp), and why:
//  * Sizes: one config struct of `static constexpr` members (as core/presets.hpp, plus max_context,
//    the positions the KV cache holds). Every size is a constant, so every shape rule is a
//    static_assert and every buffer size is a constexpr value.
//  * Weights: `Weights<Config, Storage>` is a struct of pointers to `const` arrays that the model reads
//    in place (never copies): arrays written by `tokenformer-cli export-c` land in flash (.rodata).
//    Storage is `f32` (float) or `q8` (int8 values with one float scale per block of 32 values of a
//    row, as ggml's Q8_0), dequantized inside the dot products; activations stay float.
//  * Memory: the activations, the logits and the KV cache live in one `Arena` of `arena_floats` floats
//    that the caller owns (a static buffer on a microcontroller). After construction nothing is
//    allocated: no heap, no exceptions, no RTTI, no threads, no iostream, no files; this header includes
//    only <cstddef>, <cstdint>, <type_traits> (and xsimd where the target has SIMD).
//  * Errors (a token outside the vocabulary, a full context) go to the handler set with
//    `set_error_handler` (default: trap); if it returns, the call returns nullptr / a short count and
//    changes nothing.
//  * Math: exp, erf and the rotary table are the library's own (below), not libm's, and the scalar
//    path sums in a fixed order, so with -ffp-contract=off and TOKENFORMER_EMBEDDED_SCALAR a Cortex-M
//    and an x86 build compute bit-identical logits (tests/cross checks the generated ids). Where xsimd
//    has an instruction set (SSE/AVX, NEON), the dot products and row updates use it.
//  * Work: one position per step (prefill is steps too): each Pattention is two matrix-vector
//    products over its tokens, attention reads the cached keys and values of the earlier positions.
//
// The computation is LanguageModel's (TokenFormer blocks, pre-norm, non-parametric LayerNorm, rotary,
// causal attention with scale 1/√D, affine final LayerNorm, tied head); tests/test_embedded.cpp
// compares the logits with LanguageModel's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/normalization_kind.hpp"

#if TOKENFORMER_EMBEDDED_SIMD
#include <xsimd/xsimd.hpp>
#endif

namespace tokenformer::embedded {

// ---- errors ---------------------------------------------------------------------------------------

/// A function that receives the message of a run-time error (a bad token, a full context).
using error_handler = void (*)(const char* message);

namespace detail {
inline error_handler current_error_handler = nullptr;  // constant-initialized: no guard, no heap
}  // namespace detail

/// Sets the function that receives run-time errors; nullptr restores the default, which traps.
inline void set_error_handler(error_handler handler) noexcept { detail::current_error_handler = handler; }

/// Reports `message` to the error handler (traps when none is set).
inline void report_error(const char* message) noexcept {
  if (detail::current_error_handler != nullptr)
    detail::current_error_handler(message);
  else
    __builtin_trap();
}

// ---- math: the library's own, identical on every target -----------------------------------------

namespace math {

/// √x, correctly rounded (IEEE) on every target.
inline float sqrt(float x) noexcept { return __builtin_sqrtf(x); }

/// e^x in float (Cephes' polynomial after a Cody-Waite reduction; within 2 ulp of the exact value
/// for normal results); 0 below the smallest normal float, +inf above the largest.
inline float exp(float x) noexcept {
  if (x != x) return x;
  if (x > 88.72283f) return __builtin_inff();
  if (x < -87.33654f) return 0.0f;
  const float k = x * 1.44269504088896341f;
  const std::int32_t n = static_cast<std::int32_t>(k + (k >= 0.0f ? 0.5f : -0.5f));
  const float nf = static_cast<float>(n);
  const float r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  // y · 2^n in two factors, each a normal float for n in [-126, 128].
  const std::int32_t n1 = n / 2, n2 = n - n1;
  const std::uint32_t b1 = static_cast<std::uint32_t>(n1 + 127) << 23, b2 = static_cast<std::uint32_t>(n2 + 127) << 23;
  float f1 = 0.0f, f2 = 0.0f;
  __builtin_memcpy(&f1, &b1, sizeof f1);
  __builtin_memcpy(&f2, &b2, sizeof f2);
  return y * f1 * f2;
}

/// erfc(z) for z >= 0 (Numerical Recipes' Chebyshev fit, fractional error below 1.2e-7 in exact
/// arithmetic).
inline float erfc_nonnegative(float z) noexcept {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  return t * exp(-z * z - 1.26551223f + t * p);
}

/// erf(z) for |z| < 1: its Taylor series to the z^23 term (truncation below 1e-10).
inline float erf_small(float z) noexcept {
  const float z2 = z * z;
  float p = -1.2290555301717926e-09f;
  p = p * z2 + 1.4807192815879218e-08f;
  p = p * z2 - 1.6365844691234924e-07f;
  p = p * z2 + 1.6462114365889246e-06f;
  p = p * z2 - 1.4925650358406252e-05f;
  p = p * z2 + 0.00012055332981789664f;
  p = p * z2 - 0.00085483270234508522f;
  p = p * z2 + 0.0052239776254421871f;
  p = p * z2 - 0.026866170645131249f;
  p = p * z2 + 0.11283791670955126f;
  p = p * z2 - 0.37612638903183748f;
  p = p * z2 + 1.1283791670955126f;
  return z * p;
}

/// The exact (erf) GeLU, x · Φ(x): the series where |x/√2| < 1, erfc beyond (so that negative x keep
/// their relative precision).
inline float gelu(float x) noexcept {
  const float z = x * 0.70710678118654752f;
  if (z > -1.0f && z < 1.0f) return 0.5f * x * (1.0f + erf_small(z));
  return z >= 0.0f ? 0.5f * x * (2.0f - erfc_nonnegative(z)) : 0.5f * x * erfc_nonnegative(-z);
}

}  // namespace math

// ---- compile-time math for the rotary table ------------------------------------------------------

namespace detail {

constexpr double ln2 = 0.69314718055994530942;
constexpr double two_pi = 6.28318530717958647692;

constexpr double cexp(double x) {
  const int k = static_cast<int>(x / ln2 + (x >= 0 ? 0.5 : -0.5));
  const double r = x - k * ln2;
  double term = 1.0, sum = 1.0;
  for (int i = 1; i < 28; ++i) {
    term *= r / i;
    sum += term;
  }
  for (int i = 0; i < k; ++i) sum *= 2.0;
  for (int i = 0; i > k; --i) sum *= 0.5;
  return sum;
}

constexpr double clog(double x) {  // x > 0: x = m · 2^e with m in [1, 2); log m = 2 atanh((m-1)/(m+1))
  int e = 0;
  while (x >= 2.0) x *= 0.5, ++e;
  while (x < 1.0) x *= 2.0, --e;
  const double u = (x - 1.0) / (x + 1.0), u2 = u * u;
  double term = u, sum = 0.0;
  for (int i = 1; i < 80; i += 2) {
    sum += term / i;
    term *= u2;
  }
  return 2.0 * sum + e * ln2;
}

constexpr double csin_cos(double a, bool cosine) {  // a >= 0
  a -= two_pi * static_cast<double>(static_cast<long long>(a / two_pi));
  if (a > two_pi / 2) a -= two_pi;
  double term = cosine ? 1.0 : a, sum = 0.0;
  for (int i = cosine ? 0 : 1; i < 60; i += 2) {
    sum += term;
    term *= -a * a / ((i + 1) * (i + 2));
  }
  return sum;
}

template <class Config, class = void>
struct rotary_base_of {
  static constexpr double value = 10000.0;
};
template <class Config>
struct rotary_base_of<Config, std::void_t<decltype(Config::rotary_base)>> {
  static constexpr double value = Config::rotary_base;
};

#define TOKENFORMER_EMBEDDED_OPTIONAL_TOKENS(member)                  \
  template <class Config, class = void>                               \
  struct member##_of {                                                \
    static constexpr index_t value = 0;                               \
  };                                                                  \
  template <class Config>                                             \
  struct member##_of<Config, std::void_t<decltype(Config::member)>> { \
    static constexpr index_t value = Config::member;                  \
  };
TOKENFORMER_EMBEDDED_OPTIONAL_TOKENS(qkv_scale_tokens)
TOKENFORMER_EMBEDDED_OPTIONAL_TOKENS(proj_scale_tokens)
TOKENFORMER_EMBEDDED_OPTIONAL_TOKENS(ffn_scale_tokens)
#undef TOKENFORMER_EMBEDDED_OPTIONAL_TOKENS

constexpr index_t max_of(index_t a, index_t b) { return a > b ? a : b; }

}  // namespace detail

// ---- sizes ---------------------------------------------------------------------------------------

/// The sizes of a static config, checked. Config needs num_layers, hidden_size, num_heads, qkv_tokens,
/// proj_tokens, ffn_tokens, vocab_size, max_context, rotary_pct, normalization and layernorm_epsilon;
/// rotary_base (10000) and the pinned scales qkv_scale_tokens, proj_scale_tokens, ffn_scale_tokens
/// (0: the token count) are optional.
template <class Config>
struct Dims {
  static constexpr index_t L = Config::num_layers;                                                 ///< layers
  static constexpr index_t C = Config::hidden_size;                                                ///< hidden size
  static constexpr index_t H = Config::num_heads;                                                  ///< heads
  static constexpr index_t D = H > 0 ? C / H : 0;                                                  ///< head dim
  static constexpr index_t R = static_cast<index_t>(static_cast<double>(D) * Config::rotary_pct);  ///< rotary dims
  static constexpr index_t half = R / 2;                                        ///< rotary pairs per head
  static constexpr index_t V = Config::vocab_size;                              ///< vocabulary rows (tied head)
  static constexpr index_t Pq = Config::qkv_tokens;                             ///< tokens of the Q, K, V Pattentions
  static constexpr index_t Pp = Config::proj_tokens;                            ///< tokens of the output projection
  static constexpr index_t Pf = Config::ffn_tokens;                             ///< tokens of the FFN
  static constexpr index_t context = Config::max_context;                       ///< positions the KV cache holds
  static constexpr index_t P_max = detail::max_of(Pq, detail::max_of(Pp, Pf));  ///< the largest token count
  ///@{
  /// Θ's n per role: the pinned count, or the token count.
  static constexpr index_t scale_q =
      detail::qkv_scale_tokens_of<Config>::value > 0 ? detail::qkv_scale_tokens_of<Config>::value : Pq;
  static constexpr index_t scale_p =
      detail::proj_scale_tokens_of<Config>::value > 0 ? detail::proj_scale_tokens_of<Config>::value : Pp;
  static constexpr index_t scale_f =
      detail::ffn_scale_tokens_of<Config>::value > 0 ? detail::ffn_scale_tokens_of<Config>::value : Pf;
  ///@}
  static constexpr Normalization theta = Config::normalization;                 ///< Θ
  static constexpr float eps = static_cast<float>(Config::layernorm_epsilon);   ///< LayerNorm ε
  static constexpr double rotary_base = detail::rotary_base_of<Config>::value;  ///< rotary base

  static_assert(L > 0 && C > 0 && H > 0 && V > 0, "num_layers, hidden_size, num_heads, vocab_size must be positive");
  static_assert(C % H == 0, "num_heads must divide hidden_size");
  static_assert(Pq > 0 && Pp > 0 && Pf > 0, "token counts must be positive");
  static_assert(context > 0, "max_context must be positive");
  static_assert(R % 2 == 0 && R <= D, "rotary dims int(head_dim * rotary_pct) must be even and at most head_dim");
  static_assert(Config::layernorm_epsilon > 0.0, "layernorm_epsilon must be positive");
  static_assert(rotary_base > 0.0, "rotary_base must be positive");
  static_assert(theta == Normalization::l2_norm_gelu || theta == Normalization::gelu_l2_norm ||
                    theta == Normalization::softmax,
                "normalization must be one of l2_norm_gelu, gelu_l2_norm, softmax");
  static_assert(V <= INT32_MAX && context <= INT32_MAX, "ids and positions are 32-bit");
};

// ---- weights -------------------------------------------------------------------------------------

/// Storage tag: float weights.
struct f32 {};
/// Storage tag: int8 weights, one float scale per block of 32 consecutive values of a row (the last
/// block of a row may be shorter), value = scale · q.
struct q8 {
  static constexpr index_t block = 32;  ///< values per scale
};

template <class Storage, index_t Rows, index_t Cols>
struct Matrix;

namespace kernels {
// The scalar and SIMD kernels have different names (inline namespaces), so that a program mixing
// translation units built with and without TOKENFORMER_EMBEDDED_SCALAR keeps both (no ODR clash).
#if TOKENFORMER_EMBEDDED_SIMD
inline namespace simd {
#else
inline namespace scalar {
#endif

/// Σ a[i]·b[i], in a fixed order (scalar) or xsimd lanes.
inline float dot(const float* a, const float* b, index_t n) noexcept {
  float sum = 0.0f;
  index_t tail = 0;
#if TOKENFORMER_EMBEDDED_SIMD
  using batch = xsimd::batch<float>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  tail = n - n % W;
  if (tail > 0) {
    batch acc(0.0f);
    for (index_t i = 0; i < tail; i += W)
      acc = xsimd::fma(batch::load_unaligned(a + i), batch::load_unaligned(b + i), acc);
    sum = xsimd::hadd(acc);
  }
#endif
  for (index_t i = tail; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

/// Σ q[i]·x[i] with int8 q.
inline float dot(const std::int8_t* q, const float* x, index_t n) noexcept {
  float sum = 0.0f;
  index_t tail = 0;
#if TOKENFORMER_EMBEDDED_SIMD
  using batch = xsimd::batch<float>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  tail = n - n % W;
  if (tail > 0) {
    batch acc(0.0f);
    alignas(64) float widened[W];
    for (index_t i = 0; i < tail; i += W) {
      for (index_t j = 0; j < W; ++j) widened[j] = static_cast<float>(q[i + j]);
      acc = xsimd::fma(batch::load_aligned(widened), batch::load_unaligned(x + i), acc);
    }
    sum = xsimd::hadd(acc);
  }
#endif
  for (index_t i = tail; i < n; ++i) sum += static_cast<float>(q[i]) * x[i];
  return sum;
}

/// y[i] += a·x[i].
inline void axpy(float a, const float* x, float* y, index_t n) noexcept {
  index_t tail = 0;
#if TOKENFORMER_EMBEDDED_SIMD
  using batch = xsimd::batch<float>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  const batch va(a);
  tail = n - n % W;
  for (index_t i = 0; i < tail; i += W)
    xsimd::fma(va, batch::load_unaligned(x + i), batch::load_unaligned(y + i)).store_unaligned(y + i);
#endif
  for (index_t i = tail; i < n; ++i) y[i] += a * x[i];
}

/// y[i] += a·q[i] with int8 q.
inline void axpy(float a, const std::int8_t* q, float* y, index_t n) noexcept {
  index_t tail = 0;
#if TOKENFORMER_EMBEDDED_SIMD
  using batch = xsimd::batch<float>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  const batch va(a);
  alignas(64) float widened[W];
  tail = n - n % W;
  for (index_t i = 0; i < tail; i += W) {
    for (index_t j = 0; j < W; ++j) widened[j] = static_cast<float>(q[i + j]);
    xsimd::fma(va, batch::load_aligned(widened), batch::load_unaligned(y + i)).store_unaligned(y + i);
  }
#endif
  for (index_t i = tail; i < n; ++i) y[i] += a * static_cast<float>(q[i]);
}

/// One row of a q8 matrix times x: Σ over blocks of scale_b · (q_b · x_b), for a row of n values with
/// its ceil(n / 32) scales.
inline float dot_q8_row(const std::int8_t* q, const float* scales, const float* x, index_t n) noexcept {
  float sum = 0.0f;
  index_t b = 0;
#if TOKENFORMER_EMBEDDED_SIMD
  // Whole blocks: widen 32 values to float, one SIMD accumulator, one horizontal sum per row.
  using batch = xsimd::batch<float>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  static_assert(q8::block % W == 0, "a q8 block is a whole number of SIMD batches");
  batch acc(0.0f);
  alignas(64) float widened[q8::block];
  for (; b < n / q8::block; ++b) {
    const std::int8_t* qb = q + b * q8::block;
    for (index_t i = 0; i < q8::block; ++i) widened[i] = static_cast<float>(qb[i]);
    batch part(0.0f);
    for (index_t i = 0; i < q8::block; i += W)
      part = xsimd::fma(batch::load_aligned(widened + i), batch::load_unaligned(x + b * q8::block + i), part);
    acc = xsimd::fma(batch(scales[b]), part, acc);
  }
  sum = xsimd::hadd(acc);
#endif
  for (; b * q8::block < n; ++b) {
    const index_t begin = b * q8::block, count = n - begin < q8::block ? n - begin : q8::block;
    sum += scales[b] * dot(q + begin, x + begin, count);
  }
  return sum;
}

/// y += a · (one row of a q8 matrix, n values with their ceil(n / 32) scales).
inline void axpy_q8_row(float a, const std::int8_t* q, const float* scales, float* y, index_t n) noexcept {
  index_t b = 0;
#if TOKENFORMER_EMBEDDED_SIMD
  using batch = xsimd::batch<float>;
  constexpr index_t W = static_cast<index_t>(batch::size);
  alignas(64) float widened[q8::block];
  for (; b < n / q8::block; ++b) {
    const std::int8_t* qb = q + b * q8::block;
    for (index_t i = 0; i < q8::block; ++i) widened[i] = static_cast<float>(qb[i]);
    const batch f(a * scales[b]);
    float* yb = y + b * q8::block;
    for (index_t i = 0; i < q8::block; i += W)
      xsimd::fma(f, batch::load_aligned(widened + i), batch::load_unaligned(yb + i)).store_unaligned(yb + i);
  }
#endif
  for (; b * q8::block < n; ++b) {
    const index_t begin = b * q8::block, count = n - begin < q8::block ? n - begin : q8::block;
    axpy(a * scales[b], q + begin, y + begin, count);
  }
}

/// Quantizes a [rows, cols] float matrix to int8 values q [rows, cols] and scales
/// [rows, ceil(cols / 32)]: per block of 32 values of a row, scale = max |x| / 127 and
/// q = round(x / scale), halves away from zero (an all-zero block has scale 0 and zeros). Requires
/// finite values (Q8Matrix::quantize and OwnedWeights check); a block with a NaN or an infinity gets
/// scale 0 and zeros instead of undefined behaviour.
inline void quantize_q8(const float* x, index_t rows, index_t cols, std::int8_t* q, float* scales) noexcept {
  const index_t blocks = (cols + q8::block - 1) / q8::block;
  for (index_t r = 0; r < rows; ++r)
    for (index_t b = 0; b < blocks; ++b) {
      const index_t begin = b * q8::block, end = cols < begin + q8::block ? cols : begin + q8::block;
      float amax = 0.0f;
      for (index_t i = begin; i < end; ++i) {
        const float a = __builtin_fabsf(x[r * cols + i]);
        amax = a > amax ? a : amax;
      }
      const float scale = amax == amax && amax <= 3.4e38f ? amax / 127.0f : 0.0f;  // finite inputs expected
      scales[r * blocks + b] = scale;
      for (index_t i = begin; i < end; ++i) {
        float v = scale == 0.0f ? 0.0f : __builtin_roundf(x[r * cols + i] / scale);
        v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        q[r * cols + i] = static_cast<std::int8_t>(v == v ? v : 0.0f);  // NaN (refused by the callers): 0
      }
    }
}

}  // namespace simd / scalar
}  // namespace kernels

/// A [Rows, Cols] row-major float matrix in place (not owned).
template <index_t Rows, index_t Cols>
struct Matrix<f32, Rows, Cols> {
  static constexpr index_t rows = Rows;  ///< rows
  static constexpr index_t cols = Cols;  ///< columns
  /// Bytes the matrix occupies.
  static constexpr std::size_t bytes = static_cast<std::size_t>(Rows) * static_cast<std::size_t>(Cols) * sizeof(float);
  const float* values;  ///< Rows·Cols floats

  /// Row r · x.
  float dot_row(index_t r, const float* x) const noexcept { return kernels::dot(values + r * Cols, x, Cols); }
  /// y += a · row r.
  void axpy_row(index_t r, float a, float* y) const noexcept { kernels::axpy(a, values + r * Cols, y, Cols); }
  /// out = row r.
  void copy_row(index_t r, float* out) const noexcept {
    for (index_t i = 0; i < Cols; ++i) out[i] = values[r * Cols + i];
  }
};

/// A [Rows, Cols] row-major int8 matrix with a float scale per block of q8::block values of a row.
template <index_t Rows, index_t Cols>
struct Matrix<q8, Rows, Cols> {
  static constexpr index_t rows = Rows;                                  ///< rows
  static constexpr index_t cols = Cols;                                  ///< columns
  static constexpr index_t blocks = (Cols + q8::block - 1) / q8::block;  ///< scales per row
  /// Bytes the matrix occupies (values and scales).
  static constexpr std::size_t bytes =
      static_cast<std::size_t>(Rows) * static_cast<std::size_t>(Cols) +
      static_cast<std::size_t>(Rows) * static_cast<std::size_t>(blocks) * sizeof(float);
  const std::int8_t* values;  ///< Rows·Cols int8 values
  const float* scales;        ///< Rows·blocks scales

  /// Row r · x.
  float dot_row(index_t r, const float* x) const noexcept {
    return kernels::dot_q8_row(values + r * Cols, scales + r * blocks, x, Cols);
  }
  /// y += a · row r.
  void axpy_row(index_t r, float a, float* y) const noexcept {
    kernels::axpy_q8_row(a, values + r * Cols, scales + r * blocks, y, Cols);
  }
  /// out = row r, dequantized.
  void copy_row(index_t r, float* out) const noexcept {
    for (index_t i = 0; i < Cols; ++i)
      out[i] = scales[r * blocks + i / q8::block] * static_cast<float>(values[r * Cols + i]);
  }
};

/// One layer's parameter tokens: keys and values of the Q, K, V, output and FFN Pattentions.
template <class Config, class Storage>
struct LayerWeights {
  using dims = Dims<Config>;  ///< the sizes
  ///@{
  /// Key tokens [P, C] and value tokens [P, C] of each Pattention.
  Matrix<Storage, dims::Pq, dims::C> query_keys, query_values, key_keys, key_values, value_keys, value_values;
  Matrix<Storage, dims::Pp, dims::C> proj_keys, proj_values;
  Matrix<Storage, dims::Pf, dims::C> ffn_keys, ffn_values;
  ///@}
};

/// Every weight of a static model, as pointers to arrays the model reads in place. An aggregate: an
/// exported header initializes it with `constexpr` (tokenformer-cli export-c).
template <class Config, class Storage>
struct Weights {
  using dims = Dims<Config>;                      ///< the sizes
  Matrix<Storage, dims::V, dims::C> embedding;    ///< [V, C], also the output head
  LayerWeights<Config, Storage> layers[dims::L];  ///< the blocks
  const float* final_norm_weight;                 ///< [C]
  const float* final_norm_bias;                   ///< [C]

  /// Bytes of every weight array (what goes to flash).
  static constexpr std::size_t bytes() {
    using M = Matrix<Storage, dims::Pq, dims::C>;
    using Mp = Matrix<Storage, dims::Pp, dims::C>;
    using Mf = Matrix<Storage, dims::Pf, dims::C>;
    return Matrix<Storage, dims::V, dims::C>::bytes +
           static_cast<std::size_t>(dims::L) * (6 * M::bytes + 2 * Mp::bytes + 2 * Mf::bytes) +
           2 * static_cast<std::size_t>(dims::C) * sizeof(float);
  }
};

// ---- the rotary table, computed by the compiler --------------------------------------------------

/// cos and sin of position p · base^(-2j/R) for every cached position p and pair j, in .rodata.
template <class Config>
struct RotaryTable {
  using dims = Dims<Config>;  ///< the sizes
  static constexpr std::size_t entries = dims::half > 0 ? static_cast<std::size_t>(dims::context* dims::half)
                                                        : 1;  ///< context · R/2
  float cos[entries];                                         ///< cos[p · R/2 + j]
  float sin[entries];                                         ///< sin[p · R/2 + j]
};

/// Builds the rotary table at compile time (double precision, then rounded to float). About a few
/// hundred constant-evaluation steps per entry: a table of tens of thousands of entries (a long
/// max_context with many rotary dims) may need GCC's -fconstexpr-ops-limit raised.
template <class Config>
constexpr RotaryTable<Config> make_rotary_table() {
  using dims = Dims<Config>;
  RotaryTable<Config> table{};
  if (dims::half == 0) return table;
  const double log_base = detail::clog(dims::rotary_base);
  for (index_t j = 0; j < dims::half; ++j) {
    const double theta = detail::cexp(-2.0 * static_cast<double>(j) / static_cast<double>(dims::R) * log_base);
    for (index_t p = 0; p < dims::context; ++p) {
      const double angle = static_cast<double>(p) * theta;
      table.cos[p * dims::half + j] = static_cast<float>(detail::csin_cos(angle, true));
      table.sin[p * dims::half + j] = static_cast<float>(detail::csin_cos(angle, false));
    }
  }
  return table;
}

/// The rotary table of Config, one per program.
template <class Config>
inline constexpr RotaryTable<Config> rotary_table = make_rotary_table<Config>();

// ---- the model -----------------------------------------------------------------------------------

/// Floats of the arena of a StaticModel of Config: the KV cache (2·L·context·C), four [C] vectors,
/// the scores of the largest Pattention, the attention row (context) and the logits (V).
template <class Config>
constexpr std::size_t arena_floats() {
  using d = Dims<Config>;
  return static_cast<std::size_t>(2 * d::L * d::context * d::C + 4 * d::C + d::P_max + d::context + d::V);
}

/// The caller-owned memory of a StaticModel: declare one as a static object (it goes to .bss).
template <class Config>
struct Arena {
  alignas(64) float data[arena_floats<Config>()];  ///< every activation, the logits and the KV cache
};

/// A TokenFormer language model of static Config whose weights are `Weights<Config, Storage>` in
/// place and whose memory is an Arena<Config>. One sequence, one position per step.
template <class Config, class Storage = f32>
class StaticModel {
 public:
  using dims = Dims<Config>;  ///< the sizes

  /// A model over `weights` (read in place; they must outlive the model) and `arena` (owned by the
  /// caller, used by this model alone). The context starts empty.
  StaticModel(const Weights<Config, Storage>& weights, Arena<Config>& arena) noexcept
      : w_(weights),
        keys_(arena.data),
        values_(keys_ + dims::L * dims::context * dims::C),
        x_(values_ + dims::L * dims::context * dims::C),
        normed_(x_ + dims::C),
        q_(normed_ + dims::C),
        context_row_(q_ + dims::C),
        scores_(context_row_ + dims::C),
        probs_(scores_ + dims::P_max),
        logits_(probs_ + dims::context) {}

  StaticModel(const StaticModel&) = delete;             ///< one model per arena
  StaticModel& operator=(const StaticModel&) = delete;  ///< one model per arena

  /// Positions in the KV cache.
  index_t length() const noexcept { return length_; }
  /// Positions the KV cache holds (Config::max_context).
  static constexpr index_t capacity() noexcept { return dims::context; }
  /// Empties the context.
  void reset() noexcept { length_ = 0; }

  /// Appends `token` at the next position and returns the logits [V] of the next token (valid until
  /// the next step). A token outside [0, V) or a full context reports an error and returns nullptr,
  /// leaving the model unchanged.
  const float* step(std::int32_t token) noexcept {
    if (token < 0 || token >= dims::V) {
      report_error("tokenformer::embedded::StaticModel::step: token id outside the vocabulary");
      return nullptr;
    }
    if (length_ >= dims::context) {
      report_error("tokenformer::embedded::StaticModel::step: the context is full (max_context positions)");
      return nullptr;
    }
    const index_t t = length_, C = dims::C;
    w_.embedding.copy_row(token, x_);
    for (index_t l = 0; l < dims::L; ++l) {
      const LayerWeights<Config, Storage>& layer = w_.layers[l];
      float* const k_row = keys_ + (l * dims::context + t) * C;
      float* const v_row = values_ + (l * dims::context + t) * C;
      // h = x + proj(attention(LN(x)))
      layer_norm(normed_, x_, nullptr, nullptr);
      pattention(layer.query_keys, layer.query_values, normed_, q_, false, dims::scale_q);
      pattention(layer.key_keys, layer.key_values, normed_, k_row, false, dims::scale_q);
      pattention(layer.value_keys, layer.value_values, normed_, v_row, false, dims::scale_q);
      rotate(q_, t);
      rotate(k_row, t);
      attend(l, t);
      pattention(layer.proj_keys, layer.proj_values, context_row_, x_, true, dims::scale_p);
      // out = h + ffn(LN(h))
      layer_norm(normed_, x_, nullptr, nullptr);
      pattention(layer.ffn_keys, layer.ffn_values, normed_, x_, true, dims::scale_f);
    }
    layer_norm(normed_, x_, w_.final_norm_weight, w_.final_norm_bias);
    for (index_t v = 0; v < dims::V; ++v) logits_[v] = w_.embedding.dot_row(v, normed_);
    ++length_;
    return logits_;
  }

  /// The logits of the last step.
  const float* logits() const noexcept { return logits_; }

  /// The id of the largest logit of the last step (the first one on ties).
  std::int32_t argmax() const noexcept {
    index_t best = 0;
    for (index_t v = 1; v < dims::V; ++v)
      if (logits_[v] > logits_[best]) best = v;
    return static_cast<std::int32_t>(best);
  }

  /// Greedy generation: steps through the prompt (which must not be empty) from the current context,
  /// then writes up to `count` next tokens to `out`, each the argmax of the previous step. Returns how
  /// many it wrote: fewer than `count` when the context fills up or a prompt token is bad (an error
  /// is reported; the positions stepped until then stay in the context).
  index_t generate_greedy(const std::int32_t* prompt, index_t prompt_length, std::int32_t* out,
                          index_t count) noexcept {
    if (prompt == nullptr || prompt_length <= 0) {
      report_error("tokenformer::embedded::StaticModel::generate_greedy: empty prompt");
      return 0;
    }
    if (count > 0 && out == nullptr) {
      report_error("tokenformer::embedded::StaticModel::generate_greedy: no output array");
      return 0;
    }
    for (index_t i = 0; i < prompt_length; ++i)
      if (step(prompt[i]) == nullptr) return 0;
    index_t written = 0;
    while (written < count) {
      const std::int32_t next = argmax();
      out[written++] = next;
      if (written == count || step(next) == nullptr) break;
    }
    return written;
  }

 private:
  // out = LN(x) (·weight + bias when given), over C values.
  void layer_norm(float* out, const float* x, const float* weight, const float* bias) const noexcept {
    const index_t C = dims::C;
    float mean = 0.0f;
    for (index_t i = 0; i < C; ++i) mean += x[i];
    mean /= static_cast<float>(C);
    float var = 0.0f;
    for (index_t i = 0; i < C; ++i) var += (x[i] - mean) * (x[i] - mean);
    var /= static_cast<float>(C);
    const float rstd = 1.0f / math::sqrt(var + dims::eps);
    for (index_t i = 0; i < C; ++i) {
      const float y = (x[i] - mean) * rstd;
      out[i] = weight != nullptr ? y * weight[i] + bias[i] : y;
    }
  }

  // out (+)= Θ(x · Kᵀ) · V for one row x.
  template <index_t P>
  void pattention(const Matrix<Storage, P, dims::C>& keys, const Matrix<Storage, P, dims::C>& values, const float* x,
                  float* out, bool accumulate, index_t scale_tokens) noexcept {
    float* const s = scores_;
    for (index_t p = 0; p < P; ++p) s[p] = keys.dot_row(p, x);
    theta(s, P, scale_tokens);
    if (!accumulate)
      for (index_t i = 0; i < dims::C; ++i) out[i] = 0.0f;
    for (index_t p = 0; p < P; ++p) values.axpy_row(p, s[p], out);
  }

  // Θ of one row of n scores, in place, with Θ's token count N.
  static void theta(float* s, index_t n, index_t N) noexcept {
    const float sqrt_n = math::sqrt(static_cast<float>(N));
    if constexpr (dims::theta == Normalization::l2_norm_gelu) {
      float ss = 0.0f;
      for (index_t i = 0; i < n; ++i) ss += s[i] * s[i];
      const float f = ss == 0.0f ? 0.0f : sqrt_n / math::sqrt(ss);
      for (index_t i = 0; i < n; ++i) s[i] = math::gelu(s[i] * f);
    } else if constexpr (dims::theta == Normalization::gelu_l2_norm) {
      float gg = 0.0f;
      for (index_t i = 0; i < n; ++i) {
        s[i] = math::gelu(s[i]);
        gg += s[i] * s[i];
      }
      const float f = gg == 0.0f ? 0.0f : sqrt_n / math::sqrt(gg);
      for (index_t i = 0; i < n; ++i) s[i] *= f;
    } else {
      float max = s[0];
      for (index_t i = 1; i < n; ++i) max = s[i] > max ? s[i] : max;
      float sum = 0.0f;
      for (index_t i = 0; i < n; ++i) {
        s[i] = math::exp(s[i] - max);
        sum += s[i];
      }
      const float f = static_cast<float>(N) / sum;
      for (index_t i = 0; i < n; ++i) s[i] *= f;
    }
  }

  // Rotary (rotate-half) on the first R dims of every head of x [C], at position t.
  static void rotate(float* x, index_t t) noexcept {
    if constexpr (dims::half > 0) {
      const float* c = rotary_table<Config>.cos + t * dims::half;
      const float* s = rotary_table<Config>.sin + t * dims::half;
      for (index_t h = 0; h < dims::H; ++h) {
        float* head = x + h * dims::D;
        for (index_t j = 0; j < dims::half; ++j) {
          const float x1 = head[j], x2 = head[j + dims::half];
          head[j] = x1 * c[j] - x2 * s[j];
          head[j + dims::half] = x2 * c[j] + x1 * s[j];
        }
      }
    } else {
      (void)x;
      (void)t;
    }
  }

  // context_row = softmax(q · Kᵀ / √D) · V over positions 0..t of layer l, per head.
  void attend(index_t l, index_t t) noexcept {
    const index_t C = dims::C, D = dims::D;
    const float scale = 1.0f / math::sqrt(static_cast<float>(D));
    const float* const keys = keys_ + l * dims::context * C;
    const float* const values = values_ + l * dims::context * C;
    for (index_t h = 0; h < dims::H; ++h) {
      const float* qh = q_ + h * D;
      float max = -__builtin_inff();
      for (index_t u = 0; u <= t; ++u) {
        probs_[u] = scale * kernels::dot(qh, keys + u * C + h * D, D);
        max = probs_[u] > max ? probs_[u] : max;
      }
      float sum = 0.0f;
      for (index_t u = 0; u <= t; ++u) {
        probs_[u] = math::exp(probs_[u] - max);
        sum += probs_[u];
      }
      const float inv = 1.0f / sum;
      float* out = context_row_ + h * D;
      for (index_t i = 0; i < D; ++i) out[i] = 0.0f;
      for (index_t u = 0; u <= t; ++u) kernels::axpy(probs_[u] * inv, values + u * C + h * D, out, D);
    }
  }

  const Weights<Config, Storage>& w_;
  float* keys_;         // (L, context, C) after rotary
  float* values_;       // (L, context, C)
  float* x_;            // (C) the residual stream
  float* normed_;       // (C)
  float* q_;            // (C)
  float* context_row_;  // (C) attention output
  float* scores_;       // (P_max)
  float* probs_;        // (context)
  float* logits_;       // (V)
  index_t length_ = 0;
};

}  // namespace tokenformer::embedded

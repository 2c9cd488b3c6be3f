// tokenformer/kernels/cpu/gemm.hpp: GEMM on the CPU through Eigen, OpenBLAS or oneDNN.
//
// Over the reference: a blocked, vectorized GEMM, multithreaded with OpenMP when called outside a
// parallel region. Three backends (GemmBackend); Eigen's own product is always there, and the build
// links the others where they are found (CMake: TOKENFORMER_GEMM=auto|eigen|openblas|onednn; the
// targets tokenformer::onednn and tokenformer::openblas define TOKENFORMER_HAVE_ONEDNN and
// TOKENFORMER_HAVE_OPENBLAS):
//   - oneDNN's dnnl_sgemm for float (double stays with Eigen: oneDNN has no dgemm);
//   - OpenBLAS's sgemm_ / dgemm_ (the OpenMP build: it shares OpenMP's threads);
//   - Eigen.
// The fastest linked one is the default (oneDNN, then OpenBLAS, then Eigen); the environment variable
// TOKENFORMER_GEMM (read at the first product) or set_gemm_backend() chooses another at run time, so
// that one binary can compare them and every test can run with each.
// Products of a few rows (decoding with a KV cache: one row per sequence) are matrix-vector products
// that Eigen runs on one thread; they read all of B once, so they are bound by memory bandwidth, which
// one core does not saturate. Those are split by columns of C over the OpenMP team, each thread
// streaming its own slice of B, and always run through Eigen, which neither allocates nor starts
// threads for them (a decode step allocates nothing; tested).
//
// Precision (tokenformer::Precision of core/precision.hpp; process-wide like the backend; the trainer
// sets it for its steps): fp32, or bf16 for float products, mixed precision: both operands rounded to
// bfloat16 (round to nearest even), products accumulated in fp32. Every float product is affected,
// including the bias adds that layers/linear.hpp computes as a GEMM with a column of ones. This build rounds copies of
// the operands (thread-local buffers, reused) and multiplies them with the fp32 backend: the numbers of a BF16 GEMM, at
// fp32 speed plus the copies. cpu_has_bf16() tells whether the processor has BF16 instructions (AVX512_BF16 or AMX); a
// BF16 kernel for them is not written yet.
#pragma once

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/eigen.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/precision.hpp"
#include "tokenformer/core/tensor.hpp"

#if TOKENFORMER_HAVE_ONEDNN
#include <dnnl.h>
#endif

#if TOKENFORMER_HAVE_OPENBLAS
// The Fortran BLAS entry points OpenBLAS exports, declared exactly as Eigen's EIGEN_USE_BLAS header
// declares them (so that both may appear in one translation unit; OpenBLAS's own f77blas.h declares
// them differently and cannot), and OpenBLAS's build description.
extern "C" {
int sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
           const float*, const int*, const float*, float*, const int*);
int dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
           const double*, const int*, const double*, double*, const int*);
char* openblas_get_config(void);
}
#endif

namespace tokenformer::kernels {

/// C = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions; see reference::gemm for
/// the exact contract. When beta == 0, C is not read.
template <class T>
void gemm(const cpu&, T* C, index_t ldc,              // (M, N)
          const T* A, index_t lda, bool transpose_a,  // (M, K) or (K, M)
          const T* B, index_t ldb, bool transpose_b,  // (K, N) or (N, K)
          index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0));

/// The GEMM libraries kernels::gemm can call on the CPU.
enum class GemmBackend {
  eigen,     ///< Eigen's own product (always there)
  openblas,  ///< OpenBLAS's sgemm_ / dgemm_ (target tokenformer::openblas)
  onednn,    ///< oneDNN's dnnl_sgemm for float, Eigen for double (target tokenformer::onednn)
};

/// "eigen", "openblas" or "onednn": the names TOKENFORMER_GEMM takes.
inline const char* to_string(GemmBackend backend) noexcept {
  switch (backend) {
    case GemmBackend::openblas: return "openblas";
    case GemmBackend::onednn: return "onednn";
    case GemmBackend::eigen: break;
  }
  return "eigen";
}

/// Whether this build links `backend` (Eigen always; the others where their target is linked).
constexpr bool gemm_backend_available(GemmBackend backend) noexcept {
#if TOKENFORMER_HAVE_OPENBLAS
  constexpr bool openblas = true;
#else
  constexpr bool openblas = false;
#endif
#if TOKENFORMER_HAVE_ONEDNN
  constexpr bool onednn = true;
#else
  constexpr bool onednn = false;
#endif
  return backend == GemmBackend::eigen || (backend == GemmBackend::openblas && openblas) ||
         (backend == GemmBackend::onednn && onednn);
}

/// The fastest backend this build links: oneDNN, then OpenBLAS, then Eigen.
constexpr GemmBackend default_gemm_backend() noexcept {
  return gemm_backend_available(GemmBackend::onednn)     ? GemmBackend::onednn
         : gemm_backend_available(GemmBackend::openblas) ? GemmBackend::openblas
                                                         : GemmBackend::eigen;
}

namespace detail {

/// Why `name` is not a backend this build can use ("" when it is one), and the backend it names.
inline std::string gemm_backend_problem(const std::string& name, GemmBackend& found) {
  for (GemmBackend backend : {GemmBackend::eigen, GemmBackend::openblas, GemmBackend::onednn}) {
    if (name != to_string(backend)) continue;
    found = backend;
    if (gemm_backend_available(backend)) return "";
    return "GEMM backend '" + name + "' is not linked into this program (linked: eigen" +
           (gemm_backend_available(GemmBackend::openblas) ? ", openblas" : "") +
           (gemm_backend_available(GemmBackend::onednn) ? ", onednn" : "") +
           "; CMake: TOKENFORMER_GEMM=auto links every backend found)";
  }
  return "unknown GEMM backend '" + name + "' (expected eigen, openblas or onednn)";
}

}  // namespace detail

/// The backend named `name` ("eigen", "openblas", "onednn"); config_error for any other name and for
/// one this build does not link.
inline GemmBackend parse_gemm_backend(const std::string& name) {
  GemmBackend backend = GemmBackend::eigen;
  const std::string problem = detail::gemm_backend_problem(name, backend);
  if (!problem.empty()) throw config_error(problem);
  return backend;
}

namespace detail {

/// The process's current backend; -1 until the first use reads TOKENFORMER_GEMM.
inline std::atomic<int>& gemm_backend_state() noexcept {
  static std::atomic<int> state{-1};
  return state;
}

}  // namespace detail

/// The backend kernels::gemm uses now: the one set_gemm_backend chose, else the environment variable
/// TOKENFORMER_GEMM (eigen, openblas or onednn; config_error for another name or one not linked), else
/// default_gemm_backend().
inline GemmBackend gemm_backend() {
  const int current = detail::gemm_backend_state().load(std::memory_order_relaxed);
  if (current >= 0) return static_cast<GemmBackend>(current);
  const char* name = std::getenv("TOKENFORMER_GEMM");
  GemmBackend backend = default_gemm_backend();
  if (name != nullptr && name[0] != '\0') {
    const std::string problem = detail::gemm_backend_problem(name, backend);
    if (!problem.empty()) throw config_error("environment variable TOKENFORMER_GEMM: " + problem);
  }
  detail::gemm_backend_state().store(static_cast<int>(backend), std::memory_order_relaxed);
  return backend;
}

/// Makes every later kernels::gemm of the process use `backend` (config_error if this build does not
/// link it). Not to be called while another thread runs a product.
inline void set_gemm_backend(GemmBackend backend) {
  if (!gemm_backend_available(backend)) (void)parse_gemm_backend(to_string(backend));  // throws
  detail::gemm_backend_state().store(static_cast<int>(backend), std::memory_order_relaxed);
}

namespace detail {

/// The process's current precision of float products (a Precision value).
inline std::atomic<int>& gemm_precision_state() noexcept {
  static std::atomic<int> state{static_cast<int>(Precision::fp32)};
  return state;
}

}  // namespace detail

/// The precision of kernels::gemm's float products now (fp32 unless set_gemm_precision changed it).
inline Precision gemm_precision() noexcept {
  return static_cast<Precision>(detail::gemm_precision_state().load(std::memory_order_relaxed));
}

/// Makes every later float kernels::gemm of the process use `precision` (double products stay
/// double). config_error for a value outside the enum. Not to be called while another thread runs a
/// product; GemmPrecisionScope sets it for a scope.
inline void set_gemm_precision(Precision precision) {
  check_precision(precision);
  detail::gemm_precision_state().store(static_cast<int>(precision), std::memory_order_relaxed);
}

/// Sets the GEMM precision for its lifetime and restores the previous one after (the trainer wraps
/// each step and each evaluation in one).
class GemmPrecisionScope {
 public:
  /// Switches to `precision` (config_error for a value outside the enum).
  explicit GemmPrecisionScope(Precision precision) : previous_(gemm_precision()) { set_gemm_precision(precision); }
  ~GemmPrecisionScope() {
    detail::gemm_precision_state().store(static_cast<int>(previous_), std::memory_order_relaxed);
  }
  GemmPrecisionScope(const GemmPrecisionScope&) = delete;             ///< not copyable
  GemmPrecisionScope& operator=(const GemmPrecisionScope&) = delete;  ///< not assignable

 private:
  Precision previous_;
};

/// Whether this processor has BF16 dot-product instructions (AVX512_BF16 or AMX-BF16).
inline bool cpu_has_bf16() noexcept {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(__clang__)
  return __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

/// x rounded to the nearest bfloat16 (8 significant bits, ties to even), as a float: what a BF16
/// GEMM multiplies. Infinities stay; NaN stays NaN; a finite value past bfloat16's range becomes ±inf.
inline float round_to_bf16(float x) noexcept {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return x;  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  bits &= 0xffff0000u;
  float rounded = 0;
  std::memcpy(&rounded, &bits, sizeof rounded);
  return rounded;
}

/// The current precision in words, for benchmarks: "fp32", or "bf16 (this CPU has [no] BF16
/// instructions; operands rounded to bfloat16, products in fp32 kernels)".
inline std::string gemm_precision_description() {
  if (gemm_precision() == Precision::fp32) return "fp32";
  return std::string("bf16 (") +
         (cpu_has_bf16() ? "this CPU has BF16 instructions" : "this CPU has no BF16 instructions") +
         "; operands rounded to bfloat16, products in fp32 kernels)";
}

/// The current backend with its library's version: "onednn (oneDNN 2.6.3, OpenMP)", "openblas
/// (OpenBLAS 0.3.21 ...)", "eigen (Eigen 3.4.0)". Benchmarks print it.
inline std::string gemm_backend_description() {
  const GemmBackend backend = gemm_backend();
  std::string text = to_string(backend);
#if TOKENFORMER_HAVE_ONEDNN
  if (backend == GemmBackend::onednn) {
    const dnnl_version_t* v = dnnl_version();
    return text + " (oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch) + (v->cpu_runtime == DNNL_RUNTIME_OMP ? ", OpenMP" : ", not OpenMP") + ")";
  }
#endif
#if TOKENFORMER_HAVE_OPENBLAS
  if (backend == GemmBackend::openblas) return text + " (" + openblas_get_config() + ")";
#endif
  return text + " (Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
         std::to_string(EIGEN_MINOR_VERSION) + ")";
}

namespace detail {

/// Rows of C at most this many (and B at least 2^18 values) take the column-split path.
constexpr index_t gemm_few_rows = 8;

/// Whether to split a product of few rows by columns over the OpenMP team (see the header comment).
inline bool gemm_split_columns(index_t M, index_t N, index_t K) {
#if TOKENFORMER_OPENMP
  return M <= gemm_few_rows && static_cast<double>(N) * static_cast<double>(K) >= double(1 << 18) &&
         omp_get_max_threads() > 1 && !omp_in_parallel();
#else
  (void)M, (void)N, (void)K;
  return false;
#endif
}

/// Whether a library GEMM takes these sizes: every size and leading dimension fits its int (OpenBLAS)
/// and each leading dimension is at least its row length, as BLAS requires (row-major here).
inline bool library_gemm_takes(index_t lda, bool transpose_a, index_t ldb, bool transpose_b, index_t ldc, index_t M,
                               index_t N, index_t K) {
  const index_t limit = INT_MAX;
  return M <= limit && N <= limit && K <= limit && lda <= limit && ldb <= limit && ldc <= limit &&
         lda >= std::max<index_t>(1, transpose_a ? M : K) && ldb >= std::max<index_t>(1, transpose_b ? K : N) &&
         ldc >= std::max<index_t>(1, N);
}

/// C = alpha · op(A) · op(B) + beta · C through the library `backend` (not Eigen); false where that
/// library does not take the call (double on oneDNN, sizes library_gemm_takes refuses), which the
/// caller then computes with Eigen. M, N, K > 0.
template <class T>
bool library_gemm(GemmBackend backend, T* C, index_t ldc, const T* A, index_t lda, bool transpose_a, const T* B,
                  index_t ldb, bool transpose_b, index_t M, index_t N, index_t K, T alpha, T beta) {
  if (backend == GemmBackend::eigen || !library_gemm_takes(lda, transpose_a, ldb, transpose_b, ldc, M, N, K))
    return false;
#if TOKENFORMER_HAVE_ONEDNN
  if constexpr (std::is_same_v<T, float>) {
    if (backend == GemmBackend::onednn) {
      const dnnl_status_t status =
          dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      if (status != dnnl_success)
        throw error("oneDNN dnnl_sgemm failed with status " + std::to_string(static_cast<int>(status)));
      return true;
    }
  }
#endif
#if TOKENFORMER_HAVE_OPENBLAS
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    if (backend == GemmBackend::openblas) {
      // Column-major BLAS sees the row-major C as Cᵀ = op(B)ᵀ · op(A)ᵀ, and each row-major operand as
      // its transpose: so B comes first, and each keeps its own transpose flag.
      const char tb = transpose_b ? 'T' : 'N', ta = transpose_a ? 'T' : 'N';
      const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
      const int ld_b = static_cast<int>(ldb), ld_a = static_cast<int>(lda), ld_c = static_cast<int>(ldc);
      if constexpr (std::is_same_v<T, float>)
        sgemm_(&tb, &ta, &m, &n, &k, &alpha, B, &ld_b, A, &ld_a, &beta, C, &ld_c);
      else
        dgemm_(&tb, &ta, &m, &n, &k, &alpha, B, &ld_b, A, &ld_a, &beta, C, &ld_c);
      return true;
    }
  }
#endif
  (void)C, (void)A, (void)B, (void)alpha, (void)beta;
  return false;
}

}  // namespace detail

namespace detail {

/// gemm at the operands' own precision (see gemm).
template <class T>
void gemm_native(const cpu& device, T* C, index_t ldc,       // (M, N)
                 const T* A, index_t lda, bool transpose_a,  // (M, K) or (K, M)
                 const T* B, index_t ldb, bool transpose_b,  // (K, N) or (N, K)
                 index_t M, index_t N, index_t K, T alpha, T beta) {
  if (M > detail::gemm_few_rows && N > 0 && K > 0 &&
      detail::library_gemm(gemm_backend(), C, ldc, A, lda, transpose_a, B, ldb, transpose_b, M, N, K, alpha, beta))
    return;
#if TOKENFORMER_OPENMP
  if (K > 0 && detail::gemm_split_columns(M, N, K)) {
#pragma omp parallel
    {
      const index_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const index_t chunk = ((N + threads - 1) / threads + 15) / 16 * 16;  // whole cache lines of C
      const index_t n0 = std::min(N, t * chunk), n1 = std::min(N, n0 + chunk);
      if (n1 > n0)  // inside the team, so this call runs on this thread alone
        gemm_native(device, C + n0, ldc, A, lda, transpose_a, transpose_b ? B + n0 * ldb : B + n0, ldb, transpose_b, M,
                    n1 - n0, K, alpha, beta);
    }
    return;
  }
#endif
  using Stride = Eigen::OuterStride<>;
  using Out = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Stride>;
  using In = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Stride>;
  if (M == 0 || N == 0) return;
  Out c(C, M, N, Stride(ldc));
  if (K == 0) {
    if (beta == T(0))
      c.setZero();
    else
      c *= beta;
    return;
  }
  In a(A, transpose_a ? K : M, transpose_a ? M : K, Stride(lda));
  In b(B, transpose_b ? N : K, transpose_b ? K : N, Stride(ldb));
  if (beta == T(0)) {
    if (!transpose_a && !transpose_b)
      c.noalias() = alpha * a * b;
    else if (!transpose_a)
      c.noalias() = alpha * a * b.transpose();
    else if (!transpose_b)
      c.noalias() = alpha * a.transpose() * b;
    else
      c.noalias() = alpha * a.transpose() * b.transpose();
  } else {
    if (beta != T(1)) c *= beta;
    if (!transpose_a && !transpose_b)
      c.noalias() += alpha * a * b;
    else if (!transpose_a)
      c.noalias() += alpha * a * b.transpose();
    else if (!transpose_b)
      c.noalias() += alpha * a.transpose() * b;
    else
      c.noalias() += alpha * a.transpose() * b.transpose();
  }
}

/// The rows x cols matrix at `src` (leading dimension ld) rounded to bfloat16 into `dst` (dense,
/// leading dimension cols), which grows as needed.
inline const float* rounded_to_bf16(std::vector<float>& dst, const float* src, index_t rows, index_t cols, index_t ld) {
  dst.resize(static_cast<std::size_t>(rows * cols));
  for (index_t r = 0; r < rows; ++r) {
    const float* in = src + r * ld;
    float* out = dst.data() + r * cols;
    for (index_t c = 0; c < cols; ++c) out[c] = round_to_bf16(in[c]);
  }
  return dst.data();
}

}  // namespace detail

template <class T>
void gemm(const cpu& device, T* C, index_t ldc,       // (M, N)
          const T* A, index_t lda, bool transpose_a,  // (M, K) or (K, M)
          const T* B, index_t ldb, bool transpose_b,  // (K, N) or (N, K)
          index_t M, index_t N, index_t K, T alpha, T beta) {
  if constexpr (std::is_same_v<T, float>) {
    if (M > 0 && N > 0 && K > 0 && gemm_precision() == Precision::bf16) {
      // Each thread (attention calls this inside its OpenMP team) keeps its own two buffers.
      thread_local std::vector<float> a_buffer, b_buffer;
      const index_t a_rows = transpose_a ? K : M, a_cols = transpose_a ? M : K;
      const index_t b_rows = transpose_b ? N : K, b_cols = transpose_b ? K : N;
      const float* a = detail::rounded_to_bf16(a_buffer, A, a_rows, a_cols, lda);
      const float* b = detail::rounded_to_bf16(b_buffer, B, b_rows, b_cols, ldb);
      detail::gemm_native(device, C, ldc, a, a_cols, transpose_a, b, b_cols, transpose_b, M, N, K, alpha, beta);
      return;
    }
  }
  detail::gemm_native(device, C, ldc, A, lda, transpose_a, B, ldb, transpose_b, M, N, K, alpha, beta);
}

/// `batch` independent GEMMs: C_i = alpha · op(A_i) · op(B_i) + beta · C_i with A_i = A + i·stride_a
/// (and likewise B_i, C_i); each as in gemm.
template <class T>
void gemm_strided_batched(const cpu& device, T* C, index_t ldc, index_t stride_c,       // (M, N) each
                          const T* A, index_t lda, index_t stride_a, bool transpose_a,  // (M, K) or (K, M)
                          const T* B, index_t ldb, index_t stride_b, bool transpose_b,  // (K, N) or (N, K)
                          index_t batch, index_t M, index_t N, index_t K, T alpha = T(1), T beta = T(0)) {
  if (batch < 0) throw shape_error("gemm_strided_batched: negative batch count");
  for (index_t i = 0; i < batch; ++i)
    gemm(device, C + i * stride_c, ldc, A + i * stride_a, lda, transpose_a, B + i * stride_b, ldb, transpose_b, M, N, K,
         alpha, beta);
}

}  // namespace tokenformer::kernels

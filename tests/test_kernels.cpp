// Every fast CPU kernel against its plain reference version, on random shapes including odd sizes,
// in float and double.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "attention_cases.hpp"
#include "device_cases.hpp"
#include "test_util.hpp"
#include "tokenformer/kernels/cpu.hpp"
#include "tokenformer/kernels/reference.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_kernels {

using namespace tokenformer;
using test_util::max_scaled_diff;
using test_util::random_vector;

namespace {

// float kernels accumulate in float; the reference in double.
template <class T>
constexpr double tolerance() {
  return std::is_same<T, float>::value ? 2e-5 : 1e-12;
}

template <class T>
void check_gemm(index_t M, index_t N, index_t K, bool ta, bool tb, T alpha, T beta, std::uint64_t seed) {
  const index_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;  // padded leading dims
  const auto A = random_vector<T>(static_cast<std::size_t>((ta ? K : M) * lda), seed);
  const auto B = random_vector<T>(static_cast<std::size_t>((tb ? N : K) * ldb), seed + 1);
  auto C_fast = random_vector<T>(static_cast<std::size_t>(M * ldc), seed + 2);
  auto C_ref = C_fast;
  kernels::gemm(cpu{}, C_fast.data(), ldc, A.data(), lda, ta, B.data(), ldb, tb, M, N, K, alpha, beta);
  kernels::reference::gemm(C_ref.data(), ldc, A.data(), lda, ta, B.data(), ldb, tb, M, N, K, alpha, beta);
  // The error of a K-term dot product grows like sqrt(K).
  CHECK(max_scaled_diff(C_fast, C_ref) <= tolerance<T>() * std::sqrt(static_cast<double>(K) + 1.0) * 4);
}

}  // namespace

TEMPLATE_TEST_CASE("gemm matches the reference for all transposes, odd sizes and strides", "[kernels][gemm]", float,
                   double) {
  std::uint64_t seed = 1;
  for (auto [M, N, K] : {std::array<index_t, 3>{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 96, 31}, {3, 129, 200}}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check_gemm<TestType>(M, N, K, ta, tb, TestType(1), TestType(0), seed++);
        check_gemm<TestType>(M, N, K, ta, tb, TestType(0.5), TestType(1), seed++);
        check_gemm<TestType>(M, N, K, ta, tb, TestType(-2), TestType(0.25), seed++);
      }
  }
}

namespace {

/// Restores the process's GEMM backend when a test that switches it ends.
struct BackendGuard {
  kernels::GemmBackend saved = kernels::gemm_backend();
  ~BackendGuard() { kernels::set_gemm_backend(saved); }
};

constexpr kernels::GemmBackend all_backends[] = {kernels::GemmBackend::eigen, kernels::GemmBackend::openblas,
                                                 kernels::GemmBackend::onednn};

}  // namespace

TEMPLATE_TEST_CASE("gemm matches the reference with every linked backend", "[kernels][gemm][backend]", float, double) {
  BackendGuard guard;
  std::uint64_t seed = 500;
  for (auto backend : all_backends) {
    if (!kernels::gemm_backend_available(backend)) continue;
    kernels::set_gemm_backend(backend);
    INFO("backend " << kernels::to_string(backend));
    CHECK(kernels::gemm_backend() == backend);
    // M above gemm_few_rows, so that the library is called (smaller M always runs through Eigen).
    for (auto [M, N, K] : {std::array<index_t, 3>{9, 1, 1}, {33, 17, 65}, {64, 96, 31}, {130, 3, 200}, {257, 70, 9}}) {
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb);
          check_gemm<TestType>(M, N, K, ta, tb, TestType(1), TestType(0), seed++);
          check_gemm<TestType>(M, N, K, ta, tb, TestType(0.5), TestType(1), seed++);
          check_gemm<TestType>(M, N, K, ta, tb, TestType(-2), TestType(0.25), seed++);
        }
    }
    // beta = 0 must not read C (a library path too: M = 16 rows).
    const index_t M = 16, N = 5, K = 3;
    std::vector<TestType> A(M * K, TestType(1)), B(K * N, TestType(2)),
        C(M * N, std::numeric_limits<TestType>::quiet_NaN());
    kernels::gemm(cpu{}, C.data(), N, A.data(), K, false, B.data(), N, false, M, N, K);
    CHECK(C == std::vector<TestType>(M * N, TestType(6)));  // 3 terms of 1 x 2
  }
}

TEST_CASE("the GEMM backend is chosen by name, and an unknown or unlinked one is refused", "[kernels][gemm][backend]") {
  BackendGuard guard;
  CHECK(kernels::gemm_backend_available(kernels::GemmBackend::eigen));
  CHECK(kernels::parse_gemm_backend("eigen") == kernels::GemmBackend::eigen);
  CHECK_THROWS_WITH(kernels::parse_gemm_backend("mkl"),
                    Catch::Contains("unknown GEMM backend 'mkl' (expected eigen, openblas or onednn)"));
  for (auto backend : all_backends) {
    if (kernels::gemm_backend_available(backend)) {
      kernels::set_gemm_backend(backend);
      CHECK(kernels::gemm_backend_description().rfind(kernels::to_string(backend), 0) == 0);
    } else {
      CHECK_THROWS_AS(kernels::set_gemm_backend(backend), config_error);
      CHECK_THROWS_WITH(kernels::parse_gemm_backend(kernels::to_string(backend)), Catch::Contains("is not linked"));
    }
  }
  // The environment variable, when set (CI runs this program once per backend), chose the backend the
  // process started with: the guard saved it.
  if (const char* name = std::getenv("TOKENFORMER_GEMM"); name != nullptr && name[0] != '\0')
    CHECK(std::string(kernels::to_string(guard.saved)) == name);
  // The default is the fastest linked one.
  CHECK(kernels::default_gemm_backend() ==
        (kernels::gemm_backend_available(kernels::GemmBackend::onednn)     ? kernels::GemmBackend::onednn
         : kernels::gemm_backend_available(kernels::GemmBackend::openblas) ? kernels::GemmBackend::openblas
                                                                           : kernels::GemmBackend::eigen));
}

TEST_CASE("round_to_bf16 keeps 8 significant bits, rounding half to even, by hand", "[kernels][gemm][bf16]") {
  using kernels::round_to_bf16;
  const float ulp = std::ldexp(1.0f, -7);  // bfloat16's spacing in [1, 2)
  CHECK(round_to_bf16(1.0f) == 1.0f);
  CHECK(round_to_bf16(-2.5f) == -2.5f);
  CHECK(round_to_bf16(1.0f + ulp / 2) == 1.0f);                                // tie: to the even 1
  CHECK(round_to_bf16(1.0f + 3 * ulp / 2) == 1.0f + 2 * ulp);                  // tie: to the even 1 + 2 ulp
  CHECK(round_to_bf16(1.0f + ulp / 2 + std::ldexp(1.0f, -20)) == 1.0f + ulp);  // above the tie: up
  CHECK(round_to_bf16(1.0f + ulp / 2 - std::ldexp(1.0f, -20)) == 1.0f);        // below the tie: down
  CHECK(round_to_bf16(3.14159265f) == 3.140625f);                              // 0x4049 0fdb -> 0x4049
  CHECK(round_to_bf16(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  CHECK(round_to_bf16(std::numeric_limits<float>::max()) == std::numeric_limits<float>::infinity());
  CHECK(round_to_bf16(-std::numeric_limits<float>::max()) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  CHECK(parse_precision("bf16") == Precision::bf16);
  CHECK(parse_precision("fp32") == Precision::fp32);
  CHECK_THROWS_WITH(parse_precision("fp16"), Catch::Contains("unknown precision 'fp16' (expected fp32 or bf16)"));
  CHECK_THROWS_AS(kernels::set_gemm_precision(static_cast<Precision>(7)), config_error);
}

TEST_CASE("gemm in bf16 multiplies the operands rounded to bfloat16, with every linked backend",
          "[kernels][gemm][bf16]") {
  BackendGuard guard;
  REQUIRE(kernels::gemm_precision() == Precision::fp32);
  std::uint64_t seed = 900;
  for (auto backend : all_backends) {
    if (!kernels::gemm_backend_available(backend)) continue;
    kernels::set_gemm_backend(backend);
    // M = 1 and 5 take the few-rows path (M = 2 split over the threads: N·K >= 2^18), the others the
    // library's.
    for (auto [M, N, K] :
         {std::array<index_t, 3>{1, 300, 70}, {2, 4096, 80}, {5, 33, 64}, {40, 17, 65}, {130, 70, 200}}) {
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          INFO("backend " << kernels::to_string(backend) << " M=" << M << " N=" << N << " K=" << K << " ta=" << ta
                          << " tb=" << tb);
          const index_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
          const auto A = random_vector<float>(static_cast<std::size_t>((ta ? K : M) * lda), seed++);
          const auto B = random_vector<float>(static_cast<std::size_t>((tb ? N : K) * ldb), seed++);
          auto C_bf16 = random_vector<float>(static_cast<std::size_t>(M * ldc), seed++);
          auto C_fp32 = C_bf16;
          // The exact product of the rounded operands, in double.
          std::vector<double> A_rounded(A.size()), B_rounded(B.size()), C_ref(C_bf16.begin(), C_bf16.end());
          for (std::size_t i = 0; i < A.size(); ++i) A_rounded[i] = kernels::round_to_bf16(A[i]);
          for (std::size_t i = 0; i < B.size(); ++i) B_rounded[i] = kernels::round_to_bf16(B[i]);
          kernels::reference::gemm(C_ref.data(), ldc, A_rounded.data(), lda, ta, B_rounded.data(), ldb, tb, M, N, K,
                                   0.5, 0.25);
          {
            const kernels::GemmPrecisionScope bf16(Precision::bf16);
            CHECK(kernels::gemm_precision() == Precision::bf16);
            kernels::gemm(cpu{}, C_bf16.data(), ldc, A.data(), lda, ta, B.data(), ldb, tb, M, N, K, 0.5f, 0.25f);
          }
          CHECK(kernels::gemm_precision() == Precision::fp32);  // the scope restored it
          kernels::gemm(cpu{}, C_fp32.data(), ldc, A.data(), lda, ta, B.data(), ldb, tb, M, N, K, 0.5f, 0.25f);
          double bf16_error = 0.0, fp32_error = 0.0;
          for (index_t i = 0; i < M; ++i)
            for (index_t j = 0; j < N; ++j) {
              const auto at = static_cast<std::size_t>(i * ldc + j);
              bf16_error = std::max(bf16_error, std::abs(C_bf16[at] - C_ref[at]));
              fp32_error = std::max(fp32_error, std::abs(C_fp32[at] - C_ref[at]));
            }
          // Against the product of the rounded operands: the error of fp32 accumulation over K terms
          // (within `tolerance`); the fp32 product of the unrounded operands is ~2^-9·sqrt(K) away
          // (rounding each operand moves it by up to 2^-9 relative), at least 10x the tolerance.
          const double tolerance = 8e-6 * std::sqrt(static_cast<double>(K));
          CHECK(bf16_error <= tolerance);
          CHECK(fp32_error >= 10 * tolerance);
        }
    }
  }
  // Double products ignore the setting.
  const kernels::GemmPrecisionScope bf16(Precision::bf16);
  check_gemm<double>(33, 17, 65, false, true, 1.0, 0.0, 1234);
}

TEST_CASE("an exception in a parallel kernel task reaches the caller instead of ending the process", "[kernels]") {
  // The attention kernels run their tasks in an OpenMP team; a task that throws (kernels::gemm's
  // config_error for a bad TOKENFORMER_GEMM, bad_alloc) must not leave the region (std::terminate).
  std::atomic<int> ran{0};
  const auto run = [&](index_t task, std::vector<float>& scratch) {
    CHECK(scratch.size() == 16u);
    ++ran;
    if (task == 3) throw config_error("task 3 failed");
  };
  for (bool parallel : {true, false}) {
    ran = 0;
    CHECK_THROWS_WITH(kernels::detail::for_each_task<float>(64, parallel, 16, run), Catch::Contains("task 3 failed"));
    CHECK(ran.load() >= 4);
  }
}

TEST_CASE("gemm with beta = 0 ignores NaN in C", "[kernels][gemm]") {
  std::vector<float> A{1, 2, 3, 4}, B{5, 6, 7, 8}, C(4, std::numeric_limits<float>::quiet_NaN());
  kernels::gemm(cpu{}, C.data(), 2, A.data(), 2, false, B.data(), 2, false, 2, 2, 2);
  CHECK(C == std::vector<float>{19, 22, 43, 50});  // computed by hand
}

TEMPLATE_TEST_CASE("pattention_norm matches the reference for every normalization", "[kernels][pattention_norm]", float,
                   double) {
  std::uint64_t seed = 100;
  for (auto kind : all_normalizations) {
    for (auto [rows, n] : {std::array<index_t, 2>{1, 1}, {3, 7}, {17, 31}, {5, 64}, {9, 257}, {300, 130}}) {
      const auto scores = random_vector<TestType>(static_cast<std::size_t>(rows * n), seed++, 2.0);
      std::vector<TestType> fast(scores.size()), ref(scores.size());
      kernels::pattention_norm_forward(cpu{}, fast.data(), scores.data(), rows, n, kind, n);
      kernels::reference::pattention_norm_forward(ref.data(), scores.data(), rows, n, kind, n);
      INFO(to_string(kind) << " rows=" << rows << " n=" << n);
      CHECK(max_scaled_diff(fast, ref) <= tolerance<TestType>() * 4);
      // In place gives the same result.
      auto inplace = scores;
      kernels::pattention_norm_forward(cpu{}, inplace.data(), inplace.data(), rows, n, kind, n);
      CHECK(inplace == fast);
      // A pinned token count only changes the scale factor.
      kernels::pattention_norm_forward(cpu{}, fast.data(), scores.data(), rows, n, kind, 2 * n + 1);
      kernels::reference::pattention_norm_forward(ref.data(), scores.data(), rows, n, kind, 2 * n + 1);
      CHECK(max_scaled_diff(fast, ref) <= tolerance<TestType>() * 4);
    }
  }
}

TEST_CASE("gelu values computed by hand (exact GeLU, torch.nn.functional.gelu's default)", "[kernels][gelu]") {
  // gelu(x) = x·Φ(x): Φ(1) = 0.8413447460685429, Φ(-1) = 1 - Φ(1); gelu'(x) = Φ(x) + x·φ(x).
  const std::vector<double> x{1.0, -1.0, 0.0};
  std::vector<double> y(3), dx{2.0, 2.0, 2.0};
  kernels::gelu_forward(cpu{}, y.data(), x.data(), 3);
  CHECK(y[0] == Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(y[1] == Approx(-0.15865525393145707).epsilon(1e-14));
  CHECK(y[2] == 0.0);
  kernels::gelu_backward(cpu{}, dx.data(), dx.data(), x.data(), 3);
  const double phi1 = std::exp(-0.5) / std::sqrt(2.0 * 3.14159265358979323846);
  CHECK(dx[0] == Approx(2.0 * (0.8413447460685429 + phi1)).epsilon(1e-14));
  CHECK(dx[1] == Approx(2.0 * (0.15865525393145707 - phi1)).epsilon(1e-14));
  CHECK(dx[2] == Approx(1.0).epsilon(1e-14));
}

TEST_CASE("pattention_norm values computed by hand", "[kernels][pattention_norm]") {
  // Row [3, 4]: ||s|| = 5, n = 2, so s·√2/5 = [0.8485, 1.1314] before GeLU.
  const std::vector<double> s{3.0, 4.0};
  std::vector<double> out(2);
  kernels::pattention_norm_forward(cpu{}, out.data(), s.data(), 1, 2, Normalization::l2_norm_gelu, 2);
  const double a = 3.0 * std::sqrt(2.0) / 5.0, b = 4.0 * std::sqrt(2.0) / 5.0;
  CHECK(out[0] == Approx(0.5 * a * (1 + std::erf(a / std::sqrt(2.0)))).epsilon(1e-14));
  CHECK(out[1] == Approx(0.5 * b * (1 + std::erf(b / std::sqrt(2.0)))).epsilon(1e-14));
  // softmax: exp / Σexp · n; rows sum to n.
  kernels::pattention_norm_forward(cpu{}, out.data(), s.data(), 1, 2, Normalization::softmax, 2);
  CHECK(out[0] == Approx(2.0 / (1.0 + std::exp(1.0))).epsilon(1e-14));
  CHECK(out[0] + out[1] == Approx(2.0).epsilon(1e-14));
}

TEMPLATE_TEST_CASE("pattention_norm turns an all-zero row into zeros and leaves other rows exact",
                   "[kernels][pattention_norm]", float, double) {
  const index_t rows = 3, n = 19;
  auto scores = random_vector<TestType>(static_cast<std::size_t>(rows * n), 7);
  for (index_t i = 0; i < n; ++i) scores[static_cast<std::size_t>(n + i)] = TestType(0);  // row 1 is zero
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm}) {
    std::vector<TestType> fast(scores.size()), ref(scores.size());
    kernels::pattention_norm_forward(cpu{}, fast.data(), scores.data(), rows, n, kind, n);
    kernels::reference::pattention_norm_forward(ref.data(), scores.data(), rows, n, kind, n);
    for (index_t i = 0; i < n; ++i) CHECK(fast[static_cast<std::size_t>(n + i)] == TestType(0));
    CHECK(max_scaled_diff(fast, ref) <= tolerance<TestType>() * 4);
  }
  // Under softmax an all-zero row is uniform: every weight is exactly 1.
  std::vector<TestType> out(scores.size());
  kernels::pattention_norm_forward(cpu{}, out.data(), scores.data(), rows, n, Normalization::softmax, n);
  for (index_t i = 0; i < n; ++i) CHECK(out[static_cast<std::size_t>(n + i)] == Approx(1.0).epsilon(1e-6));
}

TEST_CASE("pattention_norm propagates NaN instead of hiding it", "[kernels][pattention_norm]") {
  std::vector<float> s{1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f}, out(3);
  for (auto kind : all_normalizations) {
    kernels::pattention_norm_forward(cpu{}, out.data(), s.data(), 1, 3, kind, 3);
    CHECK(std::isnan(out[0]));
  }
}

TEMPLATE_TEST_CASE("layer_norm matches the reference, with and without affine parameters", "[kernels][layer_norm]",
                   float, double) {
  std::uint64_t seed = 200;
  for (auto [rows, C] : {std::array<index_t, 2>{1, 1}, {3, 5}, {17, 64}, {40, 77}, {513, 96}}) {
    auto x = random_vector<TestType>(static_cast<std::size_t>(rows * C), seed++, 3.0);
    for (auto& v : x) v += TestType(5);  // a large mean tests the two-pass variance
    const auto w = random_vector<TestType>(static_cast<std::size_t>(C), seed++);
    const auto b = random_vector<TestType>(static_cast<std::size_t>(C), seed++);
    for (bool affine : {false, true}) {
      std::vector<TestType> fast(x.size()), ref(x.size()), mean_f(static_cast<std::size_t>(rows)),
          mean_r(mean_f.size()), rstd_f(mean_f.size()), rstd_r(mean_f.size());
      const TestType* wp = affine ? w.data() : nullptr;
      const TestType* bp = affine ? b.data() : nullptr;
      kernels::layer_norm_forward(cpu{}, fast.data(), mean_f.data(), rstd_f.data(), x.data(), wp, bp, rows, C, 1e-5);
      kernels::reference::layer_norm_forward(ref.data(), mean_r.data(), rstd_r.data(), x.data(), wp, bp, rows, C, 1e-5);
      INFO("rows=" << rows << " C=" << C << " affine=" << affine);
      CHECK(max_scaled_diff(fast, ref) <= tolerance<TestType>() * 4);
      CHECK(max_scaled_diff(mean_f, mean_r) <= tolerance<TestType>());
      CHECK(max_scaled_diff(rstd_f, rstd_r) <= tolerance<TestType>());
    }
  }
}

TEMPLATE_TEST_CASE("rotary matches the reference for partial and full rotation", "[kernels][rotary]", float, double) {
  std::uint64_t seed = 300;
  struct Case {
    index_t B, T, H, D, rot, offset;
  };
  for (auto c : {Case{1, 1, 1, 2, 2, 0}, Case{2, 7, 3, 8, 2, 0}, Case{2, 13, 4, 16, 4, 5}, Case{1, 70, 2, 12, 12, 0},
                 Case{3, 9, 2, 10, 0, 0}}) {
    auto x = random_vector<TestType>(static_cast<std::size_t>(c.B * c.T * c.H * c.D), seed++);
    auto fast = x, ref = x;
    kernels::rotary_forward(cpu{}, fast.data(), c.B, c.T, c.H, c.D, c.rot, 10000.0, c.offset);
    kernels::reference::rotary_forward(ref.data(), c.B, c.T, c.H, c.D, c.rot, 10000.0, c.offset);
    INFO("T=" << c.T << " D=" << c.D << " rot=" << c.rot);
    CHECK(max_scaled_diff(fast, ref) <= tolerance<TestType>() * 4);
    if (c.rot == 0) CHECK(fast == x);
  }
}

TEST_CASE("rotary by hand: position p rotates the pair (x_j, x_j+r) by p·θ_j", "[kernels][rotary]") {
  // One head of dim 4, all rotated: r = 2, θ_0 = 1, θ_1 = 10000^(-1/2) = 0.01. Position 1.
  std::vector<double> x{1.0, 0.0, 0.0, 1.0, /* position 1: */ 1.0, 0.0, 0.0, 1.0};
  kernels::rotary_forward(cpu{}, x.data(), 1, 2, 1, 4, 4, 10000.0, 0);
  CHECK(x[0] == 1.0);                      // position 0 unchanged
  CHECK(x[4] == Approx(std::cos(1.0)));    // x0 cos - x2 sin, x2 = 0
  CHECK(x[6] == Approx(std::sin(1.0)));    // x2 cos + x0 sin
  CHECK(x[5] == Approx(-std::sin(0.01)));  // x1 cos - x3 sin, x1 = 0
  CHECK(x[7] == Approx(std::cos(0.01)));   // x3 cos + x1 sin
}

TEMPLATE_TEST_CASE("attention matches the reference for every mask, cross lengths and many groups",
                   "[kernels][attention]", float, double) {
  // Forward (output and log-sum-exp) and the backward from the forward's results, against the
  // reference device; the same template runs the cuda device in tests/cuda/test_cuda.cu.
  const bool single = std::is_same<TestType, float>::value;
  device_cases::attention_matches_reference<TestType>(tolerance<TestType>() * 4, single ? 1e-4 : 1e-10, {}, cpu{});
}

TEMPLATE_TEST_CASE("every other kernel matches the reference device (one template over devices)", "[kernels][devices]",
                   float, double) {
  // gemm, Θ, LayerNorm, rotary, embedding, cross-entropy and AdamW, forward and backward, with stale
  // outputs; the same template runs the cuda device in tests/cuda/test_cuda.cu.
  const bool single = std::is_same<TestType, float>::value;
  device_cases::kernels_match_reference<TestType>(tolerance<TestType>() * 4, single ? 1e-4 : 1e-10, cpu{});
}

TEST_CASE("attention is causal: the first position sees only itself", "[kernels][attention]") {
  const index_t T = 4, D = 2;
  const auto q = random_vector<float>(T * D, 1), k = random_vector<float>(T * D, 2), v = random_vector<float>(T * D, 3);
  std::vector<float> out(T * D);
  kernels::attention_forward(cpu{}, out.data(), nullptr, q.data(), k.data(), v.data(),
                             kernels::AttentionShape::causal(1, T, 1, D));
  CHECK(out[0] == v[0]);
  CHECK(out[1] == v[1]);
}

TEST_CASE("attention masks by hand and by their defining identities", "[kernels][attention]") {
  using kernels::AttentionMask;
  using kernels::AttentionShape;
  namespace ref = kernels::reference;
  SECTION("bidirectional, one query and two keys, computed by hand") {
    const std::vector<double> q{2.0}, k{0.5, -1.0}, v{3.0, 7.0};
    std::vector<double> out(1), lse(1);
    const AttentionShape s{1, 1, 2, 1, 1, AttentionMask::none, 1, 1};
    kernels::attention_forward(cpu{}, out.data(), lse.data(), q.data(), k.data(), v.data(), s);
    const double e0 = std::exp(1.0), e1 = std::exp(-2.0);
    CHECK(out[0] == Approx((e0 * 3.0 + e1 * 7.0) / (e0 + e1)).epsilon(1e-14));
    CHECK(lse[0] == Approx(std::log(e0 + e1)).epsilon(1e-14));
  }
  const index_t T = 12, H = 2, D = 3, C = H * D;
  const auto q = random_vector<double>(static_cast<std::size_t>(T * C), 11),
             k = random_vector<double>(static_cast<std::size_t>(T * C), 12),
             v = random_vector<double>(static_cast<std::size_t>(T * C), 13);
  std::vector<double> causal(q.size());
  ref::attention_forward(causal.data(), nullptr, q.data(), k.data(), v.data(), AttentionShape::causal(1, T, H, D));
  SECTION("end-aligned causal cross-attention is the last rows of causal self-attention (a KV cache)") {
    const index_t P = 5;
    const std::vector<double> last_q(q.end() - P * C, q.end());
    for (bool fast : {false, true}) {
      std::vector<double> out(static_cast<std::size_t>(P * C));
      const AttentionShape s{1, P, T, H, D, AttentionMask::causal, 1, 1};
      if (fast)
        kernels::attention_forward(cpu{}, out.data(), nullptr, last_q.data(), k.data(), v.data(), s);
      else
        ref::attention_forward(out.data(), nullptr, last_q.data(), k.data(), v.data(), s);
      CHECK(max_scaled_diff(out, std::vector<double>(causal.end() - P * C, causal.end())) <= 1e-14);
    }
  }
  SECTION("block-causal with blocks of one is causal; with one block it is bidirectional") {
    std::vector<double> out(q.size()), none(q.size());
    ref::attention_forward(out.data(), nullptr, q.data(), k.data(), v.data(),
                           AttentionShape{1, T, T, H, D, AttentionMask::block_causal, 1, 1});
    CHECK(max_scaled_diff(out, causal) == 0.0);
    ref::attention_forward(out.data(), nullptr, q.data(), k.data(), v.data(),
                           AttentionShape{1, T, T, H, D, AttentionMask::block_causal, T, T});
    ref::attention_forward(none.data(), nullptr, q.data(), k.data(), v.data(),
                           AttentionShape{1, T, T, H, D, AttentionMask::none, 1, 1});
    CHECK(max_scaled_diff(out, none) == 0.0);
    CHECK(max_scaled_diff(out, causal) > 1e-3);  // the masks do differ
  }
  SECTION("block-causal: query block i is unchanged by keys after block i, changed by keys inside it") {
    const AttentionShape s{1, T, T, H, D, AttentionMask::block_causal, 4, 4};
    std::vector<double> base(q.size()), changed(q.size());
    kernels::attention_forward(cpu{}, base.data(), nullptr, q.data(), k.data(), v.data(), s);
    auto v2 = v;
    for (index_t d = 0; d < C; ++d) v2[static_cast<std::size_t>(7 * C + d)] += 1.0;  // key 7: block 1
    kernels::attention_forward(cpu{}, changed.data(), nullptr, q.data(), k.data(), v2.data(), s);
    for (index_t t = 0; t < T; ++t) {
      double diff = 0.0;
      for (index_t d = 0; d < C; ++d)
        diff = std::max(
            diff, std::abs(base[static_cast<std::size_t>(t * C + d)] - changed[static_cast<std::size_t>(t * C + d)]));
      INFO("query " << t);
      if (t < 4)
        CHECK(diff == 0.0);
      else
        CHECK(diff > 1e-6);  // queries 4..7 see key 7 although it is after some of them
    }
  }
  SECTION("bidirectional attention does not depend on the order of the keys") {
    std::vector<double> out(q.size()), permuted(q.size());
    auto k2 = k, v2 = v;
    for (index_t u = 0; u < T; ++u)
      for (index_t d = 0; d < C; ++d) {
        k2[static_cast<std::size_t>(u * C + d)] = k[static_cast<std::size_t>((T - 1 - u) * C + d)];
        v2[static_cast<std::size_t>(u * C + d)] = v[static_cast<std::size_t>((T - 1 - u) * C + d)];
      }
    const AttentionShape s{1, T, T, H, D, AttentionMask::none, 1, 1};
    kernels::attention_forward(cpu{}, out.data(), nullptr, q.data(), k.data(), v.data(), s);
    kernels::attention_forward(cpu{}, permuted.data(), nullptr, q.data(), k2.data(), v2.data(), s);
    CHECK(max_scaled_diff(out, permuted) <= 1e-14);
  }
}

TEST_CASE("attention rejects shapes it cannot compute", "[kernels][attention]") {
  using kernels::AttentionMask;
  using kernels::AttentionShape;
  std::vector<float> x(64);
  const auto run = [&](const AttentionShape& s) {
    kernels::attention_forward(cpu{}, x.data(), nullptr, x.data(), x.data(), x.data(), s);
  };
  CHECK_THROWS_WITH(run(AttentionShape{1, 4, 3, 1, 2, AttentionMask::causal, 1, 1}),
                    Catch::Contains("the causal mask needs keys >= queries"));
  CHECK_THROWS_WITH(run(AttentionShape{1, 4, 0, 1, 2, AttentionMask::none, 1, 1}),
                    Catch::Contains("queries need at least one key"));
  CHECK_THROWS_WITH(run(AttentionShape{1, 4, 4, 1, 2, AttentionMask::block_causal, 0, 2}),
                    Catch::Contains("query_block >= 1"));
  CHECK_THROWS_AS(run(AttentionShape{-1, 4, 4, 1, 2, AttentionMask::none, 1, 1}), shape_error);
  CHECK_THROWS_AS(run(AttentionShape{1, 4, 4, 1, 0, AttentionMask::none, 1, 1}), shape_error);
  CHECK_THROWS_AS(run(AttentionShape{index_t(1) << 30, index_t(1) << 30, 4, 1, 2, AttentionMask::none, 1, 1}),
                  shape_error);
  CHECK_THROWS_AS(run(AttentionShape{1, 4, 4, 1, 2, static_cast<AttentionMask>(9), 1, 1}), config_error);
  // Nothing to do is not an error.
  CHECK_NOTHROW(run(AttentionShape{0, 4, 4, 1, 2, AttentionMask::causal, 1, 1}));
  CHECK_NOTHROW(run(AttentionShape{1, 0, 0, 1, 2, AttentionMask::none, 1, 1}));
}

TEMPLATE_TEST_CASE("embedding matches the reference", "[kernels][embedding]", float, double) {
  const index_t V = 11, C = 7, N = 23;
  const auto table = random_vector<TestType>(static_cast<std::size_t>(V * C), 5);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(N));
  for (index_t i = 0; i < N; ++i) tokens[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7 + 3) % V);
  std::vector<TestType> fast(static_cast<std::size_t>(N * C)), ref(fast.size());
  kernels::embedding_forward(cpu{}, fast.data(), tokens.data(), table.data(), N, C);
  kernels::reference::embedding_forward(ref.data(), tokens.data(), table.data(), N, C);
  CHECK(fast == ref);
}

}  // namespace test_kernels

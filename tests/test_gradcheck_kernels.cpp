// Finite-difference gradient checks in float64 of every backward kernel, fast and reference.
#include <catch2/catch.hpp>

#include <algorithm>

#include "attention_cases.hpp"
#include "device_gradcheck.hpp"
#include "gradcheck.hpp"
#include "tokenformer/kernels/cpu.hpp"
#include "tokenformer/kernels/reference.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_gradcheck_kernels {

using namespace tokenformer;
using gradcheck::GradCase;
using gradcheck::Inputs;
using gradcheck::Vector;
using test_util::random_vector;

namespace {

constexpr double tolerance = 1e-6;

void require_gradients_match(const GradCase& c) {
  const auto r = gradcheck::check(c);
  INFO(c.name << ": " << r.where);
  CHECK(r.checked > 0);
  CHECK(r.max_error <= tolerance);
}

}  // namespace

TEST_CASE("gradcheck: pattention_norm gives zero gradient on an all-zero row", "[gradcheck][pattention_norm]") {
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm}) {
    Vector s(8, 0.0), dy = random_vector<double>(8, 3), ds(8, 1.0);
    kernels::pattention_norm_backward(cpu{}, ds.data(), dy.data(), s.data(), 1, 8, kind, 8);
    CHECK(std::all_of(ds.begin(), ds.end(), [](double v) { return v == 0.0; }));
  }
}

TEMPLATE_TEST_CASE(
    "gradcheck: every backward kernel on the reference and cpu devices (pattention_norm, "
    "layer_norm, rotary, attention with every mask, embedding, cross-entropy)",
    "[gradcheck]", reference, cpu) {
  // The same cases run on the cuda device in tests/cuda/test_cuda.cu.
  for (const GradCase& c : device_gradcheck::kernel_cases(TestType{})) require_gradients_match(c);
}

TEST_CASE("cross-entropy values by hand", "[kernels][loss]") {
  // Logits [0, ln 3] with target 1: p = [1/4, 3/4], loss = ln(4/3), gradient [1/4, −1/4].
  std::vector<double> logits{0.0, std::log(3.0)};
  std::vector<std::int32_t> target{1};
  const double loss = kernels::cross_entropy_forward_backward(cpu{}, logits.data(), static_cast<double*>(nullptr),
                                                              target.data(), 1, 2, 1.0);
  CHECK(loss == Approx(std::log(4.0 / 3.0)).epsilon(1e-14));
  CHECK(logits[0] == Approx(0.25).epsilon(1e-14));
  CHECK(logits[1] == Approx(-0.25).epsilon(1e-14));
}

TEMPLATE_TEST_CASE("backward kernels: cpu matches reference in float on larger shapes", "[kernels][backward]", float,
                   double) {
  const double tol = std::is_same<TestType, float>::value ? 1e-4 : 1e-10;
  {  // attention
    const index_t B = 2, T = 97, H = 2, D = 16;
    const std::size_t n = static_cast<std::size_t>(B * T * H * D);
    const auto q = random_vector<TestType>(n, 1), k = random_vector<TestType>(n, 2), v = random_vector<TestType>(n, 3),
               dout = random_vector<TestType>(n, 4);
    std::vector<TestType> a(n), b(n), c(n), ra(n), rb(n), rc(n), out(n), lse(static_cast<std::size_t>(B * H * T));
    const auto shape = kernels::AttentionShape::causal(B, T, H, D);
    kernels::attention_forward(cpu{}, out.data(), lse.data(), q.data(), k.data(), v.data(), shape);
    kernels::attention_backward(cpu{}, a.data(), b.data(), c.data(), dout.data(), q.data(), k.data(), v.data(),
                                out.data(), lse.data(), shape);
    kernels::reference::attention_backward(ra.data(), rb.data(), rc.data(), dout.data(), q.data(), k.data(), v.data(),
                                           shape);
    CHECK(test_util::max_scaled_diff(a, ra) <= tol);
    CHECK(test_util::max_scaled_diff(b, rb) <= tol);
    CHECK(test_util::max_scaled_diff(c, rc) <= tol);
  }
  for (auto kind : all_normalizations) {
    const index_t rows = 50, n = 300;
    const auto s = random_vector<TestType>(rows * n, 5, 2.0), dw = random_vector<TestType>(rows * n, 6);
    std::vector<TestType> fast(s.size()), ref(s.size());
    kernels::pattention_norm_backward(cpu{}, fast.data(), dw.data(), s.data(), rows, n, kind, n);
    kernels::reference::pattention_norm_backward(ref.data(), dw.data(), s.data(), rows, n, kind, n);
    INFO(to_string(kind));
    CHECK(test_util::max_scaled_diff(fast, ref) <= tol);
  }
}

}  // namespace test_gradcheck_kernels

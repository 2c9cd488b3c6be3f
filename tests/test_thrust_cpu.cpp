// The Thrust algorithms of the CUDA kernels (kernels/cuda/thrust_algorithms.cuh), compiled by the
// host compiler for Thrust's CPP or OpenMP backend (THRUST_DEVICE_SYSTEM, set by CMake) and
// checked against the CPU kernels, so that they are tested on machines without a GPU.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "test_util.hpp"
#include "tokenformer/kernels/cpu.hpp"
#include "tokenformer/kernels/cuda/thrust_algorithms.cuh"

using namespace tokenformer;
using test_util::random_vector;
namespace ta = tokenformer::kernels::thrust_algorithms;

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_OMP
static const char* const backend = "omp";
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CPP
static const char* const backend = "cpp";
#else
#error "test_thrust_cpu runs on Thrust's CPP or OMP backend"
#endif

TEMPLATE_TEST_CASE("thrust algorithms on the host backend match the cpu kernels", "[thrust]", float, double) {
  using T = TestType;
  INFO("Thrust backend " << backend);
  const index_t n = 100003;
  const auto x = random_vector<T>(static_cast<std::size_t>(n), 1);
  // Both reductions accumulate in double, so they match a plain double loop to rounding (the CPU
  // kernel adds float squares in float chunks first and is only float-accurate).
  double expected_ss = 0.0, expected_sum = 0.0;
  for (const T v : x) {
    expected_ss += static_cast<double>(v) * static_cast<double>(v);
    expected_sum += static_cast<double>(v);
  }
  CHECK(std::fabs(ta::sum_of_squares(thrust::device, x.data(), n) - expected_ss) <= 1e-12 * expected_ss);
  CHECK(std::fabs(ta::sum_of_squares(thrust::device, x.data(), n) - kernels::sum_of_squares(cpu{}, x.data(), n)) <=
        (sizeof(T) == 4 ? 1e-6 : 1e-12) * expected_ss);
  CHECK(std::fabs(ta::sum(thrust::device, x.data(), n) - expected_sum) <= 1e-12 * expected_ss);
  CHECK(ta::sum_of_squares(thrust::device, x.data(), 0) == 0.0);

  auto scaled = x, expected = x;
  ta::scale(thrust::device, scaled.data(), T(0.25), n);
  kernels::scale(cpu{}, expected.data(), T(0.25), n);
  CHECK(scaled == expected);

  auto bad = x;
  CHECK(ta::first_non_finite(thrust::device, bad.data(), n) == -1);
  CHECK(ta::first_non_finite(thrust::device, bad.data(), 0) == -1);
  for (const T value : {T(NAN), T(INFINITY), T(-INFINITY)}) {
    bad[5000] = value;
    bad[90000] = value;
    CHECK(ta::first_non_finite(thrust::device, bad.data(), n) == 5000);
    CHECK(ta::first_non_finite(thrust::device, bad.data(), n) == kernels::first_non_finite(cpu{}, bad.data(), n));
  }

  // AdamW: three steps with decay, against the CPU kernel (the same arithmetic in T).
  auto p = x, m = random_vector<T>(x.size(), 2, 0.1), v = random_vector<T>(x.size(), 3, 0.1);
  for (auto& e : v) e *= e;
  const auto g = random_vector<T>(x.size(), 4);
  auto p_cpu = p, m_cpu = m, v_cpu = v;
  for (long step = 1; step <= 3; ++step) {
    ta::adamw_step(thrust::device, p.data(), m.data(), v.data(), g.data(), n,
                   ta::AdamWCoefficients<T>::make(1e-2, 0.9, 0.95, 1e-8, 0.1, step));
    kernels::adamw_step(cpu{}, p_cpu.data(), m_cpu.data(), v_cpu.data(), g.data(), n, 1e-2, 0.9, 0.95, 1e-8, 0.1, step);
  }
  const double tol = sizeof(T) == 8 ? 1e-14 : 1e-6;
  CHECK(test_util::max_scaled_diff(p, p_cpu) <= tol);
  CHECK(test_util::max_scaled_diff(m, m_cpu) <= tol);
  CHECK(test_util::max_scaled_diff(v, v_cpu) <= tol);
}

// bench/bench_fma_peak.cpp: the CPU's float32 peak, measured: every OpenMP thread runs independent
// chains of fused multiply-adds on the widest SIMD registers xsimd uses in this build (AVX2: 8 floats,
// AVX-512: 16), enough chains to cover the FMA latency on two FMA ports. Prints GFLOP/s (2 FLOPs per
// lane per FMA) for 1 thread and for omp_get_max_threads() threads, best of 3 runs each; the training
// step benchmarks quote their fraction of this figure. Usage: bench_fma_peak [seconds per run, 0.5]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <xsimd/xsimd.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using batch = xsimd::batch<float>;
constexpr int chains = 10;  // >= latency (4-5 cycles) x FMA ports (2); named variables stay in registers

/// FLOPs per second of one thread running `iterations` rounds of `chains` FMAs.
double one_thread(long iterations) {
  batch a0(1.000f), a1(1.001f), a2(1.002f), a3(1.003f), a4(1.004f), a5(1.005f), a6(1.006f), a7(1.007f), a8(1.008f),
      a9(1.009f);
  const batch m(0.999999f), c(1e-7f);
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < iterations; ++i) {
    a0 = xsimd::fma(a0, m, c), a1 = xsimd::fma(a1, m, c), a2 = xsimd::fma(a2, m, c), a3 = xsimd::fma(a3, m, c);
    a4 = xsimd::fma(a4, m, c), a5 = xsimd::fma(a5, m, c), a6 = xsimd::fma(a6, m, c), a7 = xsimd::fma(a7, m, c);
    a8 = xsimd::fma(a8, m, c), a9 = xsimd::fma(a9, m, c);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const float sink = xsimd::hadd(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + (a8 + a9));
  if (sink == 12345.0f) std::printf(" ");  // the chains' results are used
  return static_cast<double>(iterations) * chains * batch::size * 2.0 / seconds;
}

double measure(int threads, long iterations) {
  double best = 0;
  for (int run = 0; run < 3; ++run) {
    double total = 0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) reduction(+ : total)
#endif
    total += one_thread(iterations);
    if (total > best) best = total;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  if (!(seconds > 0 && seconds < 60)) {
    std::fprintf(stderr, "usage: bench_fma_peak [seconds per run, in (0, 60)]\n");
    return 2;
  }
  // Calibrate the iteration count to about `seconds` on one thread.
  const double rate = one_thread(1000000) / (chains * batch::size * 2.0);
  const long iterations = static_cast<long>(rate * seconds) + 1;
#if defined(_OPENMP)
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  std::printf("simd %s, %d floats per register, %d FMA chains\n", batch::arch_type::name(),
              static_cast<int>(batch::size), chains);
  std::printf("fp32 peak, 1 thread: %.1f GFLOP/s\n", measure(1, iterations) / 1e9);
  std::printf("fp32 peak, %d threads: %.1f GFLOP/s\n", threads, measure(threads, iterations) / 1e9);
  return 0;
}

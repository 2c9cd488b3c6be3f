// Catch2's main for the GPU tests: without a CUDA GPU it says so and exits with 77, which CTest
// reports as "Skipped" (the tests were compiled by nvcc, but cannot run).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

int tokenformer_test_cuda_device_count();  // in test_cuda.cu (the CUDA runtime is linked there)

int main(int argc, char** argv) {
  if (tokenformer_test_cuda_device_count() == 0) {
    std::printf("SKIPPED: no CUDA GPU on this machine, so the GPU tests did not run (they were compiled)\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}

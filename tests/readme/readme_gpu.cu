// The README's GPU snippet (see readme_snippets.cpp for the scheme): compiled by nvcc wherever the
// CUDA toolkit is; run where there is a GPU (it checks that the GPU's loss equals the CPU's).
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

// [readme: gpu]
#include <tokenformer/tokenformer.hpp>  // in a .cu file
using namespace tokenformer;
using Gpu = tokenformer::cuda;  // plain `cuda` is ambiguous with CCCL's ::cuda namespace
// [readme: end]

int main() try {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::puts("README GPU snippet: compiled; no GPU here, not run");
    return 0;
  }
  const index_t B = 2, T = 8;
  std::vector<std::int32_t> tokens, targets;
  for (index_t i = 0; i < B * T; ++i) tokens.push_back(static_cast<std::int32_t>((5 * i) % 200));
  for (index_t i = 0; i < B * T; ++i)
    targets.push_back((i + 1) % T == 0 ? -1 : tokens[static_cast<std::size_t>(i + 1)]);
  GrowthSpec spec;
  spec.ffn = 16;
  spec.pin_scale = true;
  LanguageModel<presets::Tiny, cpu> initialized;
  Rng rng(3);
  initialized.initialize(rng);

  // [readme: gpu]

  LanguageModel<presets::Tiny, cpu> on_cpu;                      // or load one from a checkpoint
  LanguageModel<presets::Tiny, Gpu> on_gpu;                      // the same model on GPU 0
  copy_parameters(on_cpu, initialized);                          // [readme: hide]
  copy_parameters(on_gpu, on_cpu);                               // by parameter name, through the host
  double loss = on_gpu.forward_backward(tokens, targets, B, T);  // ids stay on the host
  AdamW().step(on_gpu, 6e-4);                                    // one fused kernel over all parameters
  grow(on_gpu, spec);                                            // in place, on device memory

  Gpu fast = Gpu::create(/*device_index=*/0, GemmPrecision::tf32);  // own stream, TF32 GEMMs
  LanguageModel<presets::Tiny, Gpu> tf32_model(fast);
  // [readme: end]

  const double cpu_loss = on_cpu.forward_backward(tokens, targets, B, T);
  std::printf("README GPU snippet: loss on the GPU %.6f, on the CPU %.6f\n", loss, cpu_loss);
  if (!(std::fabs(loss - cpu_loss) <= 1e-4)) throw std::runtime_error("the GPU's loss differs from the CPU's");
  (void)tf32_model;
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}

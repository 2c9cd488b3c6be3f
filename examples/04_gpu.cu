// Example 04: the same TokenFormer on the CPU and on the GPU.
//
// What you will learn
//   1. Moving to the GPU is one template argument: LanguageModel<Config, cuda> instead of
//      LanguageModel<Config, cpu>. Layers, the optimizer, clipping and growth are the same code.
//   2. copy_parameters moves a model between devices (by parameter name, through the host).
//   3. The GPU computes what the CPU computes: the two training runs print the same losses, step
//      by step, up to float rounding (cuBLAS and the fused kernels add in another order).
//   4. Growth works in place on device memory too: both models grow mid-run and keep agreeing.
// Read first: include/tokenformer/core/cuda.cuh (the device tag, its stream and memory) and
// include/tokenformer/kernels/cuda/ (one .cuh per kernel family, the same signatures as kernels/cpu/).
// Build: needs nvcc (CMake turns TOKENFORMER_ENABLE_CUDA on when it finds one).
// Run:   ./build/examples/04_gpu [steps]     (exit status 0 when the losses agree)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;
using Gpu = tokenformer::cuda;  // plain `cuda` would be ambiguous with CCCL's ::cuda namespace

namespace {

const char* const text =
    "A TokenFormer treats its parameters as tokens. Every linear projection of a transformer becomes a "
    "Pattention: the inputs attend to learnable key and value tokens. Because the number of parameter "
    "tokens is independent of the input and output sizes, a trained model grows by appending tokens, "
    "and keeps training from where it stopped instead of starting from scratch. ";

/// Batch `step`: B windows of T + 1 bytes from the text, as tokens and next-byte targets.
void make_batch(int step, index_t B, index_t T_len, std::vector<std::int32_t>& tokens,
                std::vector<std::int32_t>& targets) {
  const std::string corpus(text);
  const index_t length = static_cast<index_t>(corpus.size());
  tokens.resize(static_cast<std::size_t>(B * T_len));
  targets.resize(tokens.size());
  for (index_t b = 0; b < B; ++b) {
    const index_t start = (step * 37 + b * 101) % (length - T_len - 1);
    for (index_t t = 0; t < T_len; ++t) {
      tokens[static_cast<std::size_t>(b * T_len + t)] =
          static_cast<unsigned char>(corpus[static_cast<std::size_t>(start + t)]);
      targets[static_cast<std::size_t>(b * T_len + t)] =
          static_cast<unsigned char>(corpus[static_cast<std::size_t>(start + t + 1)]);
    }
  }
}

/// One training step: forward, backward, clipping, AdamW. The same code for both devices.
template <class Model>
double train_step(Model& model, AdamW& optimizer, const std::vector<std::int32_t>& tokens,
                  const std::vector<std::int32_t>& targets, index_t B, index_t T_len, long step) {
  model.zero_grad();
  const double loss = model.forward_backward(tokens, targets, B, T_len);
  clip_gradient_norm(model, 1.0);
  check_finite(model, step, loss);
  optimizer.step(model, 3e-3);
  return loss;
}

struct Small : presets::Dynamic<float> {};

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 30;
  if (cuda_device_count() == 0) {
    std::printf("04_gpu: no CUDA GPU on this machine; nothing to compare (the example was compiled).\n");
    return 0;
  }
  // ---- 1. One configuration, two devices ------------------------------------------------------------
  ModelConfig config;
  config.num_layers = 2;
  config.hidden_size = 128;
  config.num_heads = 4;
  config.qkv_tokens = 128;
  config.proj_tokens = 128;
  config.ffn_tokens = 512;
  config.vocab_size = 256;  // bytes
  config.rotary_pct = 0.25;
  config.normalization = Normalization::l2_norm_gelu;
  LanguageModel<Small, cpu> on_cpu(config);
  LanguageModel<Small, Gpu> on_gpu(config);  // the only difference: the device argument
  Rng rng(2024);
  on_cpu.initialize(rng);
  copy_parameters(on_gpu, on_cpu);  // identical starting points
  std::printf("model: %lld parameters, %lld layers, hidden %lld; batch 8 x 64 bytes\n",
              static_cast<long long>(on_cpu.parameter_count()), static_cast<long long>(config.num_layers),
              static_cast<long long>(config.hidden_size));

  // ---- 2. Train both on the same batches, growing both halfway ---------------------------------------
  AdamW cpu_optimizer, gpu_optimizer;
  const index_t B = 8, T_len = 64;
  std::vector<std::int32_t> tokens, targets;
  double worst = 0.0, cpu_seconds = 0.0, gpu_seconds = 0.0;
  std::printf("%5s %12s %12s %12s\n", "step", "cpu loss", "gpu loss", "|difference|");
  for (int step = 1; step <= steps; ++step) {
    if (step == steps / 2 + 1) {
      GrowthSpec spec;
      spec.ffn = 256;
      spec.init = TokenInit::zero;
      spec.pin_scale = true;  // zero tokens and a pinned √n: the grown models compute the same function
      grow(on_cpu, spec);
      grow(on_gpu, spec);
      std::printf("  grew every FFN Pattention from 512 to %lld tokens, in place on both devices\n",
                  static_cast<long long>(on_gpu.layers[0].ffn.tokens()));
    }
    make_batch(step, B, T_len, tokens, targets);
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu_loss = train_step(on_cpu, cpu_optimizer, tokens, targets, B, T_len, step);
    const auto t1 = std::chrono::steady_clock::now();
    const double gpu_loss = train_step(on_gpu, gpu_optimizer, tokens, targets, B, T_len, step);
    on_gpu.device().synchronize();
    const auto t2 = std::chrono::steady_clock::now();
    if (step > 1) {  // the first step includes one-time setup (cuBLAS, memory pools)
      cpu_seconds += std::chrono::duration<double>(t1 - t0).count();
      gpu_seconds += std::chrono::duration<double>(t2 - t1).count();
    }
    const double difference = std::fabs(cpu_loss - gpu_loss);
    worst = std::fmax(worst, difference / std::fmax(1.0, std::fabs(cpu_loss)));
    std::printf("%5d %12.6f %12.6f %12.2e\n", step, cpu_loss, gpu_loss, difference);
  }
  if (steps > 1)
    std::printf("time per step: cpu %.2f ms, gpu %.2f ms\n", 1e3 * cpu_seconds / (steps - 1),
                1e3 * gpu_seconds / (steps - 1));

  // ---- 3. Agreement --------------------------------------------------------------------------------
  // Float rounding differs between the devices and compounds over steps; 1e-3 relative is far below
  // what a wrong kernel would give (a bug moves the loss by whole percent within a few steps).
  const bool agree = worst <= 1e-3;
  std::printf("largest relative loss difference: %.2e -> %s\n", worst, agree ? "the devices agree" : "MISMATCH");
  return agree ? 0 : 1;
}

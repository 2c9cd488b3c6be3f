// bench/bench_train_step.cpp: throughput of one full float32 training step of a TokenFormer language
// model on the CPU: forward, backward, gradient clipping and AdamW.
//
//   BM_TrainStep/small   4 layers, hidden 256, 8 heads, qkv = proj = 256, ffn = 1024 tokens; B=16, T=128
//   BM_TrainStep/medium  6 layers, hidden 512, 8 heads, qkv = proj = 512, ffn = 2048 tokens; B=8,  T=256
// Both byte-level (vocab 257), rotary_pct 0.5, l2_norm_gelu, the tied embedding as the output head.
// Each runs in fp32 and in bf16 mixed precision (BM_TrainStep/<shape>/bf16: every float GEMM's operands
// rounded to bfloat16, fp32 accumulation; the "bf16" context line says whether the CPU has BF16
// instructions and how the products are computed).
//
// One iteration is exactly what a trainer does per optimizer step:
//   model.zero_grad(); loss = model.forward_backward(tokens, targets, B, T);
//   clip_gradient_norm(model, 1.0); adamw.step(model, 6e-4);
// on random tokens drawn once with a fixed seed. One untimed step before the loop allocates the
// gradients, the AdamW moments and the activation caches.
//
// Counters (rates over wall time):
//   tokens/s  B·T tokens per step.
//   GFLOP/s   the standard training-FLOP estimate (Kaplan et al. 2020; PaLM appendix B), per token
//               FLOPs/token = 6·N + 6·L·T·C
//             with N every parameter (embedding, which is also the output head, Pattention key and
//             value tokens, final norm): each parameter is used in one multiply-add per token forward
//             (2 FLOPs) and twice as many backward (input and parameter gradients), so 6·N; a
//             Pattention with n tokens d_in -> d_out does 2·n·d_in + 2·n·d_out FLOPs per token forward,
//             which is 2 per parameter as for a linear layer.
//             6·L·T·C is causal attention: Q·Kᵀ and P·V cost 2·T·C each per token forward (4·T·C),
//             times 3 for forward + backward (12·L·T·C), halved by the causal mask (6·L·T·C).
//             LayerNorm, rotary, Θ, softmax, cross entropy and AdamW are not counted.
//   params    N (constant; for bench/train_step_torch.py).
//
// Compare with PyTorch running the same model and step: python3 bench/train_step_torch.py <build dir>
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tokenformer/core/eigen.hpp"
#include "tokenformer/tokenformer.hpp"

#if TOKENFORMER_OPENMP
#include <omp.h>
#endif

using namespace tokenformer;

namespace {

struct TrainShape {
  const char* name;
  index_t num_layers, hidden_size, num_heads, qkv_tokens, proj_tokens, ffn_tokens;
  index_t batch, sequence_length;
};

constexpr TrainShape small{"small", 4, 256, 8, 256, 256, 1024, 16, 128};
constexpr TrainShape medium{"medium", 6, 512, 8, 512, 512, 2048, 8, 256};

ModelConfig config_of(const TrainShape& s) {
  ModelConfig config;
  config.num_layers = s.num_layers;
  config.hidden_size = s.hidden_size;
  config.num_heads = s.num_heads;
  config.qkv_tokens = s.qkv_tokens;
  config.proj_tokens = s.proj_tokens;
  config.ffn_tokens = s.ffn_tokens;
  config.vocab_size = 257;  // 256 bytes + end-of-text
  config.rotary_pct = 0.5;
  config.normalization = Normalization::l2_norm_gelu;
  config.validate();
  return config;
}

// FLOPs/token = 6·N + 6·L·T·C (see the header comment).
double training_flops_per_token(const ModelConfig& config, index_t parameters, index_t T) {
  return 6.0 * static_cast<double>(parameters) + 6.0 * static_cast<double>(config.num_layers) * static_cast<double>(T) *
                                                     static_cast<double>(config.hidden_size);
}

void BM_TrainStep(benchmark::State& state, const TrainShape& shape, Precision precision) {
  const kernels::GemmPrecisionScope scope(precision);
  const ModelConfig config = config_of(shape);
  const index_t B = shape.batch, T = shape.sequence_length, M = B * T;

  Rng rng(20241031);
  LanguageModel<presets::Dynamic<float>> model(config);
  model.initialize(rng);
  // Random byte-level sequences; the targets are the inputs shifted by one (a last draw at the end).
  std::vector<std::int32_t> stream(static_cast<std::size_t>(M + 1));
  for (auto& id : stream) id = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(config.vocab_size)));
  const std::vector<std::int32_t> tokens(stream.begin(), stream.end() - 1), targets(stream.begin() + 1, stream.end());

  AdamW optimizer;  // lr 6e-4, betas 0.9/0.95, eps 1e-8, weight decay 0.1
  const double lr = 6e-4, max_norm = 1.0;
  auto step = [&] {
    model.zero_grad();
    const double loss = model.forward_backward(tokens, targets, B, T);
    clip_gradient_norm(model, max_norm);
    optimizer.step(model, lr);
    return loss;
  };

  const double first_loss = step();  // warm-up: allocates gradients, moments and activation caches
  double loss = first_loss;
  for (auto _ : state) {
    loss = step();
    benchmark::DoNotOptimize(loss);
  }

  const index_t parameters = model.parameter_count();
  const double iterations = static_cast<double>(state.iterations());
  const double tokens_per_step = static_cast<double>(M);
  state.counters["tokens/s"] = benchmark::Counter(iterations * tokens_per_step, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(iterations * tokens_per_step * training_flops_per_token(config, parameters, T) / 1e9,
                         benchmark::Counter::kIsRate);
  state.counters["params"] = static_cast<double>(parameters);
  state.counters["loss"] = loss;
  state.SetLabel("L=" + std::to_string(config.num_layers) + " C=" + std::to_string(config.hidden_size) +
                 " B=" + std::to_string(B) + " T=" + std::to_string(T));
}

}  // namespace

int main(int argc, char** argv) {
  for (Precision precision : {Precision::fp32, Precision::bf16})
    for (const TrainShape* shape : {&small, &medium}) {
      const std::string suffix = precision == Precision::fp32 ? "" : std::string("/") + to_string(precision);
      benchmark::RegisterBenchmark(
          (std::string("BM_TrainStep/") + shape->name + suffix).c_str(),
          [shape, precision](benchmark::State& state) { BM_TrainStep(state, *shape, precision); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(2.0);
    }

  // --list_gemm_backends: the GEMM backends this program links, one per line (for the run scripts,
  // which run it once per backend with TOKENFORMER_GEMM set).
  if (argc == 2 && std::string(argv[1]) == "--list_gemm_backends") {
    for (auto backend : {kernels::GemmBackend::eigen, kernels::GemmBackend::openblas, kernels::GemmBackend::onednn})
      if (kernels::gemm_backend_available(backend)) std::printf("%s\n", kernels::to_string(backend));
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    benchmark::AddCustomContext("gemm", kernels::gemm_backend_description());
    const kernels::GemmPrecisionScope bf16(Precision::bf16);
    benchmark::AddCustomContext("bf16", kernels::gemm_precision_description());
  } catch (const error& e) {  // TOKENFORMER_GEMM names an unknown backend or one not linked
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
#if TOKENFORMER_OPENMP
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
#else
  benchmark::AddCustomContext("omp_max_threads", "1 (no OpenMP)");
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

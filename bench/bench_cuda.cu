// bench/bench_cuda.cu: the GPU's Pattention, TokenFormer layer and training step, each next to the
// cuBLAS GEMMs it contains.
//
// Shapes: M = B·T rows in {4096, 16384}, hidden C = 768 (the 150M preset); P = C tokens for the
// attention Pattentions and P = 4C for the FFN. float32 with FP32 GEMMs unless the name says tf32.
//
//   BM_Pattention/fwd        FFN Pattention forward (2 GEMMs + Θ)
//   BM_PattentionGemms/fwd   its 2 GEMMs alone
//   BM_Pattention/fwd_bwd    forward + backward (6 GEMMs + Θ + Θ')
//   BM_PattentionGemms/fwd_bwd  its 6 GEMMs alone
//   BM_Layer/fwd_bwd         one TokenFormerLayer forward + backward (30 GEMMs, attention, norms, rotary)
//   BM_LayerGemms/fwd_bwd    its 30 Pattention GEMMs alone
//   BM_TrainStep150M         a whole training step of the 150M preset (B = 8 sequences of T tokens:
//                            forward, backward, clipping, AdamW), in tokens/s
//
// Timing uses CUDA events around each iteration (manual time). Tabulate medians and ratios with
//   python3 bench/run_cuda_benchmarks.py <build dir>
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;
using Gpu = tokenformer::cuda;

namespace {

double gemm_flops(index_t M, index_t N, index_t K) {
  return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
}

/// Times one GPU iteration with CUDA events.
class EventTimer {
 public:
  explicit EventTimer(const Gpu& device) : device_(device) {
    TOKENFORMER_CUDA_CHECK(cudaEventCreate(&start_));
    TOKENFORMER_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  template <class Work>
  void time(benchmark::State& state, Work&& work) {
    work();  // warm-up: allocations, cuBLAS heuristics
    device_.synchronize();
    for (auto _ : state) {
      TOKENFORMER_CUDA_CHECK(cudaEventRecord(start_, device_.stream()));
      work();
      TOKENFORMER_CUDA_CHECK(cudaEventRecord(stop_, device_.stream()));
      TOKENFORMER_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0.0f;
      TOKENFORMER_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      state.SetIterationTime(static_cast<double>(ms) * 1e-3);
    }
  }

 private:
  Gpu device_;
  cudaEvent_t start_{}, stop_{};
};

/// Fills x with stddev · uniform(−√3, √3) from a hash of (seed, index): random-looking data made on
/// the GPU (the host's normal generator takes seconds for the 150M preset, at every repetition).
__global__ void fill_random_kernel(float* x, index_t n, std::uint64_t seed, float stddev) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    std::uint64_t h = (static_cast<std::uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull ^ seed * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    x[i] = stddev * 1.7320508f * (2.0f * u - 1.0f);
  }
}

void fill_random(Tensor<float, Gpu>& t, std::uint64_t seed, double stddev) {
  if (t.size() == 0) return;
  fill_random_kernel<<<1024, 256, 0, t.device().stream()>>>(t.data(), t.size(), seed, static_cast<float>(stddev));
  TOKENFORMER_CUDA_CHECK(cudaGetLastError());
}

Tensor<float, Gpu> random_tensor(Shape shape, std::uint64_t seed, double stddev = 0.02) {
  Tensor<float, Gpu> t(shape);
  fill_random(t, seed, stddev);
  return t;
}

/// Random parameter tokens (and embeddings) for any model or layer; norm weights stay as they are.
template <class Model>
void randomize(Model& model) {
  std::uint64_t seed = 1;
  model.for_each_parameter([&](const std::string& name, Parameter<float, Gpu>& p) {
    if (name.find("norm") == std::string::npos) fill_random(p.value, seed++, 0.02);
    p.enable_training();
  });
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["TFLOPs"] = benchmark::Counter(flops_per_iteration * 1e-12 * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}

constexpr index_t C = 768;

// ---- Pattention ---------------------------------------------------------------------------------

void BM_Pattention(benchmark::State& state, bool backward) {
  const index_t M = state.range(0), P = 4 * C;
  Gpu device;
  Pattention<float, Gpu> layer(C, C, P, Normalization::l2_norm_gelu);
  randomize(layer);
  auto x = random_tensor(Shape{M, C}, 2, 1.0), out = random_tensor(Shape{M, C}, 3);
  auto d_out = random_tensor(Shape{M, C}, 4), d_in = random_tensor(Shape{M, C}, 5);
  EventTimer timer(device);
  timer.time(state, [&] {
    layer.forward(out, x);
    if (backward) layer.backward(d_in, d_out, x);
  });
  set_flops(state, (backward ? 3.0 : 1.0) * (gemm_flops(M, P, C) + gemm_flops(M, C, P)));
}

void BM_PattentionGemms(benchmark::State& state, bool backward) {
  const index_t M = state.range(0), P = 4 * C;
  Gpu device;
  auto x = random_tensor(Shape{M, C}, 2, 1.0), keys = random_tensor(Shape{P, C}, 3),
       values = random_tensor(Shape{P, C}, 4), scores = random_tensor(Shape{M, P}, 5),
       out = random_tensor(Shape{M, C}, 6), d_out = random_tensor(Shape{M, C}, 7),
       d_scores = random_tensor(Shape{M, P}, 8), dk = random_tensor(Shape{P, C}, 9),
       dv = random_tensor(Shape{P, C}, 10), d_in = random_tensor(Shape{M, C}, 11);
  EventTimer timer(device);
  timer.time(state, [&] {
    kernels::gemm(device, scores.data(), P, x.data(), C, false, keys.data(), C, true, M, P, C);
    kernels::gemm(device, out.data(), C, scores.data(), P, false, values.data(), C, false, M, C, P);
    if (!backward) return;
    kernels::gemm(device, dv.data(), C, scores.data(), P, true, d_out.data(), C, false, P, C, M, 1.0f, 1.0f);
    kernels::gemm(device, d_scores.data(), P, d_out.data(), C, false, values.data(), C, true, M, P, C);
    kernels::gemm(device, dk.data(), C, d_scores.data(), P, true, x.data(), C, false, P, C, M, 1.0f, 1.0f);
    kernels::gemm(device, d_in.data(), C, d_scores.data(), P, false, keys.data(), C, false, M, C, P);
  });
  set_flops(state, (backward ? 3.0 : 1.0) * (gemm_flops(M, P, C) + gemm_flops(M, C, P)));
}

// ---- TokenFormer layer --------------------------------------------------------------------------

double layer_gemm_flops(index_t M) { return 3.0 * (4 * (gemm_flops(M, C, C) * 2) + 2 * gemm_flops(M, 4 * C, C)); }

void BM_Layer(benchmark::State& state) {
  const index_t T_len = state.range(0) / 8, B = 8, M = B * T_len;
  ModelConfig config = ModelConfig::from<presets::TokenFormer150M>();
  TokenFormerLayer<float, Gpu> layer(config);
  randomize(layer);
  auto x = random_tensor(Shape{M, C}, 2, 1.0), out = random_tensor(Shape{M, C}, 3), d = random_tensor(Shape{M, C}, 4);
  EventTimer timer(Gpu{});
  timer.time(state, [&] {
    layer.forward(out, x, B, T_len);
    layer.backward(d, d, x);
  });
  set_flops(state, layer_gemm_flops(M));
}

void BM_LayerGemms(benchmark::State& state) {
  const index_t M = state.range(0);
  Gpu device;
  auto x = random_tensor(Shape{M, C}, 2, 1.0), w = random_tensor(Shape{4 * C, C}, 3),
       s = random_tensor(Shape{M, 4 * C}, 4), y = random_tensor(Shape{M, C}, 5), dw = random_tensor(Shape{4 * C, C}, 6);
  EventTimer timer(device);
  timer.time(state, [&] {
    for (index_t P : {C, C, C, C, 4 * C}) {  // Q, K, V, proj, FFN: 2 forward and 4 backward GEMMs each
      kernels::gemm(device, s.data(), P, x.data(), C, false, w.data(), C, true, M, P, C);
      kernels::gemm(device, y.data(), C, s.data(), P, false, w.data(), C, false, M, C, P);
      kernels::gemm(device, dw.data(), C, s.data(), P, true, y.data(), C, false, P, C, M, 1.0f, 1.0f);
      kernels::gemm(device, s.data(), P, y.data(), C, false, w.data(), C, true, M, P, C);
      kernels::gemm(device, dw.data(), C, s.data(), P, true, x.data(), C, false, P, C, M, 1.0f, 1.0f);
      kernels::gemm(device, x.data(), C, s.data(), P, false, w.data(), C, false, M, C, P);
    }
  });
  set_flops(state, layer_gemm_flops(M));
}

// ---- training step of the 150M preset ---------------------------------------------------------------

void BM_TrainStep150M(benchmark::State& state, GemmPrecision precision) {
  const index_t T_len = state.range(0), B = 8;
  const Gpu device = Gpu::create(0, precision);
  LanguageModel<presets::TokenFormer150M, Gpu> model(device);
  randomize(model);  // the constructor set the final norm's weight to 1 and bias to 0
  Rng rng(1);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(B * T_len)), targets(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<std::int32_t>(rng.uniform() * 50000);
    targets[i] = static_cast<std::int32_t>(rng.uniform() * 50000);
  }
  AdamW optimizer;
  EventTimer timer(device);
  timer.time(state, [&] {
    model.zero_grad();
    model.forward_backward(tokens, targets, B, T_len);
    clip_gradient_norm(model, 1.0);
    optimizer.step(model, 6e-4);
  });
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(B * T_len * state.iterations()), benchmark::Counter::kIsRate);
  set_flops(state, model.config().training_flops_per_token(T_len) * static_cast<double>(B * T_len));
}

}  // namespace

BENCHMARK_CAPTURE(BM_Pattention, fwd, false)->Arg(4096)->Arg(16384)->UseManualTime()->Repetitions(5);
BENCHMARK_CAPTURE(BM_PattentionGemms, fwd, false)->Arg(4096)->Arg(16384)->UseManualTime()->Repetitions(5);
BENCHMARK_CAPTURE(BM_Pattention, fwd_bwd, true)->Arg(4096)->Arg(16384)->UseManualTime()->Repetitions(5);
BENCHMARK_CAPTURE(BM_PattentionGemms, fwd_bwd, true)->Arg(4096)->Arg(16384)->UseManualTime()->Repetitions(5);
BENCHMARK(BM_Layer)->Arg(8192)->Arg(16384)->UseManualTime()->Repetitions(5);
BENCHMARK(BM_LayerGemms)->Arg(8192)->Arg(16384)->UseManualTime()->Repetitions(5);
BENCHMARK_CAPTURE(BM_TrainStep150M, fp32, GemmPrecision::fp32)
    ->Arg(1024)
    ->Arg(2048)
    ->UseManualTime()
    ->Iterations(5)
    ->Repetitions(3);
BENCHMARK_CAPTURE(BM_TrainStep150M, tf32, GemmPrecision::tf32)
    ->Arg(1024)
    ->Arg(2048)
    ->UseManualTime()
    ->Iterations(5)
    ->Repetitions(3);

BENCHMARK_MAIN();

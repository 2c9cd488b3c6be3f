// bench/bench_layers.cpp: float32 forward throughput of Pattention and TokenFormerLayer on the CPU,
// each next to the bare GEMMs it is built from.
//
// Shapes: T rows (batch 1, so M = T) in {128, 512, 2048} x hidden C in {256, 768}; parameter tokens
// P = C for the attention Pattentions and P = 4C for the FFN.
//
//   BM_Pattention/ffn     Pattention C -> C with P = 4C tokens, l2_norm_gelu.
//   BM_GemmPair/ffn       its two GEMMs alone (scores = X·K_Pᵀ, out = S·V_P) with kernels::gemm.
//   BM_PattentionNorm/ffn Θ alone (kernels::pattention_norm_forward on the [M, 4C] scores):
//                         the part of BM_Pattention/ffn that BM_GemmPair/ffn does not do.
//   BM_TokenFormerLayer   one TokenFormerLayer forward.
//   BM_LayerGemms         the layer's 10 Pattention GEMMs alone (Q, K, V, proj, FFN; 2 each).
//   BM_Attention          the layer's causal attention kernel alone (kernels::attention_forward).
//   BM_AttentionBackward  its gradient alone (kernels::attention_backward, from a saved forward).
//
// The layers allocate their activation caches (scores, weights, q, k, v, ...) on their first forward,
// and Google Benchmark calls each benchmark function anew for every repetition, so the layer
// benchmarks do one untimed warm-up forward: otherwise the first timed iteration pays for allocating,
// zeroing and page-faulting tens of MB; at 1-3 iterations per repetition that made BM_Pattention/ffn
// at T=2048 C=768 read up to 2x slower than BM_GemmPair/ffn.
// The bare-GEMM baselines allocate (and so touch) their buffers before the loop too.
//
// Every benchmark but the norm reports GFLOPs (GFLOP/s of wall time) from the FLOP counts below.
// The GEMM backend is chosen at run time (TOKENFORMER_GEMM=eigen|openblas|onednn, default the fastest
// linked); the "gemm" context line of the output says which one ran. bench/run_benchmarks.py runs
// every linked backend and tabulates them side by side.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "tokenformer/core/eigen.hpp"
#include "tokenformer/tokenformer.hpp"

#if TOKENFORMER_OPENMP
#include <omp.h>
#endif

using namespace tokenformer;

namespace {

constexpr double min_time_s = 0.3;

// ---- FLOP counts (one multiply-add = 2 FLOPs) ---------------------------------------------------
// A GEMM [M, K] x [K, N] costs 2·M·N·K.
double gemm_flops(index_t M, index_t N, index_t K) {
  return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
}
// Pattention d_in -> d_out with P tokens: X·K_Pᵀ (2·M·P·d_in) + S·V_P (2·M·d_out·P); Θ not counted.
double pattention_flops(index_t M, index_t d_in, index_t d_out, index_t P) {
  return gemm_flops(M, P, d_in) + gemm_flops(M, d_out, P);
}
// The 10 Pattention GEMMs of a layer: Q, K, V, proj with P = C:  4 x 2 x 2·M·C·C = 16·M·C²
//                                     FFN with P = 4C:            2 x 2·M·C·4C   = 16·M·C²
double layer_gemm_flops(index_t M, index_t C) {
  return 4 * pattention_flops(M, C, C, C) + pattention_flops(M, C, C, 4 * C);
}
// Causal attention, all heads together (H·D = C): Q·Kᵀ and S·V are 2·M·M·C each, halved by the causal
// mask: 2 x 2·M·M·C / 2 = 2·M²·C. (The kernel computes whole 64-row blocks, so it does slightly more.)
double attention_flops(index_t M, index_t C) { return 2.0 * gemm_flops(M, M, C) / 2.0; }
// Its backward: five products of that size (the scores again, dV, dP, dQ, dK), 5·M²·C.
double attention_backward_flops(index_t M, index_t C) { return 2.5 * attention_flops(M, C); }
// TokenFormerLayer = its Pattention GEMMs + attention; LayerNorm, rotary, Θ and residuals not counted.
double layer_flops(index_t M, index_t C) { return layer_gemm_flops(M, C) + attention_flops(M, C); }

void set_gflops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOPs"] = benchmark::Counter(static_cast<double>(state.iterations()) * flops_per_iteration / 1e9,
                                                benchmark::Counter::kIsRate);
}

Tensor<float> random_tensor(Shape shape, Rng& rng, double stddev) {
  Tensor<float> t(shape);
  for (index_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(rng.normal(0.0, stddev));
  return t;
}

// Key and value tokens of one Pattention, for the bare-GEMM baselines.
struct Tokens {
  Tensor<float> keys, values;  // (P, d_in), (P, d_out)
  Tokens(index_t d_in, index_t d_out, index_t P, Rng& rng)
      : keys(random_tensor(Shape{P, d_in}, rng, 0.02)), values(random_tensor(Shape{P, d_out}, rng, 0.02)) {}
};

// out (+)= (X·K_Pᵀ)·V_P with no normalization, through `scores` (M, P).
void gemm_pair(float* out, const float* x, const Tokens& t, float* scores, index_t M, bool accumulate) {
  const index_t P = t.keys.dim(0), d_in = t.keys.dim(1), d_out = t.values.dim(1);
  kernels::gemm(cpu{}, scores, P, x, d_in, false, t.keys.data(), d_in, true, M, P, d_in);
  kernels::gemm(cpu{}, out, d_out, scores, P, false, t.values.data(), d_out, false, M, d_out, P, 1.0f,
                accumulate ? 1.0f : 0.0f);
}

// ---- Pattention FFN (C -> C, P = 4C) ------------------------------------------------------------
void BM_Pattention_ffn(benchmark::State& state) {
  const index_t M = state.range(0), C = state.range(1), P = 4 * C;
  Rng rng(1);
  Pattention<float> layer(C, C, P, Normalization::l2_norm_gelu);
  layer.initialize(rng, 0.02, 0.02);
  const Tensor<float> x = random_tensor(Shape{M, C}, rng, 1.0);
  Tensor<float> out(Shape{M, C});
  layer.forward(out, x);  // warm-up: allocates the layer's activation cache outside the timed loop
  for (auto _ : state) {
    layer.forward(out, x);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, pattention_flops(M, C, C, P));
}

void BM_GemmPair_ffn(benchmark::State& state) {
  const index_t M = state.range(0), C = state.range(1), P = 4 * C;
  Rng rng(1);
  const Tokens tokens(C, C, P, rng);
  const Tensor<float> x = random_tensor(Shape{M, C}, rng, 1.0);
  Tensor<float> scores(Shape{M, P}), out(Shape{M, C});
  for (auto _ : state) {
    gemm_pair(out.data(), x.data(), tokens, scores.data(), M, false);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, pattention_flops(M, C, C, P));
}

// Θ alone on the FFN's [M, 4C] scores, out of place into the weights, as Pattention::forward does it.
void BM_PattentionNorm_ffn(benchmark::State& state) {
  const index_t M = state.range(0), C = state.range(1), P = 4 * C;
  Rng rng(1);
  const Tensor<float> scores = random_tensor(Shape{M, P}, rng, 1.0);
  Tensor<float> weights(Shape{M, P});
  for (auto _ : state) {
    kernels::pattention_norm_forward(cpu{}, weights.data(), scores.data(), M, P, Normalization::l2_norm_gelu, P);
    benchmark::DoNotOptimize(weights.data());
    benchmark::ClobberMemory();
  }
  // Bytes moved: the scores read once, the weights written once.
  state.counters["GB/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2.0 * static_cast<double>(M * P) * sizeof(float) / 1e9,
      benchmark::Counter::kIsRate);
}

// ---- TokenFormerLayer -----------------------------------------------------------------------------
ModelConfig layer_config(index_t C) {
  ModelConfig config;
  config.num_layers = 1;
  config.vocab_size = 1;
  config.hidden_size = C;
  config.num_heads = C / 64;
  config.qkv_tokens = C;
  config.proj_tokens = C;
  config.ffn_tokens = 4 * C;
  config.rotary_pct = 0.25;
  config.validate();
  return config;
}

void BM_TokenFormerLayer(benchmark::State& state) {
  const index_t T = state.range(0), C = state.range(1), M = T;  // batch 1
  Rng rng(1);
  TokenFormerLayer<float> layer(layer_config(C));
  for (auto* p :
       {&layer.attention.query, &layer.attention.key, &layer.attention.value, &layer.attention.proj, &layer.ffn})
    p->initialize(rng, 0.02, 0.02);
  const Tensor<float> x = random_tensor(Shape{M, C}, rng, 1.0);
  Tensor<float> out(Shape{M, C});     // not aliasing x: every iteration sees the same input
  layer.forward(out, x, /*B=*/1, T);  // warm-up: allocates the activation caches outside the timed loop
  for (auto _ : state) {
    layer.forward(out, x, /*B=*/1, T);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, layer_flops(M, C));
}

// The layer's 10 Pattention GEMMs with its shapes and its fused residual adds (proj and FFN
// accumulate), without LayerNorm, Θ, rotary or attention.
void BM_LayerGemms(benchmark::State& state) {
  const index_t T = state.range(0), C = state.range(1), M = T;
  Rng rng(1);
  const Tokens query(C, C, C, rng), key(C, C, C, rng), value(C, C, C, rng), proj(C, C, C, rng), ffn(C, C, 4 * C, rng);
  const Tensor<float> x = random_tensor(Shape{M, C}, rng, 1.0);
  Tensor<float> q(Shape{M, C}), k(Shape{M, C}), v(Shape{M, C}), out(Shape{M, C}), scores(Shape{M, 4 * C});
  for (auto _ : state) {
    gemm_pair(q.data(), x.data(), query, scores.data(), M, false);
    gemm_pair(k.data(), x.data(), key, scores.data(), M, false);
    gemm_pair(v.data(), x.data(), value, scores.data(), M, false);
    gemm_pair(out.data(), q.data(), proj, scores.data(), M, true);
    gemm_pair(out.data(), k.data(), ffn, scores.data(), M, true);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, layer_gemm_flops(M, C));
}

// The layer's causal multi-head attention alone (H = C/64 heads of D = 64).
void BM_Attention(benchmark::State& state) {
  const index_t T = state.range(0), C = state.range(1), M = T, H = C / 64;
  Rng rng(1);
  const Tensor<float> q = random_tensor(Shape{M, C}, rng, 1.0), k = random_tensor(Shape{M, C}, rng, 1.0),
                      v = random_tensor(Shape{M, C}, rng, 1.0);
  Tensor<float> out(Shape{M, C});
  for (auto _ : state) {
    kernels::attention_forward(cpu{}, out.data(), nullptr, q.data(), k.data(), v.data(),
                               kernels::AttentionShape::causal(1, T, H, C / H));
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, attention_flops(M, C));
}

// The gradient of that attention (dq, dk, dv from dout), given the forward's output and log-sum-exp.
void BM_AttentionBackward(benchmark::State& state) {
  const index_t T = state.range(0), C = state.range(1), M = T, H = C / 64;
  Rng rng(1);
  const Tensor<float> q = random_tensor(Shape{M, C}, rng, 1.0), k = random_tensor(Shape{M, C}, rng, 1.0),
                      v = random_tensor(Shape{M, C}, rng, 1.0), dout = random_tensor(Shape{M, C}, rng, 1.0);
  const auto shape = kernels::AttentionShape::causal(1, T, H, C / H);
  Tensor<float> out(Shape{M, C}), lse(Shape{H, T}), dq(Shape{M, C}), dk(Shape{M, C}), dv(Shape{M, C});
  kernels::attention_forward(cpu{}, out.data(), lse.data(), q.data(), k.data(), v.data(), shape);
  for (auto _ : state) {
    kernels::attention_backward(cpu{}, dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                out.data(), lse.data(), shape);
    benchmark::DoNotOptimize(dq.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, attention_backward_flops(M, C));
}

void register_benchmark(const char* name, void (*fn)(benchmark::State&)) {
  benchmark::RegisterBenchmark(name, fn)
      ->ArgsProduct({{128, 512, 2048}, {256, 768}})
      ->ArgNames({"T", "C"})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(min_time_s);
}

}  // namespace

int main(int argc, char** argv) {
  register_benchmark("BM_Pattention/ffn", BM_Pattention_ffn);
  register_benchmark("BM_GemmPair/ffn", BM_GemmPair_ffn);
  register_benchmark("BM_PattentionNorm/ffn", BM_PattentionNorm_ffn);
  register_benchmark("BM_TokenFormerLayer", BM_TokenFormerLayer);
  register_benchmark("BM_LayerGemms", BM_LayerGemms);
  register_benchmark("BM_Attention", BM_Attention);
  register_benchmark("BM_AttentionBackward", BM_AttentionBackward);

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

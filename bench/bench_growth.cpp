// bench/bench_growth.cpp: the cost of growing a Pattention in place, against a plain memcpy of the
// grown tensors (what a grow-by-copy into new storage would at least cost).
//
//   BM_GrowWithinCapacity  append m tokens to a Pattention whose storage was reserved beforehand:
//                          zero-fills the new rows only, no existing token moves.
//   BM_GrowPastCapacity    append m tokens to a Pattention with no spare capacity: allocates, copies
//                          the old tokens once, and reserves 2x (amortized O(new tokens) over growths).
//   BM_MemcpyGrown         std::memcpy of the grown key and value tensors ((P + m) rows each).
// Shapes: C = 768 features, P = 3072 tokens (the 150M model's FFN), m in {256, 3072}.
// Each reports bytes/s of the grown tensors ("GBps"), so the ratios read directly.
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <vector>

#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;

namespace {

constexpr index_t C = 768, P = 3072;

double grown_bytes(index_t m) { return 2.0 * static_cast<double>((P + m) * C) * sizeof(float); }

void set_rate(benchmark::State& state, index_t m) {
  state.counters["GBps"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * grown_bytes(m) / 1e9, benchmark::Counter::kIsRate);
}

void BM_GrowWithinCapacity(benchmark::State& state) {
  const index_t m = state.range(0);
  std::unique_ptr<Pattention<float>> p;
  for (auto _ : state) {
    state.PauseTiming();  // build (and free the previous layer) outside the timed region
    p.reset();
    p = std::make_unique<Pattention<float>>(C, C, P, Normalization::l2_norm_gelu);
    p->key_parameter().reserve_rows(P + m);
    p->value_parameter().reserve_rows(P + m);
    const float* before = p->key_tokens().data();
    state.ResumeTiming();
    p->append_tokens(m);
    benchmark::DoNotOptimize(p->key_tokens().data());
    if (p->key_tokens().data() != before) state.SkipWithError("growth within capacity moved the tokens");
  }
  set_rate(state, m);
}

void BM_GrowPastCapacity(benchmark::State& state) {
  const index_t m = state.range(0);
  std::unique_ptr<Pattention<float>> p;
  for (auto _ : state) {
    state.PauseTiming();
    p.reset();
    p = std::make_unique<Pattention<float>>(C, C, P, Normalization::l2_norm_gelu);
    state.ResumeTiming();
    p->append_tokens(m);
    benchmark::DoNotOptimize(p->key_tokens().data());
  }
  set_rate(state, m);
}

void BM_MemcpyGrown(benchmark::State& state) {
  const index_t m = state.range(0);
  const std::size_t n = static_cast<std::size_t>((P + m) * C);
  std::vector<float> keys(n, 1.0f), values(n, 2.0f), keys_out(n), values_out(n);
  for (auto _ : state) {
    std::memcpy(keys_out.data(), keys.data(), n * sizeof(float));
    std::memcpy(values_out.data(), values.data(), n * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_rate(state, m);
}

}  // namespace

BENCHMARK(BM_GrowWithinCapacity)->Arg(256)->Arg(3072)->UseRealTime();
BENCHMARK(BM_GrowPastCapacity)->Arg(256)->Arg(3072)->UseRealTime();
BENCHMARK(BM_MemcpyGrown)->Arg(256)->Arg(3072)->UseRealTime();

BENCHMARK_MAIN();

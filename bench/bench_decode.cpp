// Decode speed with the KV cache, against the memory-bandwidth bound and against recomputing.
//
// For each model (the 150M preset's sizes and a small one, random weights, float, batch 1):
//   - a STREAM-like copy bandwidth measured in the same run (a[i] = b[i] over 2 x 512 MB, all
//     threads, best of 5; bytes read + written),
//   - prefill of a `context`-token prompt, then `tokens` decode steps: tokens/s,
//   - the bound: bytes one decode step must read (every parameter once, the output head included,
//     plus the K and V cache up to the current length) / the copy bandwidth,
//   - full recompute without a cache: the forward of the whole context for one next token
//     (LanguageModel::forward_last on `context` tokens, so the output head runs on one row only).
// Prints one table; no timing is asserted anywhere. Usage: bench_decode [--context 512] [--tokens 32]
// [--only small|150m]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <omp.h>

#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

/// Best copy bandwidth in bytes/s (read + write) over `bytes`-sized float arrays.
double copy_bandwidth(std::size_t bytes) {
  const std::size_t n = bytes / sizeof(float);
  std::vector<float> a(n), b(n);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i) {
    a[static_cast<std::size_t>(i)] = 0.0f;
    b[static_cast<std::size_t>(i)] = static_cast<float>(i & 1023);
  }
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto start = Clock::now();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i)
      a[static_cast<std::size_t>(i)] = b[static_cast<std::size_t>(i)];
    const double s = seconds_since(start);
    best = std::max(best, 2.0 * static_cast<double>(n * sizeof(float)) / s);
  }
  if (a[n / 2] != b[n / 2]) std::printf("copy check failed\n");
  return best;
}

struct Row {
  std::string model;
  double parameters_mb = 0, prefill_tps = 0, decode_tps = 0, bytes_per_token = 0, bound_tps = 0, recompute_tps = 0;
};

Row measure(const std::string& name, const ModelConfig& config, index_t context, index_t tokens, double bandwidth) {
  LanguageModel<presets::Dynamic<float>, cpu> model(config);
  Rng rng(1);
  model.initialize(rng);
  Row row;
  row.model = name;
  const double parameter_bytes = static_cast<double>(model.parameter_count()) * sizeof(float);
  row.parameters_mb = parameter_bytes / 1e6;
  std::vector<std::int32_t> prompt(static_cast<std::size_t>(context));
  for (std::size_t i = 0; i < prompt.size(); ++i)
    prompt[i] = static_cast<std::int32_t>((i * 2654435761u) % static_cast<std::size_t>(config.vocab_size));
  double cache_bytes = 0;  // K and V read per step, averaged over the decode steps
  {
    Generator<presets::Dynamic<float>, cpu, TokenFormerLayer> generator(model, 1, context + tokens + 1);
    auto start = Clock::now();
    const auto& first = generator.prefill({prompt});
    row.prefill_tps = static_cast<double>(context) / seconds_since(start);
    std::int32_t next = static_cast<std::int32_t>(std::max_element(first.begin(), first.end()) - first.begin());
    generator.step(Span<const std::int32_t>(&next, 1));  // warm-up step
    start = Clock::now();
    for (index_t i = 0; i < tokens; ++i) {
      const auto& logits = generator.step(Span<const std::int32_t>(&next, 1));
      next = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      cache_bytes += 2.0 * static_cast<double>(config.num_layers) * static_cast<double>(generator.length(0)) *
                     static_cast<double>(config.hidden_size) * sizeof(float);
    }
    row.decode_tps = static_cast<double>(tokens) / seconds_since(start);
  }
  row.bytes_per_token = parameter_bytes + cache_bytes / static_cast<double>(tokens);
  row.bound_tps = bandwidth / row.bytes_per_token;
  {
    Tensor<float, cpu> logits(Shape{1, model.vocab_size()});
    model.forward_last(logits, prompt, 1, context);  // warm-up
    const int reps = 3;
    const auto start = Clock::now();
    for (int r = 0; r < reps; ++r) model.forward_last(logits, prompt, 1, context);
    row.recompute_tps = reps / seconds_since(start);
  }
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  index_t context = 512, tokens = 32;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--context")
      context = std::stol(argv[i + 1]);
    else if (flag == "--tokens")
      tokens = std::stol(argv[i + 1]);
    else if (flag == "--only")
      only = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: bench_decode [--context N] [--tokens N] [--only small|150m]\n");
      return 2;
    }
  }
  const double bandwidth = copy_bandwidth(std::size_t{512} << 20);
  std::printf("threads %d, copy bandwidth %.1f GB/s (read + write, best of 5), context %ld, %ld decode steps\n",
              omp_get_max_threads(), bandwidth / 1e9, static_cast<long>(context), static_cast<long>(tokens));
  std::vector<Row> rows;
  if (only.empty() || only == "small") {
    ModelConfig small = ModelConfig::from<presets::Small>();
    rows.push_back(measure("small (4 x 256, V 257)", small, context, tokens, bandwidth));
  }
  if (only.empty() || only == "150m") {
    ModelConfig big = ModelConfig::from<presets::TokenFormer150M>();
    rows.push_back(measure("150M preset (12 x 768, V 50304)", big, context, tokens, bandwidth));
  }
  std::printf(
      "| model | weights MB | prefill tok/s | decode tok/s | bound tok/s | of bound | recompute tok/s | "
      "speed-up |\n|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows)
    std::printf("| %s | %.0f | %.0f | %.1f | %.1f | %.0f%% | %.2f | %.0fx |\n", r.model.c_str(), r.parameters_mb,
                r.prefill_tps, r.decode_tps, r.bound_tps, 100.0 * r.decode_tps / r.bound_tps, r.recompute_tps,
                r.decode_tps / r.recompute_tps);
  return 0;
}

// Decode speed of the static (embedded) model: int8 weights against float, batch 1, one thread.
//
// For three static configs (the board's model of example 07, example 02's model and the 150M preset's
// sizes; random weights, which do not change the work), each decodes `positions` tokens one at a
// time from an empty context, best of `repeats`:
//   - the static model with float weights (the baseline of each row),
//   - the same with int8 weights (a float scale per 32 values, dequantized in the dot products),
//   - LanguageModel's KV-cache decode (Generator, all OpenMP threads) with its float weights and with
//     int8 copies (WeightFormat::int8: the same row kernels, over the threads).
// Prints the weight bytes each decode step reads and tokens/s; the ratio int8/float is the figure.
// No timing is asserted anywhere. Usage: bench_embedded [--positions 64] [--repeats 3] [--only NAME]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "tokenformer/embedded/export.hpp"
#include "tokenformer/embedded/static_model.hpp"
#include "tokenformer/tokenformer.hpp"
#if TOKENFORMER_OPENMP
#include <omp.h>
#endif

using namespace tokenformer;
namespace emb = tokenformer::embedded;

namespace {

struct Board {  // examples/07_embedded.cpp's BoardModel
  static constexpr index_t num_layers = 4, hidden_size = 64, num_heads = 4;
  static constexpr index_t qkv_tokens = 64, proj_tokens = 64, ffn_tokens = 256;
  static constexpr index_t vocab_size = 257, max_context = 128;
  static constexpr double rotary_pct = 0.25, layernorm_epsilon = 1e-5;
  static constexpr Normalization normalization = Normalization::l2_norm_gelu;
};
struct Example02 : Board {  // example 02's default model
  static constexpr index_t hidden_size = 192, num_heads = 6, qkv_tokens = 192, proj_tokens = 192, ffn_tokens = 768;
  static constexpr double rotary_pct = 0.5;
};
struct Preset150M : Board {  // presets::TokenFormer150M's sizes
  static constexpr index_t num_layers = 12, hidden_size = 768, num_heads = 12;
  static constexpr index_t qkv_tokens = 768, proj_tokens = 768, ffn_tokens = 3072, vocab_size = 50304;
};

using Clock = std::chrono::steady_clock;

template <class Config, class Storage>
double static_tokens_per_second(const emb::Weights<Config, Storage>& weights, index_t positions, int repeats) {
  auto arena = std::make_unique<emb::Arena<Config>>();
  emb::StaticModel<Config, Storage> model(weights, *arena);
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    model.reset();
    std::int32_t token = 1;
    const auto start = Clock::now();
    for (index_t t = 0; t < positions; ++t) {
      model.step(token);
      token = model.argmax();
    }
    best = std::max(best, static_cast<double>(positions) / std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

template <class Config>
void run(const char* name, index_t positions, int repeats) {
  LanguageModel<presets::Dynamic<float>> heap(emb::model_config<Config>());
  Rng rng(1);
  heap.initialize(rng);
  emb::OwnedWeights<Config, emb::f32> f32(heap);
  emb::OwnedWeights<Config, emb::q8> q8(heap);
  const double f = static_tokens_per_second<Config>(f32.weights(), positions, repeats);
  const double q = static_tokens_per_second<Config>(q8.weights(), positions, repeats);
  const auto heap_speed = [&](WeightFormat format) {
    double best = 0.0;
    Generator generator(heap, 1, positions, format);  // the int8 copies are made here, not timed
    const index_t V = heap.vocab_size();
    for (int r = 0; r < repeats; ++r) {
      generator.reset();
      const auto start = Clock::now();
      const auto* logits = &generator.prefill({{1}});
      for (index_t t = 1; t < positions; ++t) {
        const std::int32_t next[] = {
            static_cast<std::int32_t>(std::max_element(logits->begin(), logits->begin() + V) - logits->begin())};
        logits = &generator.step(next);
      }
      best =
          std::max(best, static_cast<double>(positions) / std::chrono::duration<double>(Clock::now() - start).count());
    }
    return best;
  };
  const double h = heap_speed(WeightFormat::model), h8 = heap_speed(WeightFormat::int8);
  std::printf("| %s | %td | %.1f MB | %.1f MB | %.0f | %.0f | **%.2fx** | %.0f | %.0f | **%.2fx** |\n", name,
              heap.parameter_count(), static_cast<double>(emb::Weights<Config, emb::f32>::bytes()) / 1e6,
              static_cast<double>(emb::Weights<Config, emb::q8>::bytes()) / 1e6, f, q, q / f, h, h8, h8 / h);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  index_t positions = 64;
  int repeats = 3;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--positions")) positions = std::max<index_t>(1, std::atol(argv[i + 1]));
    if (!std::strcmp(argv[i], "--repeats")) repeats = std::max(1, std::atoi(argv[i + 1]));
    if (!std::strcmp(argv[i], "--only")) only = argv[i + 1];
  }
  positions = std::min<index_t>(positions, Board::max_context);
  int threads = 1;
#if TOKENFORMER_OPENMP
  threads = omp_get_max_threads();
#endif
  std::printf(
      "decode of %td positions from an empty context, batch 1, best of %d (static model: one thread, "
      "SIMD %s; LanguageModel: %d OpenMP threads)\n\n",
      positions, repeats, TOKENFORMER_EMBEDDED_SIMD ? "on" : "off", threads);
  std::printf(
      "| model | parameters | float weights | int8 weights | static float tok/s | static int8 tok/s | "
      "int8 / float | LanguageModel float tok/s | LanguageModel int8 tok/s | int8 / float |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  if (only.empty() || only == "board") run<Board>("board (example 07)", positions, repeats);
  if (only.empty() || only == "example02") run<Example02>("example 02", positions, repeats);
  if (only.empty() || only == "150m") run<Preset150M>("150M preset sizes", positions, repeats);
  return 0;
}

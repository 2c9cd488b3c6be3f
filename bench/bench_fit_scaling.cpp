// bench/bench_fit_scaling.cpp: one float32 training step of a FIT byte LM or of the TokenFormer LM
// of the same width, depth and token counts, at one sequence length; prints one JSON line with the
// step time and the process's peak resident memory. Run one process per (model, T) so that each
// peak RSS is that point's own: bench/run_fit_scaling.py does that and fits the log-log slopes.
//
//   bench_fit_scaling --model fit|tokenformer --seq T [--steps N] [--batch B]
//
// Models (byte level, vocab 257, l2_norm_gelu, rotary_pct 0.5, hidden 128, 4 heads, qkv = proj = 128
// and ffn = 512 tokens in every Pattention):
//   fit          layers "(1)1(1)1(1)" (3 local + 2 global TokenFormer layers, 2 reads, 2 writes),
//                groups of 256 tokens, 8 latents of width 128 (4 heads) per group, decoder (causal)
//   tokenformer  5 TokenFormer layers (as many as FIT's local + global layers), full causal attention
// A step is what a trainer does: zero_grad, forward_backward over B sequences of T random bytes,
// gradient clipping to norm 1, an AdamW step. One untimed step first allocates everything; the
// reported time is the median of the timed steps (wall clock; of an even count, the slower middle one:
// with the default 2 steps, the slower step).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "tokenformer/core/eigen.hpp"
#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;

namespace {

ModelConfig base_config() {
  ModelConfig c;
  c.hidden_size = 128;
  c.num_heads = 4;
  c.qkv_tokens = 128;
  c.proj_tokens = 128;
  c.ffn_tokens = 512;
  c.vocab_size = 257;
  c.rotary_pct = 0.5;
  c.normalization = Normalization::l2_norm_gelu;
  return c;
}

ModelConfig fit_config(index_t max_length) {
  ModelConfig c = base_config();
  c.architecture = Architecture::fit;
  c.fit.layers = "(1)1(1)1(1)";
  c.fit.group_size = 256;
  c.fit.latents_per_group = 8;
  c.fit.latent_size = 128;
  c.fit.latent_heads = 4;
  c.fit.max_groups = (max_length + 255) / 256;
  c.fit.causal = true;
  c.num_layers = static_cast<index_t>(parse_fit_layers(c.fit.layers).size());
  return c;
}

ModelConfig tokenformer_config() {
  ModelConfig c = base_config();
  c.num_layers = 5;
  return c;
}

double peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;  // Linux reports KiB
}

template <class Model>
int run(Model& model, const std::string& name, index_t B, index_t T, int steps) {
  Rng rng(1);
  model.initialize(rng);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(B * T)), targets(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>(rng.below(256));
  for (std::size_t i = 0; i < tokens.size(); ++i)
    targets[i] = (i + 1) % static_cast<std::size_t>(T) == 0 ? -1 : tokens[i + 1];
  AdamW adamw;
  std::vector<double> seconds;
  double loss = 0.0;
  for (int step = 0; step <= steps; ++step) {
    const auto begin = std::chrono::steady_clock::now();
    model.zero_grad();
    loss = model.forward_backward(tokens, targets, B, T);
    clip_gradient_norm(model, 1.0);
    adamw.step(model, 6e-4);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    if (step > 0) seconds.push_back(s);  // step 0 allocates
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  std::printf(
      "{\"model\": \"%s\", \"T\": %lld, \"B\": %lld, \"steps\": %d, \"seconds_per_step\": %.6f, "
      "\"tokens_per_second\": %.1f, \"peak_rss_bytes\": %.0f, \"parameters\": %lld, \"loss\": %.6f}\n",
      name.c_str(), static_cast<long long>(T), static_cast<long long>(B), steps, median,
      static_cast<double>(B * T) / median, peak_rss_bytes(), static_cast<long long>(model.parameter_count()), loss);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "fit";
  index_t T = 1024, B = 1;
  int steps = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--model") {
      model = value;
    } else if (key == "--seq") {
      T = std::atoll(value.c_str());
    } else if (key == "--batch") {
      B = std::atoll(value.c_str());
    } else if (key == "--steps") {
      steps = std::atoi(value.c_str());
    } else {
      std::cerr << "usage: bench_fit_scaling --model fit|tokenformer --seq T [--steps N] [--batch B]\n";
      return 2;
    }
  }
  if (T <= 0 || B <= 0 || steps <= 0 || (argc % 2) == 0) {
    std::cerr << "usage: bench_fit_scaling --model fit|tokenformer --seq T [--steps N] [--batch B]\n";
    return 2;
  }
  try {
    if (model == "fit") {
      LanguageModel<presets::Dynamic<float>, cpu, FitBody> m(fit_config(T));
      return run(m, model, B, T, steps);
    }
    if (model == "tokenformer") {
      LanguageModel<presets::Dynamic<float>> m(tokenformer_config());
      return run(m, model, B, T, steps);
    }
    std::cerr << "--model must be fit or tokenformer\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bench_fit_scaling: " << e.what() << "\n";
    return 1;
  }
}

// Example 07: a TokenFormer for a microcontroller (the host half; 07_embedded_firmware.cpp runs on
// the board).
//
// What you will learn
//   1. What changes for embedded, and why: every size static (a config struct), weights as const
//      arrays used in place (flash), one Arena for activations and the KV cache (RAM, a constexpr
//      size), int8 weights with a float scale per 32 values (4x smaller), exported as a header.
//      See include/tokenformer/embedded/static_model.hpp.
//   2. What int8 weights cost: validation loss of the same model with float and int8 weights.
//   3. How fast one token is decoded, float and int8, against the heap model's KV-cache decode.
// Read first: examples/02_train_char_lm.cpp (training), then embedded/static_model.hpp.
//
// Run:  ./build/examples/07_embedded [--steps N] [--corpus FILE]... [--out-dir DIR]
//       ./build/examples/07_embedded --example02 CHECKPOINT   (example 02's model, for its int8 loss)
// Default: trains the board's model (4 layers, hidden 64, 4 heads, 64/64/256 tokens, 279k parameters,
// context 96) on Debian's fortunes, then measures and writes DIR/model_data.hpp (int8) and
// DIR/model_data_f32.hpp for the firmware:
//   tests/cross/run_cortex_m.sh build/examples/tokenformer-cli OUT DIR/config.json DIR/model.safetensors
// builds 07_embedded_firmware.cpp for a Cortex-M7 and runs it under qemu-system-arm.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tokenformer/embedded/export.hpp"
#include "tokenformer/embedded/static_model.hpp"
#include "tokenformer/tokenformer.hpp"
#if TOKENFORMER_OPENMP
#include <omp.h>
#endif

using namespace tokenformer;
namespace emb = tokenformer::embedded;

namespace {

// The board's model: fits 512 KB of flash (int8) and 256 KB of RAM with its 96-position KV cache.
struct BoardModel {
  static constexpr index_t num_layers = 4, hidden_size = 64, num_heads = 4;
  static constexpr index_t qkv_tokens = 64, proj_tokens = 64, ffn_tokens = 256;
  static constexpr index_t vocab_size = 257, max_context = 96;
  static constexpr double rotary_pct = 0.25, layernorm_epsilon = 1e-5;
  static constexpr Normalization normalization = Normalization::l2_norm_gelu;
};
// Example 02's default model (2.4M parameters), to measure int8 on a larger trained model.
struct Example02Model : BoardModel {
  static constexpr index_t hidden_size = 192, num_heads = 6;
  static constexpr index_t qkv_tokens = 192, proj_tokens = 192, ffn_tokens = 768;
  static constexpr index_t max_context = 128;
  static constexpr double rotary_pct = 0.5;  // presets::Small's
};

struct Arguments {
  std::vector<std::string> corpus;
  long steps = 1500;
  std::string out_dir = "embedded_out";
  std::string example02;
  long windows = 64;
};

Arguments parse(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::printf(
          "usage: 07_embedded [--steps N] [--corpus FILE]... [--out-dir DIR] [--windows N] [--example02 CKPT]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) throw argument_error("missing value after " + key);
    const std::string value = argv[++i];
    if (key == "--corpus")
      args.corpus.push_back(value);
    else if (key == "--steps")
      args.steps = std::stol(value);
    else if (key == "--out-dir")
      args.out_dir = value;
    else if (key == "--example02")
      args.example02 = value;
    else if (key == "--windows")
      args.windows = std::stol(value);
    else
      throw argument_error("unknown option " + key);
  }
  if (args.steps < 0 || args.windows <= 0) throw argument_error("--steps must be >= 0 and --windows > 0");
  return args;
}

using HeapModel = LanguageModel<presets::Dynamic<float>>;

int omp_threads() {
#if TOKENFORMER_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// The distance between the starts of `windows` windows of T + 1 tokens spread over `text`.
index_t window_stride(const std::vector<std::int32_t>& text, index_t T, long windows) {
  const index_t stride = (static_cast<index_t>(text.size()) - T - 1) / windows;
  if (stride < 1)
    throw argument_error("the validation text (" + std::to_string(text.size()) + " bytes) is too short for " +
                         std::to_string(windows) + " windows of " + std::to_string(T + 1) + " bytes");
  return stride;
}

// Mean next-token loss (nats/byte) of the static model over `windows` windows of max_context bytes.
template <class Config, class Storage>
double static_loss(const emb::Weights<Config, Storage>& weights, const std::vector<std::int32_t>& text, long windows) {
  static emb::Arena<Config> arena;
  emb::StaticModel<Config, Storage> tiny(weights, arena);
  const index_t T = Config::max_context;
  const index_t stride = window_stride(text, T, windows);
  double total = 0.0;
  long count = 0;
  for (long w = 0; w < windows; ++w) {
    tiny.reset();
    const std::int32_t* window = text.data() + w * stride;
    for (index_t t = 0; t < T; ++t) {
      const float* logits = tiny.step(window[t]);
      double max = logits[0], sum = 0.0;
      for (index_t v = 1; v < Config::vocab_size; ++v) max = std::max(max, static_cast<double>(logits[v]));
      for (index_t v = 0; v < Config::vocab_size; ++v) sum += std::exp(static_cast<double>(logits[v]) - max);
      total += max + std::log(sum) - static_cast<double>(logits[window[t + 1]]);
      ++count;
    }
  }
  return total / static_cast<double>(count);
}

// The heap model's loss over the same windows.
template <class Config>
double heap_loss(HeapModel& model, const std::vector<std::int32_t>& text, long windows) {
  const index_t T = Config::max_context;
  const index_t stride = window_stride(text, T, windows);
  double total = 0.0;
  for (long w = 0; w < windows; ++w) {
    const std::vector<std::int32_t> tokens(text.begin() + w * stride, text.begin() + w * stride + T);
    const std::vector<std::int32_t> targets(text.begin() + w * stride + 1, text.begin() + w * stride + T + 1);
    total += model.loss(tokens, targets, 1, T);
  }
  return total / static_cast<double>(windows);
}

// Decode speed: tokens/s of a whole context, one position at a time (best of 5).
template <class Config, class Storage>
double static_tokens_per_second(const emb::Weights<Config, Storage>& weights) {
  static emb::Arena<Config> arena;
  emb::StaticModel<Config, Storage> tiny(weights, arena);
  double best = 0.0;
  for (int repeat = 0; repeat < 5; ++repeat) {
    tiny.reset();
    const auto start = std::chrono::steady_clock::now();
    std::int32_t token = 'T';
    for (index_t t = 0; t < Config::max_context; ++t) {
      tiny.step(token);
      token = tiny.argmax();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(Config::max_context) / seconds);
  }
  return best;
}

double heap_tokens_per_second(HeapModel& model, index_t context) {
  double best = 0.0;
  SamplingOptions greedy;
  greedy.temperature = 0.0;
  greedy.stop_token = -1;
  for (int repeat = 0; repeat < 5; ++repeat) {
    Rng rng(1);
    const auto start = std::chrono::steady_clock::now();
    generate(model, {'T'}, context - 1, rng, greedy);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(context) / seconds);
  }
  return best;
}

template <class Config>
int measure(HeapModel& model, const TextCorpus& corpus, const Arguments& args) {
  // ---- 2. The same weights for the static model: float and int8 (copies here; in firmware, the
  // arrays of the exported header are used in place).
  emb::OwnedWeights<Config, emb::f32> f32_weights(model);
  emb::OwnedWeights<Config, emb::q8> q8_weights(model);
  using F = emb::Weights<Config, emb::f32>;
  using Q = emb::Weights<Config, emb::q8>;
  std::printf(
      "\nsizes: weights %zu bytes float, %zu bytes int8 (%.2fx smaller); arena %zu bytes (KV cache of %td "
      "positions); rotary table %zu bytes\n",
      F::bytes(), Q::bytes(), static_cast<double>(F::bytes()) / static_cast<double>(Q::bytes()),
      sizeof(emb::Arena<Config>), Config::max_context, sizeof(emb::RotaryTable<Config>));

  // ---- 3. What int8 costs: validation loss over the same windows of held-out text.
  const auto& text = corpus.validation_tokens();
  const double heap = heap_loss<Config>(model, text, args.windows);
  const double f32 = static_loss<Config>(f32_weights.weights(), text, args.windows);
  const double q8 = static_loss<Config>(q8_weights.weights(), text, args.windows);
  std::printf(
      "validation loss over %ld windows of %td bytes (nats/byte): heap float %.5f, static float %.5f, "
      "static int8 %.5f (%+.3f%% vs float)\n",
      args.windows, Config::max_context, heap, f32, q8, 100.0 * (q8 - f32) / f32);

  // ---- 4. Decode speed, batch 1.
  const double heap_speed = heap_tokens_per_second(model, Config::max_context);
  const double f32_speed = static_tokens_per_second<Config>(f32_weights.weights());
  const double q8_speed = static_tokens_per_second<Config>(q8_weights.weights());
  std::printf(
      "decode, %td positions, batch 1: heap model (KV cache, %d OpenMP threads) %.0f tokens/s; static float "
      "%.0f tokens/s; static int8 %.0f tokens/s (%.2fx float; one thread)\n",
      Config::max_context, omp_threads(), heap_speed, f32_speed, q8_speed, q8_speed / f32_speed);

  // ---- 5. A greedy sample from the int8 model: what the board prints.
  static emb::Arena<Config> arena;
  emb::StaticModel<Config, emb::q8> tiny(q8_weights.weights(), arena);
  const std::int32_t prompt[] = {'T', 'h', 'e', ' '};
  std::int32_t out[80];
  const index_t n = tiny.generate_greedy(prompt, 4, out, 80);
  std::string sample = "The ";
  for (index_t i = 0; i < n && out[i] != ByteTokenizer::end_of_text; ++i) sample += static_cast<char>(out[i]);
  std::printf("greedy sample (int8): %s\n", sample.c_str());
  // The example's own check: the static float model computes the heap model's loss.
  if (!(std::fabs(f32 - heap) <= 1e-4 * heap) || !std::isfinite(q8)) {
    std::fprintf(stderr, "07_embedded: the static model's loss %.6f differs from the heap model's %.6f\n", f32, heap);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  const Arguments args = parse(argc, argv);
  std::filesystem::create_directories(args.out_dir);
  const auto files = args.corpus.empty() ? TextCorpus::default_files() : args.corpus;
  TextCorpus corpus(files, 0.1);

  if (!args.example02.empty()) {  // example 02's trained model: int8 against float
    HeapModel model(emb::model_config<Example02Model>());
    io::load_weights(model, args.example02);
    std::printf("example 02's model from %s: %td parameters\n", args.example02.c_str(), model.parameter_count());
    return measure<Example02Model>(model, corpus, args);
  }

  // ---- 1. Train the board's model (as example 02 does, smaller).
  HeapModel model(emb::model_config<BoardModel>());
  Rng init(7);
  model.initialize(init);
  TrainerOptions options;
  options.batch_size = 16;
  options.sequence_length = BoardModel::max_context;
  options.steps = args.steps;
  options.adamw.lr = 2e-3;
  options.min_lr = 2e-4;
  options.warmup_steps = 100;
  options.eval_every = std::max(1L, args.steps / 5);
  options.eval_batches = 8;
  options.seed = 7;
  Trainer<HeapModel> trainer(model, corpus, options);
  const TrainingRunSummary summary =
      run_training(trainer, args.out_dir, "The board's TokenFormer (279k parameters)", args.out_dir + "/summary.json");
  std::printf("trained %ld steps: validation loss %.4f nats/byte\n", summary.steps, summary.final_validation_loss);
  io::save_weights(model, args.out_dir + "/model.safetensors");
  io::write_config(model.config(), args.out_dir + "/config.json");

  // ---- 6. Export for the firmware: the int8 header the board runs, and a float one.
  for (const bool int8 : {true, false}) {
    emb::CHeaderOptions header;
    header.int8 = int8;
    header.max_context = BoardModel::max_context;
    header.source = "examples/07_embedded.cpp";
    const std::string path = args.out_dir + (int8 ? "/model_data.hpp" : "/model_data_f32.hpp");
    const std::string text = emb::c_header(model, header);
    io::write_file_atomically(path, [&](io::FileSink& sink) { sink.write(text.data(), text.size()); });
    std::printf("wrote %s (%zu bytes of C++)\n", path.c_str(), text.size());
  }
  return measure<BoardModel>(model, corpus, args);
} catch (const std::exception& e) {
  std::fprintf(stderr, "07_embedded: %s\n", e.what());
  return 1;
}

// The README's C++ snippets, compiled and run. The lines between `// [readme: NAME]` and
// `// [readme: end]` are the README block marked `<!-- snippet: NAME -->` (several regions of one name
// are joined; a region line `// README: X` is the README line X, which does not compile on purpose;
// a line ending in `// [readme: hide]` is compiled, not shown).
// check_readme_snippets compares the two, so the README cannot drift from code that builds; this
// program runs the snippets on a small checkpoint it writes first and checks what they claim.
// [readme: use]
#include <tokenformer/tokenformer.hpp>
using namespace tokenformer;
// [readme: end]

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

// clang-format off
// [readme: static-config]
struct MyConfig : presets::Tiny { static constexpr index_t num_layers = 4; };
struct Bad : presets::Tiny { static constexpr index_t num_heads = 5; };
// README: LanguageModel<Bad> m;   // error: static assertion failed: Config::num_heads must divide Config::hidden_size
// [readme: end]
// clang-format on

// [readme: embedded]
#include <tokenformer/embedded/static_model.hpp>  // freestanding: no heap, exceptions, RTTI or files
// README: #include "model_data.hpp"  // tokenformer-cli export-c --int8 --context 96 --out model_data.hpp ...
// [readme: end]
#include <tokenformer/embedded/export.hpp>

// What model_data.hpp declares (here filled from a LanguageModel by OwnedWeights, in main).
namespace my_model {
struct config {
  static constexpr index_t num_layers = 2, hidden_size = 32, num_heads = 4, qkv_tokens = 16, proj_tokens = 16;
  static constexpr index_t ffn_tokens = 32, vocab_size = 257, max_context = 96;
  static constexpr double rotary_pct = 0.25, layernorm_epsilon = 1e-5;
  static constexpr Normalization normalization = Normalization::l2_norm_gelu;
};
using storage = embedded::q8;
embedded::Weights<config, storage> weights{};
}  // namespace my_model

namespace {
void require(bool condition, const std::string& what) {
  if (!condition) throw std::runtime_error("README snippet: " + what);
}
}  // namespace

int main() try {
  // The files the snippet loads, in a scratch directory: a small model in the official layout.
  const auto dir = std::filesystem::temp_directory_path() / ("tokenformer_readme_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::current_path(dir);
  {
    ModelConfig config;
    config.num_layers = 2;
    config.hidden_size = 32;
    config.num_heads = 4;
    config.vocab_size = 50;
    config.qkv_tokens = 16;
    config.proj_tokens = 16;
    config.ffn_tokens = 32;
    LanguageModel<presets::Dynamic<float>> written(config);
    Rng seed(7);
    written.initialize(seed);
    io::save_weights(written, "model.safetensors");
    io::write_config(config, "config.json");
  }
  const index_t B = 2, T = 8;
  std::vector<std::int32_t> token_ids, tokens, targets;
  for (index_t i = 0; i < B * T; ++i) token_ids.push_back(static_cast<std::int32_t>((7 * i) % 50));
  tokens = token_ids;
  for (index_t i = 0; i < B * T; ++i)
    targets.push_back((i + 1) % T == 0 ? -1 : tokens[static_cast<std::size_t>(i + 1)]);
  LanguageModel<MyConfig> four_layers;  // the static-config snippet's config builds a model
  require(four_layers.layer_count() == 4, "MyConfig has 4 layers");

  // [readme: use]

  // A model whose sizes are known at compile time (checked by static_assert) ...
  LanguageModel<presets::Tiny> tiny;
  Rng rng(42);
  tiny.initialize(rng);
  Tensor<float> logits = tiny.forward({1, 2, 3, 4}, /*B=*/1, /*T=*/4);  // [1, 4, 257]

  // ... or one whose sizes come from an official config and checkpoint at run time.
  auto model = io::load_model("config.json", "model.safetensors");  // F32, F16 or BF16 weights
  auto out = model.forward(token_ids, B, T);                        // [B, T, V] from B*T ids
  Eigen::Map<RowMatrix<float>> m = out.matrix();                    // [B*T, V], no copy

  // Train it. forward_backward ADDS to the gradients: zero them at every step. targets[i] is the id
  // to predict at position i (the next token), or -1 to skip that position.
  AdamW adamw;  // AdamWOptions{}: lr 6e-4, betas 0.9/0.95, wd 0.1
  model.enable_training();
  for (int step = 0; step < 10; ++step) {
    model.zero_grad();
    double loss = model.forward_backward(tokens, targets, B, T);  // B*T ids each, checked
    clip_gradient_norm(model, 1.0);
    adamw.step(model);  // at adamw.options().lr; step(model, lr) for a schedule
    std::printf("step %d: loss %.4f\n", step, loss);
  }

  // Grow it in place: 4x the FFN tokens, the same function, and keep training.
  GrowthSpec spec;
  spec.ffn = 3 * model.config().ffn_tokens;
  spec.init = TokenInit::zero_keys;  // the default: new keys zero (exact), new values random (they train)
  spec.pin_scale = true;             // keep Θ's √n at the old token count
  grow(model, spec);

  // Save it; generate from it (temperature 0: greedy).
  io::save_weights(model, "grown.safetensors");
  io::write_config(model.config(), "grown.json");
  SamplingOptions greedy;
  greedy.temperature = 0;
  std::vector<std::int32_t> continuation = generate(model, {1, 2, 3}, /*count=*/16, rng, greedy);
  // [readme: end]

  require(logits.shape() == Shape{1, 4, 257}, "tiny's logits are [1, 4, 257]");
  require(out.shape() == Shape{B, T, 50} && m.rows() == B * T && m.cols() == 50, "out is [B, T, V]");
  require(model.config().ffn_tokens == 4 * 32, "the FFN grew 4x");
  require(continuation.size() == 16, "16 generated tokens");
  // The grown model computes what the trained one did: reload the saved files and compare with a
  // model trained the same way and not grown.
  auto reloaded = io::load_model("grown.json", "grown.safetensors");
  const double grown_loss = reloaded.loss(tokens, targets, B, T);
  auto trained = io::load_model("config.json", "model.safetensors");
  AdamW same;
  trained.enable_training();
  for (int step = 0; step < 10; ++step) {
    trained.zero_grad();
    trained.forward_backward(tokens, targets, B, T);
    clip_gradient_norm(trained, 1.0);
    same.step(trained);
  }
  const double trained_loss = trained.loss(tokens, targets, B, T);
  std::printf("loss after training %.6f, after growth (reloaded) %.6f\n", trained_loss, grown_loss);
  require(std::fabs(trained_loss - grown_loss) <= 1e-5, "growth keeps the function (loss within 1e-5)");
  {
    LanguageModel<presets::Dynamic<float>> small(embedded::model_config<my_model::config>());
    Rng init(3);
    small.initialize(init);
    embedded::OwnedWeights<my_model::config, my_model::storage> owned(small);
    my_model::weights = owned.weights();
    // [readme: embedded]
    static tokenformer::embedded::Arena<my_model::config> arena;  // RAM: activations and the KV cache
    tokenformer::embedded::StaticModel<my_model::config, my_model::storage> board(my_model::weights, arena);
    const std::int32_t prompt[] = {'T', 'h', 'e', ' '};
    std::int32_t text[40];
    const index_t n = board.generate_greedy(prompt, 4, text, 40);  // 40 ids, fewer if the context fills
    // [readme: end]
    require(n == 40 && board.length() == 4 + 39, "the static model generates 40 ids");
  }
  std::filesystem::current_path(std::filesystem::temp_directory_path());
  std::filesystem::remove_all(dir);
  std::puts("README snippets: ok");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}

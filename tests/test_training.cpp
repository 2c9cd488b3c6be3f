// Training: AdamW against torch, schedule, clipping, NaN detection, data, checkpoints and exact resume.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include <sys/wait.h>
#include <unistd.h>

#include "test_util.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/kernels/cpu.hpp"
#include "tokenformer/kernels/reference.hpp"
#include "tokenformer/model/generation.hpp"
#include "tokenformer/model/language_model.hpp"
#include "tokenformer/train/data.hpp"
#include "tokenformer/train/optimizer.hpp"
#include "tokenformer/train/report.hpp"
#include "tokenformer/train/schedule.hpp"
#include "tokenformer/train/trainer.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_training {

using namespace tokenformer;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("tokenformer_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

/// A small corpus file of real-looking text, written once per test.
std::string write_corpus() {
  const std::string path = temp_path("corpus.txt");
  std::ofstream out(path);
  for (int i = 0; i < 300; ++i)
    out << "The quick brown fox " << i % 17 << " jumps over the lazy dog. A stitch in time saves nine.\n";
  return path;
}

struct TinyModel : presets::Tiny {
  static constexpr index_t num_layers = 1, hidden_size = 32, num_heads = 2;
  static constexpr index_t qkv_tokens = 16, proj_tokens = 16, ffn_tokens = 32;
};

struct Wider : TinyModel {
  static constexpr index_t ffn_tokens = 48;
};

/// Trainer options of the short runs below: batches of 4 sequences of 32 bytes, lr 3e-3, 2
/// validation batches.
TrainerOptions small_run(long steps, long warmup_steps, long eval_every) {
  TrainerOptions options;
  options.batch_size = 4;
  options.sequence_length = 32;
  options.steps = steps;
  options.warmup_steps = warmup_steps;
  options.adamw.lr = 3e-3;
  options.eval_every = eval_every;
  options.eval_batches = 2;
  return options;
}

/// A double model whose vocabulary makes the head run in chunks of 256 rows.
struct BigVocab : TinyModel {
  using scalar = double;
  static constexpr index_t vocab_size = 70000, hidden_size = 8, num_heads = 2;
  static constexpr index_t qkv_tokens = 4, proj_tokens = 4, ffn_tokens = 8;
};

}  // namespace

TEST_CASE("AdamW cpu kernel matches the reference step", "[training][adamw]") {
  const auto g = test_util::random_vector<float>(1000, 1);
  auto p = test_util::random_vector<float>(1000, 2), m = test_util::random_vector<float>(1000, 3);
  auto v = test_util::random_vector<float>(1000, 4);
  for (auto& x : v) x = x * x;
  auto rp = p, rm = m, rv = v;
  kernels::adamw_step(cpu{}, p.data(), m.data(), v.data(), g.data(), 1000, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7);
  kernels::reference::adamw_step(rp.data(), rm.data(), rv.data(), g.data(), 1000, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7);
  // float computation against double: compare relative to magnitude (v reaches ~10).
  CHECK(test_util::max_scaled_diff(p, rp) <= 1e-6);
  CHECK(test_util::max_scaled_diff(m, rm) <= 1e-6);
  CHECK(test_util::max_scaled_diff(v, rv) <= 1e-6);
}

TEST_CASE("CosineSchedule: linear warmup, cosine decay to the minimum", "[training][schedule]") {
  CosineSchedule s{1.0, 0.1, 10, 110};
  CHECK(s(0) == Approx(0.1));
  CHECK(s(9) == Approx(1.0));
  CHECK(s(10) == Approx(1.0));
  CHECK(s(60) == Approx(0.55));  // half way: (max + min) / 2
  CHECK(s(110) == Approx(0.1));
  CHECK(s(500) == Approx(0.1));
  CHECK_THROWS_AS((CosineSchedule{0.1, 1.0, 1, 10}.validate()), config_error);
}

TEST_CASE("Gradient clipping scales the global norm to the limit", "[training][clip]") {
  LanguageModel<TinyModel> model;
  model.enable_training();
  model.for_each_parameter([](const std::string&, Parameter<float>& p) {
    for (index_t i = 0; i < p.size(); ++i) p.grad[i] = 1.0f;
  });
  const double norm = global_gradient_norm(model);
  CHECK(norm == Approx(std::sqrt(static_cast<double>(model.parameter_count()))));
  CHECK(clip_gradient_norm(model, 1.0) == Approx(norm));
  CHECK(global_gradient_norm(model) == Approx(1.0).epsilon(1e-5));
  CHECK(clip_gradient_norm(model, 10.0) == Approx(1.0).epsilon(1e-5));  // below the limit: unchanged
  CHECK(global_gradient_norm(model) == Approx(1.0).epsilon(1e-5));
}

TEST_CASE("check_finite names the step and the first tensor holding NaN or Inf", "[training][numerics]") {
  LanguageModel<TinyModel> model;
  model.enable_training();
  CHECK_NOTHROW(check_finite(model, 3, 1.5));
  CHECK_THROWS_WITH(check_finite(model, 3, std::numeric_limits<double>::quiet_NaN()),
                    Catch::Contains("step 3: the loss is nan"));
  model.layers[0].ffn.value_parameter().grad[5] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(check_finite(model, 12, 1.0),
                    Catch::Contains("step 12: the gradient of 'sequential.2.mlp.value_param_tokens' holds a "
                                    "non-finite value at index 5"));
}

TEST_CASE("Training stops with a clear error when the model produces NaN", "[training][numerics]") {
  const std::string corpus_path = write_corpus();
  TextCorpus corpus({corpus_path});
  LanguageModel<TinyModel> model;
  Rng rng(1);
  model.initialize(rng);
  model.layers[0].attention.value.value_parameter().value[3] = std::numeric_limits<float>::quiet_NaN();
  TrainerOptions options;
  options.batch_size = 2;
  options.sequence_length = 16;
  options.steps = 3;
  options.eval_every = 0;
  options.eval_batches = 1;
  Trainer<LanguageModel<TinyModel>> trainer(model, corpus, options);
  CHECK_THROWS_WITH(trainer.train_step(), Catch::Contains("step 1:"));
  std::remove(corpus_path.c_str());
}

TEST_CASE("ByteTokenizer and TextCorpus", "[training][data]") {
  CHECK(ByteTokenizer::encode("A\xff") == std::vector<std::int32_t>{65, 255});
  CHECK(ByteTokenizer::decode({72, 105, 256}) == "Hi\n");
  CHECK_THROWS_AS(ByteTokenizer::decode({300}), argument_error);
  const std::string path = write_corpus();
  TextCorpus corpus({path}, 0.1);
  const auto total = corpus.train_tokens().size() + corpus.validation_tokens().size();
  CHECK(corpus.validation_tokens().size() == Approx(0.1 * static_cast<double>(total)).margin(2));
  CHECK(corpus.validation_tokens().back() == ByteTokenizer::end_of_text);
  Rng a(5), b(5);
  const Batch x = corpus.sample(a, 4, 32), y = corpus.sample(b, 4, 32);
  CHECK(x.tokens == y.tokens);
  for (std::size_t i = 0; i + 1 < 32; ++i) CHECK(x.targets[i] == x.tokens[i + 1]);  // targets are shifted tokens
  CHECK_THROWS_AS(TextCorpus({"/nonexistent/file"}), file_error);
  CHECK_THROWS_AS(corpus.sample(a, 1, 1 << 20), argument_error);
  std::remove(path.c_str());
}

TEST_CASE("The head and loss run in row chunks, never all [B*T, V] logits: the same loss and gradients",
          "[training][head]") {
  // A vocabulary large enough that 300 rows take two chunks of the head (256 + 44, the boundary inside
  // the third sequence). The chunked call must equal two calls on fewer rows, one chunk each, whose
  // gradients add up (grad_scale = their share of the targets).
  using Model = LanguageModel<BigVocab>;
  constexpr index_t B = 3, T = 100, V = BigVocab::vocab_size;
  REQUIRE(Model::head_chunk_rows(B * T, V) == 256);
  REQUIRE(Model::head_chunk_rows(2 * T, V) == 2 * T);
  Model model;
  Rng init(11);
  model.initialize(init);
  Rng data(12);
  std::vector<std::int32_t> tokens(B * T), targets(B * T);
  for (auto& id : tokens) id = static_cast<std::int32_t>(data.next() % V);
  for (auto& id : targets) id = static_cast<std::int32_t>(data.next() % V);
  targets[5] = targets[260] = -1;  // skipped positions, one in each chunk
  const double counted = B * T - 2, first = 2 * T - 1, second = T - 1;
  const auto gradients = [&] {
    std::vector<double> all;
    model.for_each_parameter([&](const std::string&, Parameter<double, cpu>& p) {
      all.insert(all.end(), p.grad.data(), p.grad.data() + p.grad.size());
    });
    return all;
  };
  model.zero_grad();
  const double chunked = model.forward_backward(tokens, targets, B, T);
  const std::vector<double> chunked_grad = gradients();
  CHECK(model.loss(tokens, targets, B, T) == Approx(chunked).epsilon(1e-12));

  model.zero_grad();
  const auto part = [&](index_t b0, index_t b1) {
    return std::make_pair(Span<const std::int32_t>(tokens.data() + b0 * T, (b1 - b0) * T),
                          Span<const std::int32_t>(targets.data() + b0 * T, (b1 - b0) * T));
  };
  const auto [tokens_a, targets_a] = part(0, 2);
  const auto [tokens_b, targets_b] = part(2, 3);
  const double loss_a = model.forward_backward(tokens_a, targets_a, 2, T, first / counted);
  const double loss_b = model.forward_backward(tokens_b, targets_b, 1, T, second / counted);
  const std::vector<double> split_grad = gradients();
  CHECK(chunked == Approx((loss_a * first + loss_b * second) / counted).epsilon(1e-12));
  REQUIRE(split_grad.size() == chunked_grad.size());
  double worst = 0.0, largest = 0.0;
  for (std::size_t i = 0; i < split_grad.size(); ++i) {
    worst = std::max(worst, std::abs(split_grad[i] - chunked_grad[i]));
    largest = std::max(largest, std::abs(split_grad[i]));
  }
  CHECK(largest > 0.0);
  CHECK(worst <= 1e-12 * largest);
}

TEST_CASE("bf16 mixed precision: loss and gradients near fp32's, and a short run tracks fp32", "[training][bf16]") {
  using Model = LanguageModel<TinyModel>;
  Model model;
  Rng init(3);
  model.initialize(init);
  constexpr index_t B = 2, T = 48;
  Rng data(4);
  std::vector<std::int32_t> tokens(B * T), targets(B * T);
  for (auto& id : tokens) id = static_cast<std::int32_t>(data.next() % 257);
  for (std::size_t i = 0; i + 1 < tokens.size(); ++i) targets[i] = tokens[i + 1];
  targets.back() = -1;
  const auto run = [&](Precision precision, std::vector<float>& gradient) {
    const kernels::GemmPrecisionScope scope(precision);
    model.zero_grad();
    const double loss = model.forward_backward(tokens, targets, B, T);
    gradient.clear();
    model.for_each_parameter([&](const std::string&, Parameter<float, cpu>& p) {
      gradient.insert(gradient.end(), p.grad.data(), p.grad.data() + p.grad.size());
    });
    return loss;
  };
  std::vector<float> g32, g16;
  const double loss32 = run(Precision::fp32, g32), loss16 = run(Precision::bf16, g16);
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < g32.size(); ++i) {
    diff += (double(g16[i]) - g32[i]) * (double(g16[i]) - g32[i]);
    norm += double(g32[i]) * g32[i];
  }
  const double relative = std::sqrt(diff / norm);
  INFO("loss fp32 " << loss32 << " bf16 " << loss16 << ", gradient relative L2 difference " << relative);
  // bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); the errors of ~20 products
  // per gradient add up to a few times that. Both must differ from fp32 (the setting took effect).
  CHECK(std::abs(loss16 - loss32) <= 2e-3 * loss32);
  CHECK(loss16 != loss32);
  CHECK(relative <= 0.03);
  CHECK(relative >= 1e-4);

  // 40 training steps from the same initialization: the bf16 run's losses track the fp32 run's.
  const std::string corpus_path = write_corpus();
  TextCorpus corpus({corpus_path});
  TrainerOptions options = small_run(40, 4, 40);
  std::vector<double> validation, last_loss;
  for (Precision precision : {Precision::fp32, Precision::bf16}) {
    Model fresh;
    Rng fresh_init(3);
    fresh.initialize(fresh_init);
    options.precision = precision;
    Trainer<Model> trainer(fresh, corpus, options);
    while (!trainer.done()) trainer.train_step();
    CHECK(trainer.history().back().loss < trainer.history().front().loss - 1.0);
    validation.push_back(trainer.history().back().validation_loss);
    last_loss.push_back(trainer.history().back().loss);
    CHECK(kernels::gemm_precision() == Precision::fp32);  // restored after each step and evaluation
  }
  INFO("validation loss fp32 " << validation[0] << " bf16 " << validation[1]);
  CHECK(std::abs(validation[1] - validation[0]) <= 0.01 * validation[0]);
  CHECK(last_loss[1] != last_loss[0]);  // the trainer did switch to bf16

  // bf16 is for float models on the CPU; an unknown value is refused.
  LanguageModel<BigVocab> double_model;
  options.precision = Precision::bf16;
  CHECK_THROWS_WITH(Trainer<LanguageModel<BigVocab>>(double_model, corpus, options),
                    Catch::Contains("precision bf16 needs a float model on the CPU"));
  options.precision = static_cast<Precision>(9);
  CHECK_THROWS_WITH(options.validate(), Catch::Contains("unknown precision value 9"));
  std::remove(corpus_path.c_str());
}

TEST_CASE("Training reduces the loss, and resuming from a checkpoint reproduces the uninterrupted run exactly",
          "[training][resume]") {
  const std::string corpus_path = write_corpus(), checkpoint = temp_path("resume.safetensors");
  TextCorpus corpus({corpus_path});
  TrainerOptions options = small_run(12, 2, 4);
  using Model = LanguageModel<TinyModel>;

  Model straight_model;
  Rng init(7);
  straight_model.initialize(init);
  Trainer<Model> straight(straight_model, corpus, options);
  std::vector<double> expected;
  while (!straight.done()) expected.push_back(straight.train_step().loss);
  CHECK(expected.back() < expected.front() - 0.5);

  Model first_model;
  Rng init2(7);
  first_model.initialize(init2);
  Trainer<Model> first(first_model, corpus, options);
  std::vector<double> resumed;
  for (int i = 0; i < 5; ++i) resumed.push_back(first.train_step().loss);
  first.save(checkpoint);

  Model second_model;  // fresh weights: everything must come from the checkpoint
  Trainer<Model> second(second_model, corpus, options);
  second.resume(checkpoint);
  CHECK(second.step() == 5);
  while (!second.done()) resumed.push_back(second.train_step().loss);
  REQUIRE(resumed.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) CHECK(resumed[i] == expected[i]);  // bit-identical
  CHECK(second.history().back().validation_loss == straight.history().back().validation_loss);

  // A checkpoint of another shape is refused with a message naming the tensor, before anything is
  // read: the embedding, which fits and comes first, is not loaded either (it used to be).
  LanguageModel<Wider> other;
  Trainer<LanguageModel<Wider>> wrong(other, corpus, options);
  const auto& embedding = other.word_embeddings.value;
  const std::vector<float> embedding_before(embedding.data(), embedding.data() + embedding.size());
  CHECK_THROWS_WITH(wrong.resume(checkpoint),
                    Catch::Contains("mlp.key_param_tokens' has shape [32, 32], expected [48, 32]"));
  CHECK(std::vector<float>(embedding.data(), embedding.data() + embedding.size()) == embedding_before);
  CHECK(wrong.step() == 0);
  // A checkpoint beyond the run's steps is refused before anything is loaded.
  TrainerOptions fewer = options;
  fewer.steps = 3;
  Model third_model;
  Trainer<Model> third(third_model, corpus, fewer);
  CHECK_THROWS_WITH(third.resume(checkpoint), Catch::Contains("beyond the 3 steps of this run"));
  const auto& third_embedding = third_model.word_embeddings.value;
  CHECK(std::all_of(third_embedding.data(), third_embedding.data() + third_embedding.size(),
                    [](float x) { return x == 0.0f; }));
  std::remove(checkpoint.c_str());
  std::remove(corpus_path.c_str());
}

TEST_CASE("A crash while saving a checkpoint leaves the previous checkpoint intact", "[training][checkpoint]") {
  const std::string path = temp_path("crash.safetensors");
  LanguageModel<TinyModel> model;
  Rng rng(3);
  model.initialize(rng);
  AdamW optimizer;
  io::save_training_checkpoint(path, model, optimizer, io::TrainingState{1, rng.state()});
  std::ifstream before_file(path, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(before_file)), std::istreambuf_iterator<char>());

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Start writing a different checkpoint and die in the middle of it.
    io::write_file_atomically(path, [](io::FileSink& sink) {
      const std::string junk(1 << 16, 'x');
      sink.write(junk.data(), junk.size());
      ::raise(SIGKILL);
    });
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFSIGNALED(status));
  std::ifstream after_file(path, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(after_file)), std::istreambuf_iterator<char>());
  CHECK(after == before);
  LanguageModel<TinyModel> restored;
  AdamW restored_optimizer;
  CHECK(io::load_training_checkpoint(path, restored, restored_optimizer).step == 1);
  std::remove(path.c_str());
  std::remove(test_util::atomic_temp_file(path, child).c_str());
}

TEST_CASE("generate samples deterministically from a seed and greedily at temperature 0", "[model][generation]") {
  LanguageModel<TinyModel> model;
  Rng init(11);
  model.initialize(init);
  Rng a(1), b(1);
  const auto x = generate(model, {72, 101}, 8, a), y = generate(model, {72, 101}, 8, b);
  CHECK(x == y);
  CHECK(x.size() == 8);
  SamplingOptions greedy;
  greedy.temperature = 0;
  const auto g = generate(model, {72}, 3, a, greedy);
  const auto logits = model.forward({72}, 1, 1);
  index_t best = 0;
  for (index_t v = 1; v < 257; ++v)
    if (logits[v] > logits[best]) best = v;
  CHECK(g[0] == best);
  CHECK_THROWS_AS(generate(model, {}, 3, a), argument_error);
}

TEST_CASE("sampling options and learning rates out of range are refused by name, not used", "[training][options]") {
  LanguageModel<TinyModel> model;
  Rng init(11), rng(1);
  model.initialize(init);
  const auto refused = [&](SamplingOptions o, const char* words) {
    INFO(words);
    CHECK_THROWS_WITH(generate(model, {72}, 2, rng, o), Catch::Contains(words));
  };
  SamplingOptions o;
  o.temperature = std::nan("");
  refused(o, "temperature must be finite and >= 0");
  o.temperature = HUGE_VAL;
  refused(o, "temperature must be finite and >= 0");
  o.temperature = -1;
  refused(o, "temperature must be finite and >= 0");
  o = SamplingOptions{};
  o.top_k = -3;
  refused(o, "top_k must be >= 0");
  o = SamplingOptions{};
  o.max_context = 0;
  refused(o, "max_context must be positive");
  // learning rates: AdamW's options, each step's, the schedule's
  AdamWOptions nan_lr;
  nan_lr.lr = std::nan("");
  CHECK_THROWS_WITH(AdamW(nan_lr), Catch::Contains("learning rate must be finite"));
  AdamW adamw;
  std::vector<std::int32_t> tokens{1, 2, 3, 4}, targets{2, 3, 4, -1};
  model.forward_backward(tokens, targets, 1, 4);
  const auto before = std::vector<float>(model.word_embeddings.value.data(),
                                         model.word_embeddings.value.data() + model.word_embeddings.size());
  for (double bad : {std::nan(""), -1e-3, HUGE_VAL})
    CHECK_THROWS_WITH(adamw.step(model, bad), Catch::Contains("learning rate must be finite and >= 0"));
  CHECK(std::vector<float>(model.word_embeddings.value.data(),
                           model.word_embeddings.value.data() + model.word_embeddings.size()) == before);
  CHECK(adamw.step_count() == 0);
  CosineSchedule schedule;
  schedule.max_lr = HUGE_VAL;
  CHECK_THROWS_WITH(schedule.validate(), Catch::Contains("finite learning rates"));
  schedule.max_lr = std::nan("");
  CHECK_THROWS_AS(schedule.validate(), config_error);
}

TEST_CASE("write_svg_plot keeps every label inside the picture and clips curves to y_max", "[training][report]") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tokenformer_plot_" + std::to_string(::getpid()) + ".svg")).string();
  PlotSeries a{"a <&> b", {0, 5.6e12, 1.13e13}, {5.5, 2.0, 1.9}, "#d62728"};
  write_svg_plot(path, {a}, "title", "training FLOPs", "loss", {PlotMarker{5.6e12, "growth"}}, 2.2);
  std::ifstream in(path);
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(path.c_str());
  CHECK(svg.find("a &lt;&amp;&gt; b") != std::string::npos);
  CHECK(svg.find("clip-path=\"url(#frame)\"") != std::string::npos);
  // The y axis ends at y_max (2.2 + 5% padding of the range), not at the first point's 5.5.
  CHECK(svg.find(">5.5<") == std::string::npos);
  // The last x tick label, "1.13e+13" centred on the right edge of the frame, fits in the width:
  // about 7 px per character at font size 12 leaves it inside 800 px.
  const std::size_t label = svg.find(">1.13e+13<");
  REQUIRE(label != std::string::npos);
  const std::size_t x_at = svg.rfind("<text x=\"", label);
  const double x = std::stod(svg.substr(x_at + 9));
  CHECK(x + 7.0 * 8 / 2 <= 800);
}

}  // namespace test_training

// A strict consumer: instantiates a broad part of the public API (models with static and run-time
// configs, cpu and reference devices, float and double; FIT and Transformer bodies; training,
// growth, generation, transfer, io, tokenizers) so that the test in tests/CMakeLists.txt can compile
// it with -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror and our headers
// included with -I, not as system headers. Only its compilation is tested. Run with a scratch
// directory as its argument, it also exercises each path once on tiny models.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <tokenformer/tokenformer.hpp>
#if TOKENFORMER_STRICT_BPE
#include <tokenformer/tokenizer/bpe_tokenizer.hpp>
#endif

using namespace tokenformer;

namespace {

/// presets::Tiny in double.
struct TinyDouble : presets::Tiny {
  using scalar = double;
};

ModelConfig tiny_config(Architecture architecture = Architecture::tokenformer) {
  ModelConfig c;
  c.architecture = architecture;
  c.num_layers = 2;
  c.hidden_size = 16;
  c.num_heads = 2;
  c.qkv_tokens = 6;
  c.proj_tokens = 5;
  c.ffn_tokens = 7;
  c.vocab_size = ByteTokenizer::vocab_size;  // the training corpus is bytes
  c.rotary_pct = 0.5;
  if (architecture == Architecture::fit) {
    c.fit.layers = "(1)1(1)";
    c.fit.group_size = 4;
    c.fit.latents_per_group = 2;
    c.fit.latent_size = 8;
    c.fit.latent_heads = 2;
    c.fit.max_groups = 5;
    c.num_layers = static_cast<index_t>(parse_fit_layers(c.fit.layers).size());
  } else if (architecture == Architecture::transformer) {
    c.qkv_tokens = c.proj_tokens = c.ffn_tokens = 0;
    c.intermediate_size = 24;
  }
  return c;
}

/// Forward, loss, backward, an optimizer step, growth, generation and io on one model.
template <class Config, class Device, template <class, class> class Block>
void exercise_model(LanguageModel<Config, Device, Block>& model, const std::string& dir, const std::string& name) {
  using Model = LanguageModel<Config, Device, Block>;
  using T = typename Model::scalar;
  Rng rng(7);
  model.initialize(rng);
  const index_t B = 2, T_len = 8, V = model.vocab_size();
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(B * T_len)), targets(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<std::int32_t>(i % static_cast<std::size_t>(V));
    targets[i] = static_cast<std::int32_t>((i + 1) % static_cast<std::size_t>(V));
  }
  targets[0] = -1;

  // forward, forward_last, loss, forward_backward
  const Tensor<T, Device> logits = model.forward(tokens, B, T_len);
  std::vector<T> host(static_cast<std::size_t>(logits.size()));
  logits.copy_to_host(host.data());
  Tensor<T, Device> last(Shape{B, V}, model.device());
  model.forward_last(last, tokens, B, T_len);
  const double eval_loss = model.loss(tokens, targets, B, T_len);
  model.zero_grad();
  const double train_loss = model.forward_backward(tokens, targets, B, T_len, 0.5);

  // optimizer, clipping, schedule
  AdamW optimizer(AdamWOptions{});
  const double norm = clip_gradient_norm(model, 1.0);
  const CosineSchedule schedule{1e-3, 1e-4, 2, 10};
  schedule.validate();
  optimizer.step(model, schedule(0));
  check_finite(model, 1, train_loss);
  std::printf("%s: %lld parameters, loss %.4f / %.4f, gradient norm %.4f, logit %.4f\n", name.c_str(),
              static_cast<long long>(model.parameter_count()), eval_loss, train_loss, norm,
              static_cast<double>(host.at(0)));

  // io: weights, config, training checkpoints, load_model
  const std::string weights = dir + "/" + name + ".safetensors", config = dir + "/" + name + ".json";
  io::save_weights(model, weights);
  io::write_config(model.config(), config);
  io::load_weights(model, weights);
  Model copy(io::read_config(config, V), model.device());
  io::load_weights(copy, weights);
  copy_parameters(copy, model);
  io::save_training_checkpoint(dir + "/" + name + ".checkpoint", model, optimizer, io::TrainingState{1, rng.state()});
  const io::TrainingState state = io::load_training_checkpoint(dir + "/" + name + ".checkpoint", copy, optimizer);
  auto loaded = io::load_model<presets::Dynamic<T>, Device, Block>(config, weights, model.device());
  const std::string model_dir = dir + "/" + name;
  std::filesystem::create_directories(model_dir);
  io::write_config(model.config(), model_dir + "/config.json");
  io::save_weights(model, model_dir + "/model.safetensors");
  auto from_directory = io::load_model<presets::Dynamic<T>, Device, Block>(model_dir, model.device());
  std::printf("%s: resumed at step %ld, reloaded %lld and %lld parameters\n", name.c_str(), state.step,
              static_cast<long long>(loaded.parameter_count()),
              static_cast<long long>(from_directory.parameter_count()));

  // growth: in place, and loading a smaller checkpoint into a grown model
  GrowthSpec spec;
  spec.qkv = spec.proj = spec.ffn = 2;
  spec.pin_scale = true;
  spec.value_std = 0.01;
  if (model.config().architecture != Architecture::transformer) {  // a transformer has no tokens to grow
    grow(copy, spec);
    copy.refresh_config_from_layers();
    io::load_weights_for_growth(copy, weights);
  }

  // generation
  SamplingOptions options;
  options.top_k = 5;
  options.top_p = 0.9;
  const auto generated = generate(model, {1, 2, 3}, 4, rng, options, [](index_t, std::int32_t) {});
  const auto batch = generate_batch(model, {{1, 2}, {3, 4, 5}}, 3, rng, options);
  std::printf("%s: generated %zu + %zu tokens\n", name.c_str(), generated.size(), batch.size());
}

/// The KV-cache generator (blocks with a self-attention member).
template <class Config, class Device, template <class, class> class Block>
void exercise_generator(LanguageModel<Config, Device, Block>& model) {
  Generator<Config, Device, Block> generator(model, 2, 16);
  const auto& prefilled = generator.prefill({{1, 2, 3}, {4, 5}});
  const std::vector<std::int32_t> next = {6, 7};
  const auto& stepped = generator.step(next);
  std::printf("generator: %zu then %zu logits, lengths %lld and %lld\n", prefilled.size(), stepped.size(),
              static_cast<long long>(generator.length(0)), static_cast<long long>(generator.length(1)));
  generator.reset();
}

/// The Trainer and the training-run helpers.
template <class Model>
void exercise_training(Model& model, const std::string& dir) {
  const std::string corpus_path = dir + "/corpus.txt";
  {
    std::ofstream out(corpus_path);
    for (int i = 0; i < 40; ++i) out << "The quick brown fox jumps over the lazy dog. " << i << "\n";
  }
  const TextCorpus corpus({corpus_path});
  TrainerOptions options;
  options.batch_size = 2;
  options.sequence_length = 16;
  options.steps = 3;
  options.warmup_steps = 1;
  options.eval_every = 2;
  options.eval_batches = 1;
  Trainer<Model> trainer(model, corpus, options);
  const TrainingRunSummary summary = run_training(trainer, dir + "/run", "strict consumer");
  Trainer<Model> again(model, corpus, options);
  again.resume(dir + "/run/checkpoint.safetensors");
  TrainerOptions more = options;
  more.steps = 5;
  Trainer<Model> curve_trainer(model, corpus, more);
  const ComputeCurve curve = run_compute_curve(curve_trainer, 1e6, "curve", [](const StepRecord&) {});
  std::printf("training: %ld steps, loss %.4f, %.3g FLOPs to reach %.4f\n", summary.steps, summary.final_train_loss,
              flops_to_reach(curve, curve.final_validation), curve.final_validation);
}

/// Cross-architecture transfer, with freezing and the unfreezer.
template <class Source, class Target>
void exercise_transfer(Source& source, Target& target) {
  TransferSpec spec;
  spec.freeze_transferred = true;
  spec.skip("norms");
  const TransferReport report = transfer(source, target, spec);
  UnfreezeOptions options;
  options.after_steps = 1;
  Unfreezer unfreezer(report, options);
  unfreezer.update(target, 1, 2.5);
  std::printf("transfer: %lld copied\n%s", static_cast<long long>(report.count(TransferAction::copied)),
              report.str().c_str());
}

/// The layers on their own.
template <class T, class Device>
void exercise_layers() {
  Rng rng(3);
  const index_t M = 3;
  Pattention<T, Device> pattention(4, 5, 6, Normalization::l2_norm_gelu);
  pattention.initialize(rng, 0.02, 0.02);
  pattention.for_each_parameter([](const std::string&, Parameter<T, Device>& p) { p.enable_training(); });
  Linear<T, Device> linear(4, 5);
  linear.initialize(rng, 0.02);
  linear.for_each_parameter([](const std::string&, Parameter<T, Device>& p) { p.enable_training(); });
  Tensor<T, Device> in(Shape{M, 4}), out(Shape{M, 5}), d_in(Shape{M, 4});
  in.set_zero();
  pattention.forward(out, in);
  pattention.backward(d_in, out, in);
  linear.forward(out, in);
  linear.backward(d_in, out, in);
  pattention.append_tokens(2, &rng);
}

/// json, safetensors, torch checkpoints and the byte tokenizer.
void exercise_io(const std::string& dir) {
  const io::Json json = io::parse_json(R"({"a": [1, 2.5, "x\u00e9"], "b": {"c": true, "d": null}})");
  const double a1 = json.as_object().at("a").as_array().at(1).as_number();
  std::printf("json: %s (%g)\n", json.dump().c_str(), a1);

  io::SafetensorsWriter writer;
  const std::vector<float> values = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  writer.add("x", Shape{2, 3}, values.data());
  writer.set_metadata("format", "pt");
  writer.write(dir + "/x.safetensors");
  io::SafetensorsReader reader(dir + "/x.safetensors");
  std::vector<double> back(values.size());
  reader.read("x", Shape{2, 3}, back.data());
  Tensor<float> tensor(Shape{2, 3});
  reader.read("x", tensor);
  io::WeightsFile file(dir + "/x.safetensors");
  file.read("x", Shape{2, 3}, back.data());
  io::convert_to_safetensors(dir + "/x.safetensors", dir + "/y.safetensors");
  try {
    io::TorchCheckpointReader torch = io::TorchCheckpointReader::from_memory(std::string("PK not a zip"));
    torch.read("x", Shape{2, 3}, back.data());
  } catch (const file_error& e) {
    std::printf("torch: %s\n", e.what());
  }

  const std::vector<std::int32_t> ids = ByteTokenizer::encode("héllo");
  std::printf("bytes: %zu ids, '%s'\n", ids.size(), ByteTokenizer::decode(ids).c_str());
#if TOKENFORMER_STRICT_BPE
  const BpeTokenizer bpe = BpeTokenizer::from_json(
      R"({"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
          "normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
          "trim_offsets": true, "use_regex": true}, "post_processor": null,
          "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
          "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
          "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
          "vocab": {"h": 0, "i": 1, "hi": 2}, "merges": ["h i"]}})");
  const auto bpe_ids = bpe.encode("hi");
  std::printf("bpe: %zu ids, '%s', vocabulary %lld\n", bpe_ids.size(), bpe.decode(bpe_ids).c_str(),
              static_cast<long long>(bpe.vocab_size()));
#endif
}

}  // namespace

int main(int argc, char** argv) {
  // Without a scratch directory, nothing runs: the test only compiles this file.
  if (argc < 2) return 0;
  const std::string dir = argv[1];
  try {
    LanguageModel<presets::Tiny> tiny;  // static, cpu, float
    exercise_model(tiny, dir, "tiny");
    exercise_generator(tiny);
    exercise_training(tiny, dir);
    LanguageModel<TinyDouble, reference> tiny_reference;  // static, reference, double
    exercise_model(tiny_reference, dir, "tiny_reference");

    LanguageModel<presets::Dynamic<double>> dynamic_double(tiny_config());  // run-time, cpu, double
    exercise_model(dynamic_double, dir, "dynamic_double");
    exercise_generator(dynamic_double);
    LanguageModel<presets::Dynamic<float>, reference> dynamic_reference(tiny_config());
    exercise_model(dynamic_reference, dir, "dynamic_reference");

    LanguageModel<presets::Dynamic<float>, cpu, FitBody> fit(tiny_config(Architecture::fit));
    exercise_model(fit, dir, "fit");
    LanguageModel<presets::Dynamic<double>, reference, FitBody> fit_reference(tiny_config(Architecture::fit));
    exercise_model(fit_reference, dir, "fit_reference");

    LanguageModel<presets::Dynamic<float>, cpu, TransformerLayer> transformer(tiny_config(Architecture::transformer));
    exercise_model(transformer, dir, "transformer");
    exercise_generator(transformer);
    exercise_training(transformer, dir);
    LanguageModel<presets::Dynamic<double>, cpu, TransformerLayer> transformer_double(
        tiny_config(Architecture::transformer));
    exercise_model(transformer_double, dir, "transformer_double");

    exercise_transfer(transformer, fit);
    exercise_transfer(fit, dynamic_double);
    exercise_transfer(transformer_double, dynamic_reference);

    exercise_layers<float, cpu>();
    exercise_layers<double, reference>();
    exercise_io(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strict consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}

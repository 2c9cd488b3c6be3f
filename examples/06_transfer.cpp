// Example 06: cross-architecture transfer (XATL), a trained model warm-starts another architecture.
//
// What you will learn
//   1. What XATL (arXiv 2404.02684) does: a new architecture need not start from scratch when a trained
//      model of another architecture exists. The components both have (token embeddings, norms,
//      feed-forward layers, attention projections) are copied by role and layer, the rest is
//      initialized as usual, and training goes on from there.
//   2. How transfer(source, target, spec) does it across this library's architectures
//      (include/tokenformer/model/transfer.hpp) and what its report says for every tensor:
//        case 1  a TokenFormer LM (5 layers) -> FIT "(1)1(1)1(1)" (3 local + 2 global TokenFormer
//                layers of the same width): every Pattention of the 5 layers is copied bit for bit
//                into FIT's local and global layers in order; FIT's read/write units and latents start
//                fresh.
//        case 2  a plain Transformer (Linear layers, GeLU MLP) -> a TokenFormer LM: the MLP becomes the
//                FFN Pattention (key tokens = rows of W1, value tokens = columns of W2) and each
//                attention Linear W a Pattention with keys = rows of W and unit-vector values. This is
//                an initialization, not the same function: Θ normalizes the scores before the GeLU.
//   3. How to measure what a warm start is worth: the transferred target and a from-scratch target
//      train with the same data, schedule and FLOPs; the output gives the FLOPs each needs to reach
//      the scratch run's final validation loss (XATL reports up to 2.5x fewer). The source's own
//      training is not counted: a transfer starts from a model that already exists.
// Read first: examples/02_train_char_lm.cpp and 05_fit.cpp.
//
// Run:  ./build/examples/06_transfer [--source-steps N] [--steps N] [--seq T] [--batch B] [--lr LR] [--width C]
//                                    [--freeze-steps N] [--out-dir DIR] [--summary-json PATH] [--corpus FILE]...
// Defaults: sources train 500 steps, targets 300 steps, batch 4 of 256 bytes of fortunes, hidden 128.
// Measured (2-core AMD EPYC, AVX2, 3m44s-4m30s): FIT from the TokenFormer LM reaches the scratch FIT's final
// validation loss (2.481 nats/byte) with 6% of its FLOPs and ends at 2.223; the TokenFormer LM from the
// Transformer reaches its scratch twin's 2.457 with 19% and ends at 2.159.
// --freeze-steps N freezes the copied tensors for the first N target steps (XATL's
// freeze_copied_weights), then releases them with a warmup of N steps.
// Outputs in --out-dir (default transfer_out): transfer.svg (validation loss against the target's
// training FLOPs), transfer.csv, summary.json.
// The program checks its claims and exits non-zero if one fails: copied tensors equal the source's
// bit for bit, each transferred target starts below its scratch twin and reaches the scratch run's
// final loss with fewer FLOPs.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;

namespace {

struct Arguments {
  long source_steps = 500, steps = 300, freeze_steps = 0;
  index_t width = 128;  // hidden size (a multiple of 16); Pattentions of `width` (Q/K/V/proj), 4 * width (FFN) tokens
  std::int64_t batch = 4, sequence = 256;
  double lr = 3e-3;
  std::string out_dir = "transfer_out", summary_json;
  std::vector<std::string> corpus;  // default: Debian's fortunes
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::printf(
          "usage: 06_transfer [--source-steps N] [--steps N] [--seq T] [--batch B] [--lr LR] [--width C]\n"
          "                   [--freeze-steps N]\n"
          "                   [--out-dir DIR] [--summary-json PATH] [--corpus FILE]...\n");
      std::exit(0);
    }
    if (i + 1 >= argc) throw argument_error("option " + key + " needs a value");
    const std::string value = argv[++i];
    if (key == "--source-steps")
      a.source_steps = std::stol(value);
    else if (key == "--steps")
      a.steps = std::stol(value);
    else if (key == "--width")
      a.width = std::stol(value);
    else if (key == "--freeze-steps")
      a.freeze_steps = std::stol(value);
    else if (key == "--seq")
      a.sequence = std::stol(value);
    else if (key == "--batch")
      a.batch = std::stol(value);
    else if (key == "--lr")
      a.lr = std::stod(value);
    else if (key == "--corpus")
      a.corpus.push_back(value);
    else if (key == "--out-dir")
      a.out_dir = value;
    else if (key == "--summary-json")
      a.summary_json = value;
    else
      throw argument_error("unknown option " + key);
  }
  if (a.source_steps < 2 || a.steps < 8 || a.batch < 1 || a.sequence < 2 || a.freeze_steps < 0 ||
      a.freeze_steps >= a.steps || a.width < 16 || a.width % 16 != 0)
    throw argument_error(
        "--source-steps >= 2, --steps >= 8, --freeze-steps in [0, steps), --width a positive multiple of 16 (4 "
        "heads, rotary on half of each), --batch and --seq positive");
  return a;
}

/// Hidden C (--width, default 128), 4 heads, bytes + end-of-text; Pattentions of C (Q/K/V/proj) and
/// 4C (FFN) tokens.
ModelConfig tokenformer_config(index_t layers, index_t width) {
  ModelConfig c;
  c.num_layers = layers;
  c.hidden_size = width;
  c.num_heads = 4;
  c.qkv_tokens = width;
  c.proj_tokens = width;
  c.ffn_tokens = 4 * width;
  c.vocab_size = 257;
  c.rotary_pct = 0.5;
  return c;
}

TrainerOptions options(const Arguments& a, long steps, std::uint64_t seed) {
  TrainerOptions o;
  o.batch_size = a.batch;
  o.sequence_length = a.sequence;
  o.steps = steps;
  o.adamw.lr = a.lr;
  o.min_lr = a.lr / 10;
  o.warmup_steps = std::max(1L, steps / 10);
  o.eval_every = std::max(1L, steps / 10);
  o.eval_batches = 8;
  o.seed = seed;
  return o;
}

double flops_per_step(const ModelConfig& c, const Arguments& a) {
  return c.training_flops_per_token(a.sequence) * static_cast<double>(a.batch * a.sequence);
}

/// Every parameter's values by name.
template <class Model>
std::map<std::string, std::vector<float>> values_of(Model& model) {
  std::map<std::string, std::vector<float>> out;
  model.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
    out[name] = std::vector<float>(p.value.data(), p.value.data() + p.size());
  });
  return out;
}

struct CaseResult {
  std::string name;
  ComputeCurve scratch, transferred;
  double source_validation = NAN, source_flops = NAN;
  index_t copied = 0, converted = 0, initialized = 0, tensors = 0;
  bool bit_exact = true;
  double flops_fraction = NAN;  // transferred FLOPs to reach scratch's final loss / scratch's FLOPs
};

/// Trains `source`, transfers it into a fresh target, and trains that target and a scratch twin.
template <class Source, class Target>
CaseResult run_case(const std::string& name, Source& source, const ModelConfig& target_config, const TextCorpus& corpus,
                    const Arguments& a) {
  CaseResult r;
  r.name = name;
  std::printf("\n== %s ==\nsource: %td parameters, %ld steps\n", name.c_str(), source.parameter_count(),
              a.source_steps);
  {
    Trainer<Source> trainer(source, corpus, options(a, a.source_steps, 99));
    const ComputeCurve curve = run_compute_curve(trainer, flops_per_step(source.config(), a), "source");
    r.source_validation = curve.final_validation;
    r.source_flops = curve.flops.back();
  }
  std::printf("source: final validation %.4f nats/byte, %.2f TFLOP of training\n", r.source_validation,
              r.source_flops / 1e12);
  Target scratch(target_config), transferred(target_config);
  Rng init_scratch(1), init_transferred(1);  // the same initialization for both targets
  scratch.initialize(init_scratch);
  transferred.initialize(init_transferred);
  TransferSpec spec;
  spec.freeze_transferred = a.freeze_steps > 0;
  const TransferReport report = transfer(source, transferred, spec);
  r.copied = report.count(TransferAction::copied);
  r.converted = report.count(TransferAction::converted);
  r.initialized = report.count(TransferAction::initialized);
  r.tensors = static_cast<index_t>(report.entries.size());
  std::printf("transfer: %td tensors copied, %td converted, %td initialized (of %td)\n", r.copied, r.converted,
              r.initialized, r.tensors);
  // Every copied tensor equals its source bit for bit.
  const auto from = values_of(source), to = values_of(transferred);
  for (const auto& e : report.entries)
    if (e.action == TransferAction::copied) r.bit_exact = r.bit_exact && to.at(e.target) == from.at(e.source);

  const double per_step = flops_per_step(target_config, a);
  std::printf("target: %td parameters, %ld steps of %.2f GFLOP\n", scratch.parameter_count(), a.steps, per_step / 1e9);
  {
    Trainer<Target> trainer(scratch, corpus, options(a, a.steps, 1234));
    r.scratch = run_compute_curve(trainer, per_step, "scratch");
  }
  {
    Trainer<Target> trainer(transferred, corpus, options(a, a.steps, 1234));
    UnfreezeOptions release;
    release.after_steps = a.freeze_steps;
    release.warmup_steps = a.freeze_steps;
    Unfreezer unfreezer(report, release);
    r.transferred = run_compute_curve(trainer, per_step, "transferred", [&](const StepRecord& s) {
      if (a.freeze_steps > 0) unfreezer.update(transferred, s.step, s.validation_loss);
    });
  }
  r.flops_fraction = flops_to_reach(r.transferred, r.scratch.final_validation) / r.scratch.flops.back();
  std::printf("the source's training took %.2fx the scratch target's FLOPs (not counted above: it already exists)\n",
              r.source_flops / r.scratch.flops.back());
  return r;
}

}  // namespace

int main(int argc, char** argv) try {
  const Arguments args = parse(argc, argv);
  std::filesystem::create_directories(args.out_dir);
  TextCorpus corpus(args.corpus.empty() ? TextCorpus::default_files() : args.corpus, 0.1);
  std::printf("batch %lld x %lld bytes; sources %ld steps, targets %ld steps%s\n", static_cast<long long>(args.batch),
              static_cast<long long>(args.sequence), args.source_steps, args.steps,
              args.freeze_steps > 0 ? " (copied tensors frozen first)" : "");

  // ---- case 1: TokenFormer LM (5 layers) -> FIT with 3 local + 2 global layers ----------------------
  ModelConfig fit_config = tokenformer_config(0, args.width);
  fit_config.architecture = Architecture::fit;
  fit_config.fit.layers = "(1)1(1)1(1)";
  fit_config.fit.group_size = 64;
  fit_config.fit.latents_per_group = 8;
  fit_config.fit.latent_size = args.width;
  fit_config.fit.latent_heads = 4;
  fit_config.fit.max_groups = (args.sequence + 63) / 64;
  fit_config.num_layers = static_cast<index_t>(parse_fit_layers(fit_config.fit.layers).size());
  LanguageModel<presets::Dynamic<float>> tokenformer(tokenformer_config(5, args.width));
  Rng init_source(7);
  tokenformer.initialize(init_source);
  const CaseResult fit = run_case<decltype(tokenformer), LanguageModel<presets::Dynamic<float>, cpu, FitBody>>(
      "TokenFormer LM -> FIT", tokenformer, fit_config, corpus, args);

  // ---- case 2: plain Transformer (3 layers) -> TokenFormer LM (3 layers) ---------------------------
  ModelConfig transformer_config;
  transformer_config.architecture = Architecture::transformer;
  transformer_config.num_layers = 3;
  transformer_config.hidden_size = args.width;
  transformer_config.num_heads = 4;
  transformer_config.intermediate_size = 4 * args.width;  // -> the FFN's 4C tokens
  transformer_config.vocab_size = 257;
  transformer_config.rotary_pct = 0.5;
  LanguageModel<presets::Dynamic<float>, cpu, TransformerLayer> transformer(transformer_config);
  transformer.initialize(init_source);
  const CaseResult plain = run_case<decltype(transformer), LanguageModel<presets::Dynamic<float>>>(
      "Transformer -> TokenFormer LM", transformer, tokenformer_config(3, args.width), corpus, args);

  // ---- checks ---------------------------------------------------------------------------------------
  bool ok = true;
  const auto check = [&ok](bool good, const std::string& what) {
    std::printf("  [%s] %s\n", good ? "ok" : "FAILED", what.c_str());
    ok = ok && good;
  };
  std::printf("\nchecks:\n");
  char text[300];
  for (const CaseResult* c : {&fit, &plain}) {
    std::snprintf(text, sizeof text, "%s: %td copied tensors equal the source's bit for bit", c->name.c_str(),
                  c->copied);
    check(c->bit_exact && c->copied > 0, text);
    std::snprintf(text, sizeof text, "%s: the transferred target starts lower (%.4f vs %.4f nats/byte)",
                  c->name.c_str(), c->transferred.first_validation, c->scratch.first_validation);
    check(c->transferred.first_validation < c->scratch.first_validation, text);
    std::snprintf(text, sizeof text,
                  "%s: it reaches scratch's final %.4f with %.0f%% of scratch's FLOPs (final at equal FLOPs: "
                  "%.4f vs %.4f)",
                  c->name.c_str(), c->scratch.final_validation, 100.0 * c->flops_fraction,
                  c->transferred.final_validation, c->scratch.final_validation);
    check(c->flops_fraction < 1.0, text);
  }

  // ---- plot, CSV, summary ---------------------------------------------------------------------------
  write_svg_plot(
      args.out_dir + "/transfer.svg",
      {PlotSeries{"FIT from scratch", fit.scratch.flops, fit.scratch.validation, "#1f77b4"},
       PlotSeries{"FIT from a TokenFormer LM", fit.transferred.flops, fit.transferred.validation, "#d62728"},
       PlotSeries{"TokenFormer from scratch", plain.scratch.flops, plain.scratch.validation, "#2ca02c"},
       PlotSeries{"TokenFormer from a Transformer", plain.transferred.flops, plain.transferred.validation, "#ff7f0e"}},
      "Cross-architecture transfer: validation loss against the target's training FLOPs",
      "target training FLOPs (estimate)", "validation loss (nats/byte)");
  std::string csv = "case,run,flops,validation_loss\n";
  for (const CaseResult* c : {&fit, &plain})
    for (const auto& [run, curve] : {std::pair<const char*, const ComputeCurve*>{"scratch", &c->scratch},
                                     std::pair<const char*, const ComputeCurve*>{"transferred", &c->transferred}})
      for (std::size_t i = 0; i < curve->flops.size(); ++i)
        csv += c->name + "," + run + "," + std::to_string(curve->flops[i]) + "," +
               std::to_string(curve->validation[i]) + "\n";
  io::write_file_atomically(args.out_dir + "/transfer.csv",
                            [&](io::FileSink& sink) { sink.write(csv.data(), csv.size()); });
  char json[1024];
  std::snprintf(
      json, sizeof json,
      "{\"fit_source_validation\": %.6f, \"fit_scratch_final\": %.6f, \"fit_transferred_final\": %.6f, "
      "\"fit_flops_fraction\": %.4f, \"fit_source_flops_ratio\": %.4f, \"tokenformer_source_validation\": %.6f, "
      "\"tokenformer_scratch_final\": %.6f, \"tokenformer_transferred_final\": %.6f, "
      "\"tokenformer_flops_fraction\": %.4f, \"tokenformer_source_flops_ratio\": %.4f, \"checks_passed\": %s}\n",
      fit.source_validation, fit.scratch.final_validation, fit.transferred.final_validation, fit.flops_fraction,
      fit.source_flops / fit.scratch.flops.back(), plain.source_validation, plain.scratch.final_validation,
      plain.transferred.final_validation, plain.flops_fraction, plain.source_flops / plain.scratch.flops.back(),
      ok ? "true" : "false");
  const std::string summary = args.summary_json.empty() ? args.out_dir + "/summary.json" : args.summary_json;
  io::write_file_atomically(summary, [&](io::FileSink& sink) { sink.write(json, std::strlen(json)); });
  std::printf("wrote %s/transfer.svg, %s/transfer.csv, %s\n", args.out_dir.c_str(), args.out_dir.c_str(),
              summary.c_str());
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "06_transfer: %s\n", e.what());
  return 1;
}

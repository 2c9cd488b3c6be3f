// Example 03: incremental scaling, the TokenFormer paper's headline, on real text.
//
// What you will learn
//   1. How to grow a trained model in place: grow() appends key/value parameter tokens to every
//      Pattention; storage, gradients and AdamW moments grow with them.
//   2. How to keep the grown model's function exactly (pinned √n scale, new keys zero) while the new
//      tokens still train (new values random: TokenInit::zero_keys), and what the other ways to
//      start new tokens do to the loss right after growth and after.
//   3. How to compare training runs by compute: grown runs (small model, then grown) against the
//      large model trained from scratch, validation loss against training FLOPs.
// Read first: examples/02_train_char_lm.cpp, then include/tokenformer/model/growth.hpp.
//
// Run:  ./build/examples/03_incremental_scaling [--steps N] [--inits LIST|all] [--staged]
//                                               [--out-dir DIR] [--summary-json PATH]
// Every run trains byte-level models of hidden size 128 on Debian's fortunes. The large model has
// 4x the parameter tokens of the small one (qkv/proj/ffn 128/128/512 against 32/32/128). A grown run
// trains the small model for half the steps, grows it to the large shape and trains the other half,
// all in one learning-rate schedule; the scratch run trains the large model for all the steps. --inits names the
// TokenInit of each grown run (default zero_keys; all: zero_keys, zero, random, random_keys; they share
// the small model's half). --normalization picks Θ (default l2_norm_gelu, the official one). --staged adds a run grown
// twice, small -> medium (64/64/256) -> large, with the same total FLOPs as a grown run: a quarter of the steps at
// medium size, the rest at large size. Outputs in --out-dir (default scaling_out): scaling.svg (validation loss against
// training FLOPs, growth marked), scaling.csv, summary.json.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;

namespace {

using Model = LanguageModel<presets::Dynamic<float>>;

struct Point {
  double flops, validation_loss;
};

struct Arguments {
  long steps = 800;  // per run; the grown run splits them half and half
  std::int64_t batch = 16, sequence = 128;
  double lr = 3e-3;
  long eval_every = 40;
  std::vector<TokenInit> inits{TokenInit::zero_keys};
  bool staged = false;
  Normalization normalization = Normalization::l2_norm_gelu;
  std::string out_dir = "scaling_out", summary_json;
};

std::vector<TokenInit> parse_inits(const std::string& list) {
  if (list == "all") return {TokenInit::zero_keys, TokenInit::zero, TokenInit::random, TokenInit::random_keys};
  std::vector<TokenInit> inits;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) inits.push_back(parse_token_init(name));
  if (inits.empty()) throw argument_error("--inits needs at least one initialization");
  return inits;
}

Arguments parse(int argc, char** argv) {
  Arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::printf(
          "usage: 03_incremental_scaling [--steps N] [--batch B] [--seq T] [--lr LR] [--eval-every N]\n"
          "                              [--inits zero_keys,zero,random,random_keys|all] [--staged]\n"
          "                              [--normalization l2_norm_gelu|gelu_l2_norm|softmax]\n"
          "                              [--out-dir DIR] [--summary-json PATH]\n");
      std::exit(0);
    }
    if (key == "--staged") {
      a.staged = true;
      continue;
    }
    if (i + 1 >= argc) throw argument_error("option " + key + " needs a value");
    const std::string value = argv[++i];
    if (key == "--steps")
      a.steps = std::stol(value);
    else if (key == "--batch")
      a.batch = std::stol(value);
    else if (key == "--seq")
      a.sequence = std::stol(value);
    else if (key == "--lr")
      a.lr = std::stod(value);
    else if (key == "--eval-every")
      a.eval_every = std::stol(value);
    else if (key == "--out-dir")
      a.out_dir = value;
    else if (key == "--summary-json")
      a.summary_json = value;
    else if (key == "--inits")
      a.inits = parse_inits(value);
    else if (key == "--normalization")
      a.normalization = parse_normalization(value);
    else
      throw argument_error("unknown option " + key);
  }
  if (a.steps < 8 || a.steps % 4 != 0) throw argument_error("--steps must be a multiple of 4, at least 8");
  return a;
}

ModelConfig shape(index_t qkv, index_t proj, index_t ffn, Normalization normalization) {
  ModelConfig c = ModelConfig::from<presets::Small>();
  c.normalization = normalization;
  c.hidden_size = 128;
  c.num_heads = 4;
  c.qkv_tokens = qkv;
  c.proj_tokens = proj;
  c.ffn_tokens = ffn;
  return c;
}

TrainerOptions phase(const Arguments& a, long steps, long warmup) {
  TrainerOptions o;
  o.batch_size = a.batch;
  o.sequence_length = a.sequence;
  o.steps = steps;
  o.adamw.lr = a.lr;
  o.min_lr = a.lr / 10;
  o.warmup_steps = warmup;
  o.eval_every = a.eval_every;
  o.eval_batches = 8;
  o.seed = 1234;
  return o;
}

/// Trains `trainer` to the end, appending (cumulative FLOPs, validation loss) points.
/// Trains `trainer` up to step `until` (default: to the end), appending (cumulative FLOPs, validation
/// loss) points.
void train(Trainer<Model>& trainer, double flops_per_step, double& flops, std::vector<Point>& curve, const char* label,
           long until = -1) {
  if (until < 0) until = trainer.options().steps;
  ProgressLine progress;
  while (trainer.step() < until) {
    const StepRecord r = trainer.train_step();
    flops += flops_per_step;
    char line[200];
    std::snprintf(line, sizeof line, "%-8s step %4ld/%ld  loss %.4f  %6.0f tok/s  %.3g FLOPs", label, r.step,
                  trainer.options().steps, r.loss, r.tokens_per_second, flops);
    if (!std::isnan(r.validation_loss)) {
      curve.push_back({flops, r.validation_loss});
      std::snprintf(line + std::strlen(line), sizeof line - std::strlen(line), "  val %.4f", r.validation_loss);
    }
    progress.show(line, !std::isnan(r.validation_loss) && curve.size() % 5 == 0);
  }
  progress.finish();
}

/// FLOPs at which `curve` first reaches `target` (linear interpolation), or NaN if it never does.
double flops_to_reach(const std::vector<Point>& curve, double target) {
  for (std::size_t i = 0; i < curve.size(); ++i)
    if (curve[i].validation_loss <= target) {
      if (i == 0) return curve[0].flops;
      const Point a = curve[i - 1], b = curve[i];
      return a.flops + (b.flops - a.flops) * (a.validation_loss - target) / (a.validation_loss - b.validation_loss);
    }
  return NAN;
}

/// One training run: its validation curve and where it grew.
struct Run {
  std::string name;
  std::vector<Point> curve;
  double flops = 0;
  std::vector<PlotMarker> growths;
  double before_growth = NAN, after_growth = NAN;  // validation loss around the (first) growth
};

GrowthSpec growth_to(const ModelConfig& from, const ModelConfig& to, TokenInit init) {
  GrowthSpec spec;
  spec.qkv = to.qkv_tokens - from.qkv_tokens;
  spec.proj = to.proj_tokens - from.proj_tokens;
  spec.ffn = to.ffn_tokens - from.ffn_tokens;
  spec.init = init;
  spec.pin_scale = true;  // keep Θ's √n at the token counts before growth
  spec.seed = 99;
  return spec;
}

}  // namespace

int main(int argc, char** argv) try {
  const auto started = std::chrono::steady_clock::now();
  const Arguments args = parse(argc, argv);
  std::filesystem::create_directories(args.out_dir);
  TextCorpus corpus(TextCorpus::default_files(), 0.1);
  const Normalization kind = args.normalization;
  const ModelConfig small = shape(32, 32, 128, kind), medium = shape(64, 64, 256, kind),
                    large = shape(128, 128, 512, kind);
  const double tokens_per_step = static_cast<double>(args.batch * args.sequence);
  const auto step_flops = [&](const ModelConfig& c) {
    return c.training_flops_per_token(args.sequence) * tokens_per_step;
  };
  const double small_step = step_flops(small), medium_step = step_flops(medium), large_step = step_flops(large);
  std::printf("small: %td parameters, %.3g FLOPs/step; large: %td parameters, %.3g FLOPs/step\n",
              small.parameter_count(), small_step, large.parameter_count(), large_step);
  const long half = args.steps / 2;

  // Every run follows one warmup + cosine learning-rate schedule over all its steps, and a grown run
  // grows in the middle of it: the trainer, AdamW's step count and moments, and the data stream go
  // on as if nothing happened, so the only change at the growth step is the model's size.
  // ---- The small model, trained for half the steps: the start of every grown run ----------------
  Run small_run;
  const std::string at_growth = args.out_dir + "/small_at_growth.safetensors";
  {
    Model model(small);
    Rng init(7);
    model.initialize(init);
    Trainer<Model> trainer(model, corpus, phase(args, args.steps, args.steps / 20));
    train(trainer, small_step, small_run.flops, small_run.curve, "small", half);
    trainer.save(at_growth);  // weights, AdamW state, step and data position
  }
  const double growth_flops = small_run.flops;

  // Continues the small run from its checkpoint in a trainer of `total_steps`, grows it with `spec`
  // and returns the trainer's validation loss before and after.
  const auto resume_and_grow = [&](Model& model, Trainer<Model>& trainer, const GrowthSpec& spec, Run& run) {
    trainer.resume(at_growth);
    run.before_growth = trainer.evaluate();
    grow(model, spec);
    run.after_growth = trainer.evaluate();
  };

  // ---- Grown runs: the small model grown to the large shape, trained for the other half ----------
  std::vector<Run> runs;
  for (const TokenInit token_init : args.inits) {
    Run run = small_run;
    run.name = std::string("grown, ") + to_string(token_init);
    Model model(small);
    Trainer<Model> trainer(model, corpus, phase(args, args.steps, args.steps / 20));
    resume_and_grow(model, trainer, growth_to(small, large, token_init), run);
    std::printf("%s: %td parameters, validation loss %.4f before growth, %.4f right after\n", run.name.c_str(),
                model.parameter_count(), run.before_growth, run.after_growth);
    train(trainer, large_step, run.flops, run.curve, to_string(token_init));
    run.growths.push_back(PlotMarker{growth_flops, "growth: 4x tokens"});
    runs.push_back(run);
  }

  // ---- Staged: small -> medium -> large, the same total FLOPs as one growth ----------------------
  if (args.staged) {
    const TokenInit token_init = args.inits.front();
    Run run = small_run;
    run.name = std::string("grown twice, ") + to_string(token_init);
    const long medium_steps = args.steps / 4;
    const auto large_steps =
        static_cast<long>(std::lround((half * large_step - medium_steps * medium_step) / large_step));
    // The schedule spans this run's own steps (more than the others': medium steps are cheaper).
    Model model(small);
    Trainer<Model> trainer(model, corpus, phase(args, half + medium_steps + large_steps, args.steps / 20));
    resume_and_grow(model, trainer, growth_to(small, medium, token_init), run);
    train(trainer, medium_step, run.flops, run.curve, "medium", half + medium_steps);
    run.growths.push_back(PlotMarker{growth_flops, "growth: 2x"});
    run.growths.push_back(PlotMarker{run.flops, "2x again"});
    const double before_second = trainer.evaluate();
    grow(model, growth_to(medium, large, token_init));
    std::printf(
        "grown twice: %ld medium steps, %ld large steps; validation loss %.4f before the second growth, "
        "%.4f right after\n",
        medium_steps, large_steps, before_second, trainer.evaluate());
    train(trainer, large_step, run.flops, run.curve, "large");
    runs.push_back(run);
  }
  std::filesystem::remove(at_growth);

  // ---- The large model from scratch, same total steps -------------------------------------------
  Run scratch;
  scratch.name = "large from scratch";
  {
    Model model(large);
    Rng init2(7);
    model.initialize(init2);
    Trainer<Model> trainer(model, corpus, phase(args, args.steps, args.steps / 20));
    train(trainer, large_step, scratch.flops, scratch.curve, "scratch");
  }
  runs.push_back(scratch);

  // ---- Compare by compute -------------------------------------------------------------------------
  const double scratch_final = scratch.curve.back().validation_loss;
  const double scratch_reach = flops_to_reach(scratch.curve, scratch_final);
  std::printf("\n%-24s %10s %10s %10s %12s %14s\n", "run", "before", "after", "final", "total FLOPs", "FLOPs to reach");
  std::printf("%-24s %10s %10s %10s %12s %14.4f\n", "", "growth", "growth", "loss", "", scratch_final);
  const auto number = [](double x) { return std::isnan(x) ? std::string("null") : io::Json::number_text(x); };
  const auto quoted = [](const std::string& text) { return "\"" + text + "\""; };
  std::string json = "{\n  \"scratch_final_validation_loss\": " + number(scratch_final) + ",\n  \"runs\": [\n";
  std::string csv = "run,flops,validation_loss\n";
  const char* colors[] = {"#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  std::vector<PlotSeries> series;
  std::vector<PlotMarker> markers;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const Run& run = runs[i];
    const double reach = flops_to_reach(run.curve, scratch_final);
    const double final_loss = run.curve.back().validation_loss;
    char reach_text[64] = "not reached";
    if (!std::isnan(reach))
      std::snprintf(reach_text, sizeof reach_text, "%.3g (%.0f%%)", reach, 100 * reach / scratch_reach);
    std::printf("%-24s %10.4f %10.4f %10.4f %12.3g %14s\n", run.name.c_str(), run.before_growth, run.after_growth,
                final_loss, run.flops, reach_text);
    json += std::string(i ? ",\n" : "") + "    {\"name\": " + quoted(run.name) +
            ", \"loss_before_growth\": " + number(run.before_growth) +
            ", \"loss_after_growth\": " + number(run.after_growth) +
            ", \"final_validation_loss\": " + number(final_loss) + ", \"total_flops\": " + number(run.flops) +
            ", \"flops_to_reach_scratch_final\": " + number(reach) + "}";
    PlotSeries line{run.name, {}, {}, run.name == scratch.name ? "#1f77b4" : colors[i % 7], run.name == scratch.name};
    for (const auto& p : run.curve) {
      line.x.push_back(p.flops);
      line.y.push_back(p.validation_loss);
      csv += run.name + "," + std::to_string(p.flops) + "," + std::to_string(p.validation_loss) + "\n";
    }
    series.push_back(line);
    for (const auto& m : run.growths) {
      bool seen = false;
      for (const auto& other : markers) seen = seen || other.x == m.x;
      if (!seen) markers.push_back(m);
    }
  }
  json += "\n  ]\n}\n";
  // The first evaluations (loss > 3) would squeeze the part where the runs differ: show from the
  // scratch run's loss at the growth point's compute down.
  const double y_max = scratch.curve[scratch.curve.size() / 8].validation_loss;
  write_svg_plot(args.out_dir + "/scaling.svg", series, "Incremental scaling: grown vs from scratch", "training FLOPs",
                 "validation loss (nats/byte)", markers, y_max);
  io::write_file_atomically(args.out_dir + "/scaling.csv", [&](io::FileSink& s) { s.write(csv.data(), csv.size()); });
  const std::string summary = args.summary_json.empty() ? args.out_dir + "/summary.json" : args.summary_json;
  io::write_file_atomically(summary, [&](io::FileSink& s) { s.write(json.data(), json.size()); });
  std::printf("wrote %s/scaling.svg, %s/scaling.csv, %s in %.0f s\n", args.out_dir.c_str(), args.out_dir.c_str(),
              summary.c_str(), std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  for (const Run& run : runs)
    if (!std::isfinite(run.curve.back().validation_loss)) return 1;
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "03_incremental_scaling: %s\n", e.what());
  return 1;
}

// Example 03: incremental scaling, the TokenFormer paper's headline, on real text.
//
// What you will learn
//   1. How to grow a trained model in place: grow() appends key/value parameter tokens to every
//      Pattention; storage, gradients and AdamW moments grow with them.
//   2. How to keep the grown model's function (pinned √n scale, new values zero) so training
//      continues from where it was instead of from a loss spike.
//   3. How to compare training runs by compute: the grown run (small model, then grown) against the
//      large model trained from scratch, validation loss against training FLOPs.
// Read first: examples/02_train_char_lm.cpp, then include/tokenformer/model/growth.hpp.
//
// Run:  ./build/examples/03_incremental_scaling [--steps N] [--out-dir DIR] [--summary-json PATH]
// Both runs train byte-level models of hidden size 128 on Debian's fortunes. The large model has
// 4x the parameter tokens of the small one (qkv/proj/ffn 128/128/512 against 32/32/128). The grown
// run trains the small model for half the steps, grows it to the large shape and trains the other
// half; the scratch run trains the large model for all the steps. Outputs in --out-dir (default
// scaling_out): scaling.svg (validation loss against training FLOPs, growth marked), scaling.csv,
// summary.json.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
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
  std::string out_dir = "scaling_out", summary_json;
};

Arguments parse(int argc, char** argv) {
  Arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::printf(
          "usage: 03_incremental_scaling [--steps N] [--batch B] [--seq T] [--lr LR] [--eval-every N]\n"
          "                              [--out-dir DIR] [--summary-json PATH]\n");
      std::exit(0);
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
    else
      throw argument_error("unknown option " + key);
  }
  if (a.steps < 4 || a.steps % 2 != 0) throw argument_error("--steps must be an even number >= 4");
  return a;
}

ModelConfig shape(index_t qkv, index_t proj, index_t ffn) {
  ModelConfig c = ModelConfig::from<presets::Small>();
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
void train(Trainer<Model>& trainer, double flops_per_step, double& flops, std::vector<Point>& curve,
           const char* label) {
  ProgressLine progress;
  while (!trainer.done()) {
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

}  // namespace

int main(int argc, char** argv) try {
  const Arguments args = parse(argc, argv);
  std::filesystem::create_directories(args.out_dir);
  TextCorpus corpus(TextCorpus::default_files(), 0.1);
  const ModelConfig small = shape(32, 32, 128), large = shape(128, 128, 512);
  const double tokens_per_step = static_cast<double>(args.batch * args.sequence);
  const double small_step = small.training_flops_per_token(args.sequence) * tokens_per_step;
  const double large_step = large.training_flops_per_token(args.sequence) * tokens_per_step;
  std::printf("small: %td parameters, %.3g FLOPs/step; large: %td parameters, %.3g FLOPs/step\n",
              small.parameter_count(), small_step, large.parameter_count(), large_step);

  // ---- Run 1: small model, then grow it to the large shape, then keep training -------------------
  std::vector<Point> grown_curve;
  double grown_flops = 0;
  Model model(small);
  Rng init(7);
  model.initialize(init);
  {
    Trainer<Model> first(model, corpus, phase(args, args.steps / 2, args.steps / 20));
    train(first, small_step, grown_flops, grown_curve, "small");
  }
  const double growth_flops = grown_flops;
  const double before_growth = grown_curve.back().validation_loss;
  GrowthSpec spec;
  spec.qkv = large.qkv_tokens - small.qkv_tokens;
  spec.proj = large.proj_tokens - small.proj_tokens;
  spec.ffn = large.ffn_tokens - small.ffn_tokens;
  spec.init = TokenInit::random_keys;  // new values zero: the grown model starts where the small one was
  spec.pin_scale = true;               // keep Θ's √n at the small model's token counts
  spec.seed = 99;
  grow(model, spec);
  double after_growth = NAN;
  {
    Trainer<Model> second(model, corpus, phase(args, args.steps / 2, args.steps / 40));
    after_growth = second.evaluate();
    std::printf("grown to %td parameters: validation loss %.4f before growth, %.4f right after\n",
                model.parameter_count(), before_growth, after_growth);
    train(second, large_step, grown_flops, grown_curve, "grown");
  }

  // ---- Run 2: the large model from scratch, same total steps -------------------------------------
  std::vector<Point> scratch_curve;
  double scratch_flops = 0;
  Model scratch(large);
  Rng init2(7);
  scratch.initialize(init2);
  {
    Trainer<Model> trainer(scratch, corpus, phase(args, args.steps, args.steps / 20));
    train(trainer, large_step, scratch_flops, scratch_curve, "scratch");
  }

  // ---- Compare by compute -------------------------------------------------------------------------
  const double scratch_final = scratch_curve.back().validation_loss;
  const double grown_final = grown_curve.back().validation_loss;
  const double grown_reach = flops_to_reach(grown_curve, scratch_final);
  const double scratch_reach = flops_to_reach(scratch_curve, scratch_final);
  std::printf("\nfinal validation loss: grown %.4f after %.3g FLOPs, scratch %.4f after %.3g FLOPs\n", grown_final,
              grown_flops, scratch_final, scratch_flops);
  if (std::isnan(grown_reach))
    std::printf("the grown run did not reach the scratch run's final loss %.4f\n", scratch_final);
  else
    std::printf("FLOPs to reach %.4f: grown %.3g, scratch %.3g (grown uses %.0f%% of scratch's compute)\n",
                scratch_final, grown_reach, scratch_reach, 100.0 * grown_reach / scratch_reach);

  PlotSeries grown{"small, grown at the marker", {}, {}, "#d62728"}, fresh{"large from scratch", {}, {}, "#1f77b4"};
  std::string csv = "run,flops,validation_loss\n";
  for (const auto& p : grown_curve) {
    grown.x.push_back(p.flops);
    grown.y.push_back(p.validation_loss);
    csv += "grown," + std::to_string(p.flops) + "," + std::to_string(p.validation_loss) + "\n";
  }
  for (const auto& p : scratch_curve) {
    fresh.x.push_back(p.flops);
    fresh.y.push_back(p.validation_loss);
    csv += "scratch," + std::to_string(p.flops) + "," + std::to_string(p.validation_loss) + "\n";
  }
  write_svg_plot(args.out_dir + "/scaling.svg", {grown, fresh}, "Incremental scaling: grown vs from scratch",
                 "training FLOPs", "validation loss (nats/byte)", {PlotMarker{growth_flops, "growth: 4x tokens"}});
  io::write_file_atomically(args.out_dir + "/scaling.csv", [&](io::FileSink& s) { s.write(csv.data(), csv.size()); });

  const auto number = [](double x) { return std::isnan(x) ? std::string("null") : io::Json::number_text(x); };
  const std::string json =
      "{\n  \"grown\": {\"final_validation_loss\": " + number(grown_final) +
      ", \"total_flops\": " + number(grown_flops) + ", \"flops_to_reach_scratch_final\": " + number(grown_reach) +
      ", \"growth_at_flops\": " + number(growth_flops) + ", \"loss_before_growth\": " + number(before_growth) +
      ", \"loss_after_growth\": " + number(after_growth) +
      "},\n  \"scratch\": {\"final_validation_loss\": " + number(scratch_final) +
      ", \"total_flops\": " + number(scratch_flops) + ", \"flops_to_reach_scratch_final\": " + number(scratch_reach) +
      "}\n}\n";
  const std::string summary = args.summary_json.empty() ? args.out_dir + "/summary.json" : args.summary_json;
  io::write_file_atomically(summary, [&](io::FileSink& s) { s.write(json.data(), json.size()); });
  std::printf("wrote %s/scaling.svg, %s/scaling.csv, %s\n", args.out_dir.c_str(), args.out_dir.c_str(),
              summary.c_str());
  return std::isfinite(grown_final) && std::isfinite(scratch_final) ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "03_incremental_scaling: %s\n", e.what());
  return 1;
}

// tokenformer/train/training_run.hpp: a whole training run around a Trainer, as the examples and
// `tokenformer-cli train` use it: the progress line, a checkpoint after every evaluation, and at the
// end the loss curve as CSV and SVG and a JSON summary.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tokenformer/io/atomic_file.hpp"
#include "tokenformer/train/report.hpp"
#include "tokenformer/train/trainer.hpp"

namespace tokenformer {

/// What run_training reports (and writes as JSON).
struct TrainingRunSummary {
  double final_train_loss = NAN;       ///< the last step's training loss (NaN without steps)
  double final_validation_loss = NAN;  ///< the validation loss of the final model
  long steps = 0;                      ///< optimizer steps taken, resumed ones included
  long long tokens_seen = 0;           ///< steps · tokens per step
  double tokens_per_second = 0;        ///< mean over the steps of this run, first step excluded
  double seconds = 0;                  ///< wall time of this run
  double reduce_seconds_per_step = 0;  ///< mean wait for the gradients' all-reduce (several ranks; else 0)
};

/// Trains until trainer.done(), writing into `out_dir`: checkpoint.safetensors (after each
/// evaluation and at the end), curve.csv, curve.svg (titled `title`). Returns the summary; also
/// writes it as JSON to `summary_json` when not empty. With several ranks every rank calls it; rank 0
/// alone prints and writes.
template <class Trainer>
TrainingRunSummary run_training(Trainer& trainer, const std::string& out_dir, const std::string& title,
                                const std::string& summary_json = "") {
  const bool main = trainer.is_main();
  if (main) std::filesystem::create_directories(out_dir);
  const std::string checkpoint = out_dir + "/checkpoint.safetensors";
  ProgressLine progress;
  double last_validation = NAN, rate_sum = 0, reduce_sum = 0;
  long measured = 0;
  const long first_step = trainer.step();
  const long total = trainer.options().steps;
  while (!trainer.done()) {
    const StepRecord r = trainer.train_step();
    if (r.step > first_step + 1) {  // the first step includes one-time allocations
      rate_sum += r.tokens_per_second;
      reduce_sum += r.reduce_seconds;
      ++measured;
    }
    const bool evaluated = !std::isnan(r.validation_loss);
    if (evaluated) last_validation = r.validation_loss;
    const double rate = measured ? rate_sum / static_cast<double>(measured) : r.tokens_per_second;
    const double eta = static_cast<double>(total - r.step) * static_cast<double>(trainer.tokens_per_step()) / rate;
    char line[256];
    std::snprintf(line, sizeof line, "step %5ld/%ld  loss %.4f  val %.4f  lr %.2e  %7.0f tok/s  ETA %s", r.step, total,
                  r.loss, last_validation, r.lr, rate, format_duration(eta).c_str());
    if (main) progress.show(line, evaluated);
    if (evaluated || trainer.done()) trainer.save(checkpoint);  // atomic: never corrupts the previous one
  }
  if (main) progress.finish();

  TrainingRunSummary s;
  s.final_train_loss = trainer.history().empty() ? NAN : trainer.history().back().loss;
  s.final_validation_loss = !std::isnan(last_validation) && !trainer.history().empty() &&
                                    !std::isnan(trainer.history().back().validation_loss)
                                ? last_validation
                                : trainer.evaluate();
  s.steps = trainer.step();
  s.tokens_seen = static_cast<long long>(trainer.step()) * trainer.tokens_per_step();
  s.tokens_per_second = measured ? rate_sum / static_cast<double>(measured) : 0.0;
  s.reduce_seconds_per_step = measured ? reduce_sum / static_cast<double>(measured) : 0.0;
  s.seconds = trainer.history().empty() ? 0.0 : trainer.history().back().elapsed_seconds;
  if (!main) return s;

  write_history_csv(out_dir + "/curve.csv", trainer.history());
  PlotSeries train{"training loss", {}, {}, "#1f77b4"}, validation{"validation loss", {}, {}, "#d62728"};
  for (const auto& r : trainer.history()) {
    train.x.push_back(static_cast<double>(r.step));
    train.y.push_back(r.loss);
    if (!std::isnan(r.validation_loss)) {
      validation.x.push_back(static_cast<double>(r.step));
      validation.y.push_back(r.validation_loss);
    }
  }
  write_svg_plot(out_dir + "/curve.svg", {train, validation}, title, "step", "loss (nats/token)");
  if (!summary_json.empty()) {
    char json[512];
    std::snprintf(json, sizeof json,
                  "{\n  \"final_train_loss\": %.6f,\n  \"final_validation_loss\": %.6f,\n  \"steps\": %ld,\n"
                  "  \"tokens_seen\": %lld,\n  \"tokens_per_second\": %.1f,\n  \"seconds\": %.1f,\n"
                  "  \"ranks\": %d,\n  \"reduce_seconds_per_step\": %.6f\n}\n",
                  s.final_train_loss, s.final_validation_loss, s.steps, s.tokens_seen, s.tokens_per_second, s.seconds,
                  trainer.group().size(), s.reduce_seconds_per_step);
    io::write_file_atomically(summary_json, [&](io::FileSink& sink) { sink.write(json, std::strlen(json)); });
  }
  return s;
}

/// A run's validation loss against its training FLOPs, for comparing runs at equal compute.
struct ComputeCurve {
  ///@{
  /// Training FLOPs and validation loss: before the first step, then after every evaluation.
  std::vector<double> flops, validation;
  ///@}
  ///@{
  /// The validation loss before the first step and after the last.
  double first_validation = NAN, final_validation = NAN;
  ///@}
  double flops_per_step = 0;    ///< the training FLOPs of one step, as given to run_compute_curve
  double seconds_per_step = 0;  ///< the median step (robust to a slow moment)
  long steps = 0;               ///< the trainer's step count at the end
};

/// Trains until trainer.done(), showing a progress line labelled `label`, and records the validation
/// loss at every evaluation against flops_per_step · steps. `after_step`, when given, runs after each
/// step (e.g. an Unfreezer's update). The trainer must evaluate at its last step (eval_every > 0).
/// With several ranks every rank calls it; rank 0 alone prints.
template <class Trainer>
ComputeCurve run_compute_curve(Trainer& trainer, double flops_per_step, const std::string& label,
                               const std::function<void(const StepRecord&)>& after_step = {}) {
  if (trainer.options().eval_every <= 0)
    throw config_error("run_compute_curve needs evaluations: set TrainerOptions::eval_every > 0");
  ComputeCurve r;
  r.flops_per_step = flops_per_step;
  r.first_validation = trainer.evaluate();
  r.flops.push_back(flops_per_step * static_cast<double>(trainer.step()));
  r.validation.push_back(r.first_validation);
  std::vector<double> step_seconds;
  ProgressLine progress;
  while (!trainer.done()) {
    const StepRecord s = trainer.train_step();
    if (after_step) after_step(s);
    step_seconds.push_back(static_cast<double>(trainer.tokens_per_step()) / s.tokens_per_second);
    char line[200];
    std::snprintf(line, sizeof line, "%-14s step %4ld/%ld  loss %.4f  %.2f s/step", label.c_str(), s.step,
                  trainer.options().steps, s.loss, step_seconds.back());
    if (!std::isnan(s.validation_loss)) {
      r.flops.push_back(flops_per_step * static_cast<double>(s.step));
      r.validation.push_back(s.validation_loss);
      std::snprintf(line + std::strlen(line), sizeof line - std::strlen(line), "  val %.4f", s.validation_loss);
    }
    if (trainer.is_main()) progress.show(line, !std::isnan(s.validation_loss));
  }
  if (trainer.is_main()) progress.finish();
  r.steps = trainer.step();
  r.final_validation = r.validation.back();
  if (!step_seconds.empty()) {
    std::sort(step_seconds.begin(), step_seconds.end());
    r.seconds_per_step = step_seconds[step_seconds.size() / 2];
  }
  return r;
}

/// The training FLOPs at which `curve` first reaches `loss` (linear between evaluations), or NaN if
/// it never does.
inline double flops_to_reach(const ComputeCurve& curve, double loss) {
  for (std::size_t i = 0; i < curve.validation.size(); ++i) {
    if (!(curve.validation[i] <= loss)) continue;  // NaN never reaches anything
    if (i == 0) return curve.flops[0];
    const double a = curve.validation[i - 1], b = curve.validation[i];
    const double t = a == b ? 1.0 : (a - loss) / (a - b);
    return curve.flops[i - 1] + t * (curve.flops[i] - curve.flops[i - 1]);
  }
  return NAN;
}

}  // namespace tokenformer

// tokenformer/train/trainer.hpp: the training loop: batches, forward/backward with gradient
// accumulation, clipping, the NaN/Inf check, AdamW with a warmup + cosine schedule, periodic
// validation and checkpoints, and exact resumption.
//
// Determinism: batches come from an Rng seeded by `seed` whose state is saved in checkpoints; the
// validation batches are drawn once from a separate fixed seed. With the same thread count, a run
// resumed from a checkpoint reproduces the losses of an uninterrupted run exactly.
//
// Data parallel (a ProcessGroup of N ranks, e.g. MPI's): every rank draws the same global batch of
// batch_size windows from the same Rng and trains on its own rows of it (rank r: rows
// [r·B/N, (r+1)·B/N), disjoint); the gradients are averaged over the ranks (GradientAverager), the
// loss too, so every rank takes the same AdamW step and the parameters stay bit-identical. With the
// same batch_size, N ranks follow the one-process run up to the order of floating-point sums. Rank 0
// writes checkpoints; every rank resumes from the same file, checked by a parameter checksum.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/precision.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/io/atomic_file.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/kernels/cpu/gemm.hpp"
#include "tokenformer/train/data.hpp"
#include "tokenformer/train/gradient_averaging.hpp"
#include "tokenformer/train/optimizer.hpp"
#include "tokenformer/train/process_group.hpp"
#include "tokenformer/train/schedule.hpp"

namespace tokenformer {

/// The settings of a training run: batch shape, steps, optimizer, schedule, clipping, validation, seed.
struct TrainerOptions {
  std::int64_t batch_size = 32;        ///< B, sequences per micro-batch (over all ranks: a multiple of their number)
  std::int64_t sequence_length = 128;  ///< T, tokens per sequence
  long steps = 1000;                   ///< total optimizer steps
  int accumulation_steps = 1;          ///< micro-batches per optimizer step
  AdamWOptions adamw{};                ///< adamw.lr is the peak learning rate
  double min_lr = 6e-5;                ///< the cosine schedule ends here
  long warmup_steps = 100;             ///< steps of the schedule's linear warmup
  double clip_norm = 1.0;              ///< global gradient norm limit (0: no clipping)
  long eval_every = 100;               ///< validation every N steps (and after the last); 0: never
  std::int64_t eval_batches = 8;       ///< validation batches (fixed for the whole run)
  std::uint64_t seed = 1234;           ///< seeds the training batches' Rng
  /// Precision of the model's matrix products in training steps and evaluation: fp32, or bf16 (mixed
  /// precision: GEMM operands rounded to bfloat16, fp32 accumulation; parameters, AdamW state,
  /// normalizations, softmax and loss stay fp32). bf16 needs a float model on the CPU. The setting is
  /// process-wide while a step or an evaluation runs (kernels::GemmPrecisionScope): float products that
  /// another thread runs meanwhile are bf16 too.
  Precision precision = Precision::fp32;

  /// Throws config_error for a size or count <= 0, a negative warmup, eval_every or clip_norm, or an
  /// unknown precision.
  void validate() const {
    check_precision(precision);
    if (batch_size <= 0 || sequence_length <= 0 || steps <= 0 || accumulation_steps <= 0 || eval_batches <= 0)
      throw config_error("trainer sizes must be positive");
    if (warmup_steps < 0 || eval_every < 0 || clip_norm < 0) throw config_error("trainer options must not be negative");
  }
};

/// What one optimizer step did.
struct StepRecord {
  long step = 0;                                                      ///< 1-based number of this step
  double loss = 0;                                                    ///< mean training loss over its micro-batches
  double validation_loss = std::numeric_limits<double>::quiet_NaN();  ///< NaN when not evaluated
  double lr = 0;                                                      ///< the learning rate it used
  double gradient_norm = 0;                                           ///< before clipping
  double tokens_per_second = 0;                                       ///< of this step, all ranks together
  double reduce_seconds = 0;   ///< waiting for the gradients' all-reduce after the backward (0 with one rank)
  double elapsed_seconds = 0;  ///< since the trainer started (or resumed)
};

/// The training loop over a model and a corpus (see the header comment); the model and the corpus
/// must outlive the trainer.
template <class Model>
class Trainer {
 public:
  /// Validates the options (config_error), draws the fixed validation batches and enables training
  /// on the model. With a `group` of several ranks (which must outlive the trainer), every rank
  /// constructs its Trainer with the same options and an identical model (see the header comment);
  /// config_error unless batch_size is a multiple of group.size().
  Trainer(Model& model, const TextCorpus& corpus, TrainerOptions options,
          ProcessGroup& group = SingleProcess::instance())
      : model_(model),
        corpus_(corpus),
        options_(options),
        optimizer_(options.adamw),
        data_rng_(options.seed),
        group_(group),
        averager_(group) {
    options_.validate();
    using ModelDevice = std::decay_t<decltype(model.device())>;
    if (options_.precision == Precision::bf16 &&
        !(std::is_same_v<ModelDevice, cpu> && std::is_same_v<typename Model::scalar, float>))
      throw config_error("precision bf16 needs a float model on the CPU");
    if (options_.batch_size % group_.size() != 0)
      throw config_error("batch_size " + std::to_string(options_.batch_size) + " is not a multiple of the " +
                         std::to_string(group_.size()) + " ranks");
    schedule_ = CosineSchedule{options_.adamw.lr, options_.min_lr, options_.warmup_steps, options_.steps};
    schedule_.validate();
    Rng validation_rng(0x5eedba5eULL);  // fixed: the same validation set for every run and resume
    for (std::int64_t i = 0; i < options_.eval_batches; ++i)
      validation_.push_back(
          my_rows(corpus_.sample(validation_rng, options_.batch_size, options_.sequence_length, true)));
    model_.enable_training();
    start_ = std::chrono::steady_clock::now();
  }

  long step() const { return step_; }                                  ///< optimizer steps taken
  bool done() const { return step_ >= options_.steps; }                ///< whether options().steps were taken
  const TrainerOptions& options() const { return options_; }           ///< the options
  const std::vector<StepRecord>& history() const { return history_; }  ///< one record per step this trainer took
  AdamW& optimizer() { return optimizer_; }                            ///< the optimizer
  ProcessGroup& group() { return group_; }                             ///< the ranks (one by default)
  bool is_main() const { return group_.is_main(); }                    ///< rank 0: the one that prints and writes files
  /// Tokens consumed per optimizer step (by all ranks together).
  std::int64_t tokens_per_step() const {
    return options_.batch_size * options_.sequence_length * options_.accumulation_steps;
  }

  /// The hook the trainer installs on the model for one step is removed when the trainer goes.
  ~Trainer() { averager_.remove_hook(model_); }
  Trainer(const Trainer&) = delete;             ///< holds references to the model and the group
  Trainer& operator=(const Trainer&) = delete;  ///< holds references to the model and the group

  /// One optimizer step. Throws numeric_error (naming the step and tensor) on NaN or Inf (with
  /// several ranks, on every rank). Collective: with several ranks every rank calls it; an exception
  /// other than those leaves the ranks out of step, so a program must then stop them all
  /// (MpiSession::abort, as tokenformer-cli does).
  StepRecord train_step() {
    const auto begin = std::chrono::steady_clock::now();
    model_.zero_grad();
    double loss = 0.0;
    {
      auto remove_hook = [this](void*) { averager_.remove_hook(model_); };  // also when forward_backward throws
      std::unique_ptr<void, decltype(remove_hook)> guard(this, remove_hook);
      const kernels::GemmPrecisionScope precision(options_.precision);
      for (int micro = 0; micro < options_.accumulation_steps; ++micro) {
        const Batch batch = my_rows(corpus_.sample(data_rng_, options_.batch_size, options_.sequence_length));
        if (micro + 1 == options_.accumulation_steps) averager_.begin(model_);
        loss += model_.forward_backward(batch.tokens, batch.targets, batch.batch_size, batch.sequence_length,
                                        1.0 / options_.accumulation_steps);
      }
    }
    const auto reduce_begin = std::chrono::steady_clock::now();
    averager_.finish(model_);
    const auto reduce_end = std::chrono::steady_clock::now();
    loss = mean_over_ranks(loss) / options_.accumulation_steps;
    StepRecord record;
    record.step = step_ + 1;
    if (group_.size() == 1) {
      check_finite(model_, record.step, loss);
      record.gradient_norm =
          options_.clip_norm > 0 ? clip_gradient_norm(model_, options_.clip_norm) : global_gradient_norm(model_);
    } else {
      // Frozen rows keep per-rank gradients: the ranks agree before one of them throws.
      std::string error;
      try {
        check_finite(model_, record.step, loss);
      } catch (const numeric_error& e) {
        error = e.what();
      }
      if (group_.any(!error.empty()))
        throw numeric_error(
            error.empty() ? "step " + std::to_string(record.step) + ": another rank found a non-finite value" : error);
      // The norm's bits depend on the thread count (an OpenMP reduction): rank 0's, for every rank.
      record.gradient_norm = global_gradient_norm(model_);
      group_.broadcast(&record.gradient_norm, sizeof record.gradient_norm, 0);
      if (options_.clip_norm > 0) scale_gradients(model_, clip_factor(options_.clip_norm, record.gradient_norm));
    }
    record.lr = schedule_(step_);
    optimizer_.step(model_, record.lr);
    ++step_;
    record.loss = loss;
    const auto end = std::chrono::steady_clock::now();
    record.tokens_per_second =
        static_cast<double>(tokens_per_step()) / std::chrono::duration<double>(end - begin).count();
    record.reduce_seconds = group_.size() == 1 ? 0.0 : std::chrono::duration<double>(reduce_end - reduce_begin).count();
    if (options_.eval_every > 0 && (step_ % options_.eval_every == 0 || step_ == options_.steps))
      record.validation_loss = evaluate();
    record.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    history_.push_back(record);
    return record;
  }

  /// Mean loss over the fixed validation batches (each rank evaluates its rows of each). Collective:
  /// with several ranks every rank calls it.
  double evaluate() {
    const kernels::GemmPrecisionScope precision(options_.precision);
    double total = 0.0;
    for (const auto& batch : validation_)
      total += model_.loss(batch.tokens, batch.targets, batch.batch_size, batch.sequence_length);
    return mean_over_ranks(total) / static_cast<double>(validation_.size());
  }

  /// Saves weights, optimizer state, step and sampler state (atomically). With several ranks, rank 0
  /// writes and every rank returns when it has (an error on rank 0 is thrown on every rank).
  /// Collective: every rank calls it (not only rank 0).
  void save(const std::string& path) {
    std::string error;
    if (group_.is_main()) {
      try {
        io::save_training_checkpoint(path, model_, optimizer_, io::TrainingState{step_, data_rng_.state()});
      } catch (const std::exception& e) {
        if (group_.size() == 1) throw;
        error = e.what();
      }
    }
    if (group_.size() > 1 && group_.any(!error.empty()))
      throw file_error(error.empty() ? "rank 0 could not write the checkpoint " + path : error);
  }
  /// Continues from a checkpoint written by save(); the next step is the one after the saved step.
  /// With several ranks every rank reads `path`, and all throw (each model unchanged) unless every
  /// rank could load it and holds the same parameters afterwards. Collective. With several ranks it
  /// keeps a copy of the model (values, gradients, moments) while it loads, to undo a refused resume.
  void resume(const std::string& path) {
    if (group_.size() == 1) return resume_from(path);
    // Keep what a refused resume must restore: the file may load on one rank and not on another.
    Model before = model_;
    const long before_count = optimizer_.step_count(), before_step = step_;
    const auto before_rng = data_rng_.state();
    std::string error;
    try {
      resume_from(path);
    } catch (const std::exception& e) {
      error = e.what();
    }
    bool differs = false;
    if (!group_.any(!error.empty())) {
      std::uint64_t mine = parameter_checksum(model_), main = mine;
      group_.broadcast(&main, sizeof main, 0);
      differs = group_.any(mine != main);
      if (!differs) return;
    }
    // Undo on every rank, also on one whose load failed part of the way.
    model_ = std::move(before);
    optimizer_.set_step_count(before_count);
    step_ = before_step;
    data_rng_.set_state(before_rng);
    throw file_error(!error.empty() ? "resume from " + path + ": " + error
                     : differs ? "resume from " + path + ": the ranks read different parameters (not the same file?)"
                               : "resume from " + path + ": another rank could not load it");
  }

 private:
  void resume_from(const std::string& path) {
    io::SafetensorsReader file(path);
    const long step = io::detail::metadata_integer(file, "tokenformer.step");
    if (step > options_.steps)  // checked before anything is loaded: a refused resume changes nothing
      throw config_error("checkpoint is at step " + std::to_string(step) + ", beyond the " +
                         std::to_string(options_.steps) + " steps of this run");
    const auto state = io::load_training_checkpoint(file, model_, optimizer_);
    step_ = state.step;
    data_rng_.set_state(state.data_rng);
  }

  // This rank's rows of a global batch (all of it with one rank).
  Batch my_rows(Batch batch) const {
    if (group_.size() == 1) return batch;
    const std::int64_t share = batch.batch_size / group_.size();
    return batch.rows(share * group_.rank(), share);
  }

  double mean_over_ranks(double value) {
    if (group_.size() == 1) return value;
    group_.all_reduce_sum(&value, 1);
    return value / group_.size();
  }

  Model& model_;
  const TextCorpus& corpus_;
  TrainerOptions options_;
  AdamW optimizer_;
  CosineSchedule schedule_;
  Rng data_rng_;
  ProcessGroup& group_;
  GradientAverager<Model> averager_;
  std::vector<Batch> validation_;
  std::vector<StepRecord> history_;
  long step_ = 0;
  std::chrono::steady_clock::time_point start_;
};

/// Writes the history as CSV: step,loss,validation_loss,lr,gradient_norm,tokens_per_second,elapsed_seconds.
inline void write_history_csv(const std::string& path, const std::vector<StepRecord>& history) {
  std::string text = "step,loss,validation_loss,lr,gradient_norm,tokens_per_second,elapsed_seconds\n";
  char line[256];
  for (const auto& r : history) {
    std::snprintf(line, sizeof line, "%ld,%.6f,%s,%.6g,%.6g,%.1f,%.2f\n", r.step, r.loss,
                  std::isnan(r.validation_loss) ? "" : std::to_string(r.validation_loss).c_str(), r.lr, r.gradient_norm,
                  r.tokens_per_second, r.elapsed_seconds);
    text += line;
  }
  io::write_file_atomically(path, [&](io::FileSink& sink) { sink.write(text.data(), text.size()); });
}

}  // namespace tokenformer

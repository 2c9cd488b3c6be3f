// tokenformer/train/schedule.hpp: learning-rate schedule: linear warmup, then cosine decay.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "tokenformer/core/error.hpp"

namespace tokenformer {

/// lr(step) for step = 0, 1, ...: rises linearly to max_lr over `warmup_steps` (reaching it at step
/// warmup_steps − 1), then follows a half cosine from max_lr down to min_lr at `total_steps`, and
/// stays at min_lr after.
struct CosineSchedule {
  double max_lr = 6e-4;     ///< the rate at the end of warmup
  double min_lr = 6e-5;     ///< the rate from total_steps on
  long warmup_steps = 100;  ///< steps of the linear warmup (0: none)
  long total_steps = 1000;  ///< the step at which the cosine reaches min_lr

  /// Throws config_error unless 0 <= min_lr <= max_lr, max_lr > 0 and finite, warmup_steps >= 0 and
  /// total_steps > 0.
  void validate() const {
    if (!(max_lr > 0) || !(min_lr >= 0) || min_lr > max_lr || !std::isfinite(max_lr))
      throw config_error("schedule needs finite learning rates with 0 <= min_lr <= max_lr, max_lr > 0 (got max_lr " +
                         std::to_string(max_lr) + ", min_lr " + std::to_string(min_lr) + ")");
    if (warmup_steps < 0 || total_steps <= 0) throw config_error("schedule needs warmup >= 0 and total steps > 0");
  }

  /// The learning rate of step `step` (from 0).
  double operator()(long step) const {
    if (step < warmup_steps) return max_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    if (step >= total_steps) return min_lr;
    const double span = static_cast<double>(std::max(1L, total_steps - warmup_steps));
    const double progress = static_cast<double>(step - warmup_steps) / span;
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(3.14159265358979323846 * progress));
  }
};

}  // namespace tokenformer

// One finite-difference gradient-check harness for every op and layer.
//
// An op under test is a GradCase: its inputs (flattened, float64), a forward that maps inputs to an
// output, and a backward that maps (inputs, d_output) to one gradient per input. The harness draws a
// random d_output u, defines L(inputs) = Σ u · forward(inputs), and compares every analytic
// gradient entry with the central difference (L(x + h) − L(x − h)) / 2h.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace gradcheck {

using Vector = std::vector<double>;
using Inputs = std::vector<Vector>;

struct GradCase {
  std::string name;
  Inputs inputs;
  std::function<Vector(const Inputs&)> forward;
  std::function<Inputs(const Inputs&, const Vector& d_output)> backward;
  /// Inputs whose gradient is not checked (integer ids, say), by index.
  std::vector<std::size_t> skip = {};
};

struct Result {
  double max_error = 0.0;  // max |analytic − numeric| / max(1, |numeric|)
  std::string where;
  std::size_t checked = 0;
};

/// Checks every entry of every input (or `max_entries` evenly spaced ones per input).
inline Result check(const GradCase& c, std::uint64_t seed = 1, double h = 1e-6, std::size_t max_entries = 400) {
  const Vector out = c.forward(c.inputs);
  const Vector u = test_util::random_vector<double>(out.size(), seed);
  const auto loss = [&](const Inputs& in) {
    const Vector y = c.forward(in);
    double s = 0.0;
    for (std::size_t i = 0; i < y.size(); ++i) s += u[i] * y[i];
    return s;
  };
  const Inputs analytic = c.backward(c.inputs, u);
  Result r;
  for (std::size_t k = 0; k < c.inputs.size(); ++k) {
    if (std::find(c.skip.begin(), c.skip.end(), k) != c.skip.end()) continue;
    const std::size_t n = c.inputs[k].size();
    const std::size_t stride = n > max_entries ? n / max_entries : 1;
    for (std::size_t i = 0; i < n; i += stride) {
      Inputs plus = c.inputs, minus = c.inputs;
      plus[k][i] += h;
      minus[k][i] -= h;
      const double numeric = (loss(plus) - loss(minus)) / (2 * h);
      const double error = std::fabs(analytic[k][i] - numeric) / std::fmax(1.0, std::fabs(numeric));
      ++r.checked;
      if (!(error <= r.max_error)) {  // also catches NaN
        r.max_error = std::isnan(error) ? INFINITY : error;
        r.where = "input " + std::to_string(k) + " entry " + std::to_string(i) + ": analytic " +
                  std::to_string(analytic[k][i]) + ", numeric " + std::to_string(numeric);
      }
    }
  }
  return r;
}

}  // namespace gradcheck

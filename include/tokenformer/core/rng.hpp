// tokenformer/core/rng.hpp: a small, fast, reproducible random number generator.
//
// xoshiro256** seeded through splitmix64, with uniform and normal draws. The state is four 64-bit
// words, so it can be saved in a checkpoint and restored exactly.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace tokenformer {

/// A xoshiro256** random number generator: reproducible from a seed, and its four-word state can be
/// saved and restored exactly. Not thread-safe: give each thread its own.
class Rng {
 public:
  /// A generator seeded with `seed` (see reseed).
  explicit Rng(std::uint64_t seed = 0x9e3779b97f4a7c15ULL) { reseed(seed); }

  /// Restarts the sequence: the state becomes four splitmix64 outputs from `seed`.
  void reseed(std::uint64_t seed) {
    for (auto& word : state_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }

  /// Next 64 random bits.
  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n), n > 0, unbiased (rejects the few draws below 2^64 mod n).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t threshold = (0 - n) % n;
    for (;;) {
      const std::uint64_t x = next();
      if (x >= threshold) return x % n;
    }
  }
  /// Normal with the given mean and standard deviation (Box-Muller, no cached second value, so the
  /// state alone determines the sequence).
  double normal(double mean = 0.0, double stddev = 1.0) {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }

  /// The four-word state, to save in a checkpoint.
  const std::array<std::uint64_t, 4>& state() const { return state_; }
  /// Restores a state from state(): the sequence continues exactly where it was.
  void set_state(const std::array<std::uint64_t, 4>& s) { state_ = s; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> state_{};
};

}  // namespace tokenformer

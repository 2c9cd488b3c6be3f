// Shared helpers of the test programs.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"

namespace test_util {

/// n values ~ N(0, stddev) from a seeded generator.
template <class T>
std::vector<T> random_vector(std::size_t n, std::uint64_t seed, double stddev = 1.0) {
  tokenformer::Rng rng(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(rng.normal(0.0, stddev));
  return v;
}

/// max_i |a[i] - b[i]| (infinity if sizes differ or any value is not finite).
template <class T, class U>
double max_abs_diff(const std::vector<T>& a, const std::vector<U>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!std::isfinite(d)) return INFINITY;
    m = std::fmax(m, d);
  }
  return m;
}

/// max_i |a[i] - b[i]| / (1 + |b[i]|): absolute near zero, relative for large values.
template <class T, class U>
double max_scaled_diff(const std::vector<T>& a, const std::vector<U>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d =
        std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])) / (1.0 + std::fabs(static_cast<double>(b[i])));
    if (!std::isfinite(d)) return INFINITY;
    m = std::fmax(m, d);
  }
  return m;
}

inline std::string data_dir() { return TOKENFORMER_TEST_DATA_DIR; }

/// The token sequences of a golden case's tokens.txt: one line per sequence, ids separated by commas.
inline std::vector<std::vector<std::int32_t>> read_sequences(const std::string& path) {
  std::vector<std::vector<std::int32_t>> sequences;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    std::vector<std::int32_t> seq;
    std::stringstream ss(line);
    for (std::string id; std::getline(ss, id, ',');) seq.push_back(std::stoi(id));
    sequences.push_back(seq);
  }
  return sequences;
}

/// The little-endian float32 values of a whole file (empty if it cannot be read).
inline std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return {};
  std::vector<float> v(static_cast<std::size_t>(in.tellg()) / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

/// max_i |ours_i − reference_i| / max_i |reference_i|: the error relative to the tensor's scale.
template <class T, class U>
double relative_error(const std::vector<T>& ours, const std::vector<U>& reference) {
  if (ours.size() != reference.size()) return INFINITY;
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    diff = std::fmax(diff, std::fabs(static_cast<double>(ours[i]) - static_cast<double>(reference[i])));
    scale = std::fmax(scale, std::fabs(static_cast<double>(reference[i])));
  }
  return scale == 0 ? diff : diff / scale;
}

/// The temporary file that io::write_file_atomically(path) of process `pid` writes before its rename
/// ("<path>.tmp.<pid>.<n>"), or "" if there is none.
inline std::string atomic_temp_file(const std::string& path, long pid) {
  const std::filesystem::path target(path);
  const std::string prefix = target.filename().string() + ".tmp." + std::to_string(pid) + ".";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(target.parent_path(), ec))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) return entry.path().string();
  return "";
}

}  // namespace test_util

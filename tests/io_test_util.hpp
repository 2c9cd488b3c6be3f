// Helpers shared by the tests of io/: temporary directories, raw bytes, safetensors headers, golden
// configs, model parameters and logits, and child processes.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <locale>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.hpp"
#include "tokenformer/io/checkpoint.hpp"

namespace io_test {

using namespace tokenformer;
using Catch::Contains;

// ---- helpers ----------------------------------------------------------------------------------

/// A fresh directory under the system temp directory (unique name from mkdtemp), removed with its
/// contents when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tokenformer_test_io_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  /// The directory itself.
  std::string str() const { return path_.string(); }
  /// Names of the entries in the directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("test cannot write " + path);
}

/// n as 8 little-endian bytes.
inline std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

/// A safetensors file built by hand: header length, header text, data bytes.
inline std::string safetensors_bytes(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

/// 16-bit values as little-endian bytes.
inline std::string le16s(const std::vector<std::uint16_t>& values) {
  std::string s;
  for (auto v : values) {
    s += static_cast<char>(v & 0xFF);
    s += static_cast<char>(v >> 8);
  }
  return s;
}

/// The message of the E that f() throws, or "<nothing thrown>". Other exception types propagate
/// (and fail the test).
template <class E, class F>
inline std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<nothing thrown>";
}

inline std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

inline std::string json_error(const std::string& text) {
  return message_of<file_error>([&] { io::parse_json(text, "test.json"); });
}

inline std::uint32_t bits_of(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}
inline std::uint64_t bits_of(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, 8);
  return b;
}
template <class T>
inline bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Replaces the global locale for the lifetime of the guard.
class GlobalLocale {
 public:
  explicit GlobalLocale(const std::locale& l) : old_(std::locale::global(l)) {}
  ~GlobalLocale() { std::locale::global(old_); }
  GlobalLocale(const GlobalLocale&) = delete;
  GlobalLocale& operator=(const GlobalLocale&) = delete;

 private:
  std::locale old_;
};
/// A German-style numeric punctuation: "1.234.567,5".
struct GroupingPunct : std::numpunct<char> {
  char do_decimal_point() const override { return ','; }
  char do_thousands_sep() const override { return '.'; }
  std::string do_grouping() const override { return "\3"; }
};

inline const std::string& golden_dir() {
  static const std::string dir = test_util::data_dir();
  return dir;
}

/// The golden l2_norm_gelu config with one key replaced (or removed when `value` is null).
inline std::string golden_config_with(const std::string& key, const io::Json* value) {
  io::Json::Object o = io::parse_json(io::read_text_file(golden_dir() + "/l2_norm_gelu_f32/config.json")).as_object();
  if (value == nullptr)
    REQUIRE(o.erase(key) == 1);
  else
    o[key] = *value;
  return io::Json(o).dump();
}
inline std::string golden_config_with(const std::string& key, const io::Json& value) {
  return golden_config_with(key, &value);
}
inline std::string golden_config_without(const std::string& key) { return golden_config_with(key, nullptr); }

inline std::string config_error_of(const std::string& text, index_t vocab_rows = 0) {
  return message_of<config_error>([&] { io::parse_config(text, "cfg.json", vocab_rows); });
}

using FloatModel = LanguageModel<presets::Dynamic<float>>;

/// The tensor of what for_each_parameter visits: a Parameter's value, or the tensor itself.
template <class P, class = void>
struct has_value_member : std::false_type {};
template <class P>
struct has_value_member<P, std::void_t<decltype(std::declval<P&>().value)>> : std::true_type {};
template <class P>
inline auto& value_of(P& p) {
  if constexpr (has_value_member<P>::value)
    return p.value;
  else
    return p;
}

/// Every parameter of a model, flattened in visiting order, with its name.
template <class Model>
inline std::vector<std::pair<std::string, std::vector<typename Model::scalar>>> parameters_of(Model& model) {
  std::vector<std::pair<std::string, std::vector<typename Model::scalar>>> out;
  model.for_each_parameter([&](const std::string& name, auto& parameter) {
    const auto& t = value_of(parameter);
    out.emplace_back(name, std::vector<typename Model::scalar>(t.data(), t.data() + t.size()));
  });
  return out;
}

/// Logits of a fixed batch of 2 sequences of 8 tokens (ids < 64, inside every golden vocabulary).
template <class Model>
inline std::vector<typename Model::scalar> logits_of(Model& model) {
  const std::vector<std::int32_t> tokens{1, 7, 3, 62, 0, 15, 9, 33, 4, 4, 50, 2, 8, 61, 19, 27};
  const auto logits = model.forward(tokens, 2, 8);
  return std::vector<typename Model::scalar>(logits.data(), logits.data() + logits.size());
}

/// Waits for `child` and returns its wait status.
inline int wait_for(pid_t child) {
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

}  // namespace io_test

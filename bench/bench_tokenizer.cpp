// The GPT-NeoX-20B BPE tokenizer: MB/s encoding the fortunes corpus (Debian's fortunes files, each
// encoded as one text), with the word cache warm and cold, line by line (many short calls), and
// decoding. Compare with Hugging Face's JS and Rust tokenizers on the same text:
//   bench/run_tokenizer_bench.py <build dir>
// The tokenizer.json comes from TOKENFORMER_NEOX_TOKENIZER (environment, else the CMake cache
// variable); the corpus from TOKENFORMER_FORTUNES_DIR (default /usr/share/games/fortunes).
#include <benchmark/benchmark.h>

#include <dirent.h>
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tokenformer/tokenizer/bpe_tokenizer.hpp"

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The fortunes files without an extension (the texts; not the .dat indexes or .u8 links), sorted.
std::vector<std::string> corpus() {
  std::vector<std::string> names;
  const std::string dir = env_or("TOKENFORMER_FORTUNES_DIR", "/usr/share/games/fortunes");
  if (DIR* d = opendir(dir.c_str())) {
    while (const dirent* entry = readdir(d)) {
      const std::string name = entry->d_name;
      if (name.find('.') == std::string::npos) names.push_back(name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string> texts;
  for (const auto& name : names) texts.push_back(read_file(dir + "/" + name));
  return texts;
}

struct Data {
  std::unique_ptr<tokenformer::BpeTokenizer> tokenizer;
  std::vector<std::string> files, lines;
  std::size_t bytes = 0;
  std::string error;
};
const Data& data() {
  static const Data d = [] {
    Data out;
    try {
      out.tokenizer = std::make_unique<tokenformer::BpeTokenizer>(
          tokenformer::BpeTokenizer::from_file(env_or("TOKENFORMER_NEOX_TOKENIZER", TOKENFORMER_NEOX_TOKENIZER)));
    } catch (const std::exception& e) {
      out.error = e.what();
      return out;
    }
    out.files = corpus();
    if (out.files.empty()) out.error = "no fortunes files (Debian packages fortunes, fortunes-min)";
    for (const auto& file : out.files) {
      out.bytes += file.size();
      std::istringstream in(file);
      for (std::string line; std::getline(in, line);) out.lines.push_back(line + "\n");
    }
    return out;
  }();
  return d;
}

// Whole files, the word cache warm (after the first iteration every word is cached).
void BM_EncodeFortunes(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  std::size_t ids = 0;
  for (auto _ : state) {
    ids = 0;
    for (const auto& file : d.files) {
      auto encoded = d.tokenizer->encode(file);
      ids += encoded.size();
      benchmark::DoNotOptimize(encoded.data());
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes));
  state.counters["ids_per_pass"] = static_cast<double>(ids);
}
BENCHMARK(BM_EncodeFortunes)->Unit(benchmark::kMillisecond);

// Whole files, the word cache emptied before each pass (every distinct word runs BPE once).
void BM_EncodeFortunesColdCache(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  for (auto _ : state) {
    d.tokenizer->clear_cache();
    for (const auto& file : d.files) benchmark::DoNotOptimize(d.tokenizer->encode(file).data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes));
}
BENCHMARK(BM_EncodeFortunesColdCache)->Unit(benchmark::kMillisecond);

// One call per line (about 40 bytes each): the cost of a call.
void BM_EncodeFortunesByLine(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  for (auto _ : state)
    for (const auto& line : d.lines) benchmark::DoNotOptimize(d.tokenizer->encode(line).data());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes));
}
BENCHMARK(BM_EncodeFortunesByLine)->Unit(benchmark::kMillisecond);

// Decoding the ids of every file (bytes of text out per second).
void BM_DecodeFortunes(benchmark::State& state) {
  const Data& d = data();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  std::vector<std::vector<std::int32_t>> ids;
  for (const auto& file : d.files) ids.push_back(d.tokenizer->encode(file));
  for (auto _ : state)
    for (const auto& file_ids : ids) benchmark::DoNotOptimize(d.tokenizer->decode(file_ids).data());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * d.bytes));
}
BENCHMARK(BM_DecodeFortunes)->Unit(benchmark::kMillisecond);

// Reading and building the tokenizer from its 2.4 MB tokenizer.json.
void BM_LoadTokenizer(benchmark::State& state) {
  const std::string path = env_or("TOKENFORMER_NEOX_TOKENIZER", TOKENFORMER_NEOX_TOKENIZER);
  if (read_file(path).empty()) return state.SkipWithError(("no tokenizer at " + path).c_str());
  for (auto _ : state) benchmark::DoNotOptimize(tokenformer::BpeTokenizer::from_file(path).vocab_size());
}
BENCHMARK(BM_LoadTokenizer)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

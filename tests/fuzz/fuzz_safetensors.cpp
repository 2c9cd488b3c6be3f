// libFuzzer target: SafetensorsReader from memory (header JSON, offsets, shapes); every tensor of an
// input that opens is read as float and as double. An input that opens must also follow the layout
// rule of the reference implementation, which the reader enforces: sorted by offset, the tensors tile
// the data section (no overlap, no gap, nothing after the last); a violation aborts (a finding).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto file =
        tokenformer::io::SafetensorsReader::from_memory(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    std::uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = header << 8 | data[i];
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    for (const auto& [name, info] : file.tensors()) ranges.emplace_back(info.begin, info.end);
    std::sort(ranges.begin(), ranges.end());
    std::uint64_t end = 0;
    for (const auto& [begin, stop] : ranges) {
      if (begin != end || stop < begin) std::abort();
      end = stop;
    }
    if (8 + header + end != size) std::abort();
    for (const auto& [name, info] : file.tensors()) {
      std::vector<float> f(static_cast<std::size_t>(info.shape.numel()));
      file.read(name, info.shape, f.data());
      std::vector<double> d(f.size());
      file.read(name, info.shape, d.data());
    }
  } catch (const tokenformer::error&) {
  }
  return 0;
}

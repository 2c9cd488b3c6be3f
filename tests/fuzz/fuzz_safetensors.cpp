// libFuzzer target: SafetensorsReader from memory (header JSON, offsets, shapes); every tensor of an
// input that opens is read as float and as double.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto file =
        tokenformer::io::SafetensorsReader::from_memory(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
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

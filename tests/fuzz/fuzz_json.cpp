// libFuzzer target: parse_json. A value that parses must dump to text that parses to the same dump.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tokenformer/core/error.hpp"
#include "tokenformer/io/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string dumped;
  try {
    dumped = tokenformer::io::parse_json(text, "fuzz").dump();
  } catch (const tokenformer::error&) {
    return 0;
  }
  // The writer's output is valid JSON for the reader and a fixed point of parse + dump.
  if (tokenformer::io::parse_json(dumped, "dump").dump() != dumped) std::abort();
  return 0;
}

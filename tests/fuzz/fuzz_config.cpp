// libFuzzer target: parse_config (with and without the embedding's row count). A config that parses
// must be valid and survive config_to_json + parse_config unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tokenformer/core/error.hpp"
#include "tokenformer/io/config_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (tokenformer::index_t rows : {0, 40}) {
    tokenformer::ModelConfig c;
    try {
      c = tokenformer::io::parse_config(text, "fuzz", rows);
    } catch (const tokenformer::error&) {
      continue;
    }
    c.validate();  // throws (and fails the run) if parse_config let an invalid config through
    const tokenformer::ModelConfig again = tokenformer::io::parse_config(tokenformer::io::config_to_json(c), "again");
    if (!(again == c)) std::abort();
  }
  return 0;
}

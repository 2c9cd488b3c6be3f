// libFuzzer target: the GPT-NeoX BPE tokenizer. The first byte picks the mode:
//   even: the input (the rest) is a tokenizer.json text; a file that loads must encode and decode a
//         short text without failing;
//   odd:  the input is text for the real GPT-NeoX tokenizer (TOKENFORMER_NEOX_TOKENIZER, read once;
//         the mode is skipped without it): encoding must succeed and decode_bytes(encode(text)) must
//         give back the NFC form of the text (made valid UTF-8 first) where no added token is in it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "tokenformer/core/error.hpp"
#include "tokenformer/tokenizer/bpe_tokenizer.hpp"

namespace {
const tokenformer::BpeTokenizer* real_tokenizer() {
  static const std::unique_ptr<tokenformer::BpeTokenizer> tokenizer = [] {
    const char* path = std::getenv("TOKENFORMER_NEOX_TOKENIZER");
    return path == nullptr ? nullptr
                           : std::make_unique<tokenformer::BpeTokenizer>(tokenformer::BpeTokenizer::from_file(path));
  }();
  return tokenizer.get();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    try {
      const auto tokenizer = tokenformer::BpeTokenizer::from_json(text, "fuzz");
      (void)tokenizer.decode_bytes(tokenizer.encode("Hello, world!  "));
    } catch (const tokenformer::error&) {
    }
    return 0;
  }
  const tokenformer::BpeTokenizer* tokenizer = real_tokenizer();
  if (tokenizer == nullptr) return 0;
  const auto ids = tokenizer->encode(text);
  const std::string back = tokenizer->decode_bytes(ids);
  // The round trip is exact when no added token is involved: none of GPT-NeoX's start without '<'
  // or two spaces.
  if (text.find('<') == std::string::npos && text.find("  ") == std::string::npos && back != tokenizer->normalize(text))
    std::abort();
  return 0;
}

// tokenformer/tokenizer/byte_tokenizer.hpp: the byte-level tokenizer of the examples and the corpus.
//
// Each byte maps to its value (0..255); id 256 is end-of-text; the vocabulary has 257 ids. The
// tokenizers live in this folder (the GPT-NeoX BPE tokenizer of the official checkpoints joins it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "tokenformer/core/error.hpp"

namespace tokenformer {

/// The byte-level tokenizer of the teaching models: each byte is its own id (0-255), plus end-of-text.
struct ByteTokenizer {
  static constexpr std::int32_t end_of_text = 256;  ///< the end-of-text id
  static constexpr std::int32_t vocab_size = 257;   ///< 256 bytes + end-of-text

  /// One id per byte of `text` (never end_of_text).
  static std::vector<std::int32_t> encode(const std::string& text) {
    std::vector<std::int32_t> ids(text.size());
    std::transform(text.begin(), text.end(), ids.begin(),
                   [](char c) { return static_cast<std::int32_t>(static_cast<unsigned char>(c)); });
    return ids;
  }
  /// Bytes of the ids below 256; end-of-text becomes '\n'. Throws on ids outside [0, 257).
  static std::string decode(const std::vector<std::int32_t>& ids) {
    std::string text;
    for (auto id : ids) {
      if (id < 0 || id > end_of_text)
        throw argument_error("byte tokenizer: id " + std::to_string(id) + " out of range");
      text += id == end_of_text ? '\n' : static_cast<char>(static_cast<unsigned char>(id));
    }
    return text;
  }
};

}  // namespace tokenformer

// tokenformer/train/data.hpp: a text corpus that yields training batches, in the byte tokens of
// tokenizer/byte_tokenizer.hpp.
//
// TextCorpus reads text files (by default the English fortunes of Debian's `fortunes` package),
// holds out the last `validation_fraction` of each file (so both splits cover every file's kind of
// text), joins the pieces with end-of-text separators, and draws random [B, T] windows with
// next-token targets from a seeded Rng.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/tokenizer/byte_tokenizer.hpp"

namespace tokenformer {

/// A training batch: tokens [B, T] and next-token targets [B, T], row-major.
struct Batch {
  ///@{
  /// B and T.
  std::int64_t batch_size = 0, sequence_length = 0;
  ///@}
  ///@{
  /// The input ids and, for each, the id that follows it: B·T each.
  std::vector<std::int32_t> tokens, targets;
  ///@}

  /// Rows [first, first + count) of this batch (a data-parallel rank's share); throws argument_error
  /// for a range outside [0, batch_size).
  Batch rows(std::int64_t first, std::int64_t count) const {
    if (first < 0 || count <= 0 || first > batch_size - count)
      throw argument_error("Batch::rows: rows [" + std::to_string(first) + ", " + std::to_string(first) + " + " +
                           std::to_string(count) + ") of a batch of " + std::to_string(batch_size));
    Batch part;
    part.batch_size = count;
    part.sequence_length = sequence_length;
    const auto begin = static_cast<std::ptrdiff_t>(first * sequence_length);
    const auto end = static_cast<std::ptrdiff_t>((first + count) * sequence_length);
    part.tokens.assign(tokens.begin() + begin, tokens.begin() + end);
    part.targets.assign(targets.begin() + begin, targets.begin() + end);
    return part;
  }
};

/// Byte-token text split into a training and a validation part, from which random batches are drawn.
class TextCorpus {
 public:
  /// The English text files of Debian's fortunes package (the files without an extension).
  static std::vector<std::string> default_files(const std::string& directory = "/usr/share/games/fortunes") {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(directory, ec))
      if (entry.is_regular_file() && !entry.path().has_extension()) files.push_back(entry.path().string());
    if (ec || files.empty())
      throw file_error("no corpus files in " + directory +
                       " (install Debian's 'fortunes' package, or pass a text file)");
    std::sort(files.begin(), files.end());
    return files;
  }

  /// Reads `files` (each a text file) and keeps the last `validation_fraction` of each for validation.
  explicit TextCorpus(const std::vector<std::string>& files, double validation_fraction = 0.1) {
    if (files.empty()) throw argument_error("TextCorpus needs at least one file");
    if (!(validation_fraction > 0.0 && validation_fraction < 1.0))
      throw argument_error("validation_fraction must be in (0, 1)");
    for (const auto& path : files) {
      const auto ids = ByteTokenizer::encode(io::read_text_file(path, std::size_t{1} << 31));
      const auto split = static_cast<std::ptrdiff_t>(static_cast<double>(ids.size()) * (1.0 - validation_fraction));
      train_.insert(train_.end(), ids.begin(), ids.begin() + split);
      train_.push_back(ByteTokenizer::end_of_text);
      validation_.insert(validation_.end(), ids.begin() + split, ids.end());
      validation_.push_back(ByteTokenizer::end_of_text);
    }
  }

  const std::vector<std::int32_t>& train_tokens() const { return train_; }            ///< the training split
  const std::vector<std::int32_t>& validation_tokens() const { return validation_; }  ///< the validation split

  /// B random windows of T+1 consecutive tokens from the training (or validation) split.
  Batch sample(Rng& rng, std::int64_t B, std::int64_t T, bool validation = false) const {
    const auto& data = validation ? validation_ : train_;
    if (B <= 0 || T <= 0) throw argument_error("batch size and sequence length must be positive");
    if (static_cast<std::int64_t>(data.size()) < T + 2)
      throw argument_error(std::string(validation ? "validation" : "training") + " split has " +
                           std::to_string(data.size()) + " tokens, too few for sequences of " + std::to_string(T));
    Batch batch;
    batch.batch_size = B;
    batch.sequence_length = T;
    batch.tokens.resize(static_cast<std::size_t>(B * T));
    batch.targets.resize(batch.tokens.size());
    const std::uint64_t starts = data.size() - static_cast<std::size_t>(T);
    for (std::int64_t b = 0; b < B; ++b) {
      const std::size_t start = static_cast<std::size_t>(rng.below(starts));
      for (std::int64_t t = 0; t < T; ++t) {
        batch.tokens[static_cast<std::size_t>(b * T + t)] = data[start + static_cast<std::size_t>(t)];
        batch.targets[static_cast<std::size_t>(b * T + t)] = data[start + static_cast<std::size_t>(t) + 1];
      }
    }
    return batch;
  }

 private:
  std::vector<std::int32_t> train_, validation_;
};

}  // namespace tokenformer

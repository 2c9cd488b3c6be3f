// tokenformer/tokenizer/bpe_tokenizer.hpp: the byte-level BPE tokenizer of GPT-2 and GPT-NeoX, read
// from a Hugging Face tokenizer.json, giving the ids Hugging Face's `tokenizers` gives.
//
// Needs utf8proc (Debian: libutf8proc-dev) for NFC and the Unicode character classes: link the CMake
// target tokenformer::tokenizer. The rest of the library does not include this header.
//
// Encoding a text, step by step (each step is the rule of Hugging Face's Rust implementation):
//   1. Bytes that are not UTF-8 become U+FFFD, one per maximal invalid subsequence: the text that
//      Rust's String::from_utf8_lossy or a WHATWG TextDecoder reads from those bytes.
//   2. Added tokens marked normalized=false (special tokens such as <|endoftext|>) are cut out of the
//      raw text: leftmost match first, the longest one where several start at the same place, with
//      the single_word, lstrip and rstrip flags. Each match is one id.
//   3. Every other piece is normalized (NFC), and then the added tokens marked normalized=true (in
//      GPT-NeoX the runs of 2 to 24 spaces) are cut out of the normalized pieces the same way.
//   4. Every remaining piece is pre-tokenized: GPT-2's regular expression
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      splits it into words. A hand-written scanner takes the place of the regex engine (see
//      pretoken_end). Each word's UTF-8 bytes are the initial symbols of BPE, one per byte.
//   5. BPE: of all adjacent symbol pairs that have a merge rule, merge the pair of lowest rank (the
//      leftmost of equal ones), and repeat until no pair has a rule. The symbols left are the ids.
//      Words seen before come from a cache.
// Decoding concatenates the tokens' bytes (the byte-level alphabet maps each vocabulary character
// back to one byte) and reads them as UTF-8, invalid sequences becoming U+FFFD.
//
// Exactness: tests/test_tokenizer.cpp checks the ids against Hugging Face tokenizers 0.23 (its Rust
// code) for 397 texts (scripts, emoji, whitespace runs, code, contractions, NFC, bytes that are not
// UTF-8, every flag of an added token, the pre-tokenizer's options, ignore_merges, unk_token), 28
// decodes, and 43 whole fortunes files (2.6 MB, 724,482 ids), all equal. utf8proc 2.8 is Unicode
// 15.0: characters assigned later may be classed or normalized differently from Hugging Face.
//
// What is not done: offsets, truncation and padding (files that set them are refused), the
// post-processor (encode never adds special tokens: Hugging Face's add_special_tokens=false), BPE
// dropout, and other normalizers, pre-tokenizers, decoders or models (refused with a file_error).
#pragma once

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/io/json.hpp"

namespace tokenformer {

namespace bpe_detail {

// ---- UTF-8 ---------------------------------------------------------------------------------------

/// One step of reading UTF-8 at s[0] (n >= 1 bytes there): the length of a well-formed sequence, or
/// of the maximal subpart of one (the bytes that could still begin a well-formed sequence, at least
/// one) which becomes one U+FFFD. The ranges are those of the Unicode standard's Table 3-7.
struct Utf8Step {
  std::size_t length;
  bool valid;
};
inline Utf8Step utf8_step(const unsigned char* s, std::size_t n) {
  const unsigned lead = s[0];
  if (lead < 0x80) return {1, true};
  std::size_t continuation = 0;
  unsigned low = 0x80, high = 0xBF;  // the range of the second byte; later ones are 80..BF
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    continuation = 2;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    continuation = 3;
    if (lead == 0xF0) low = 0x90;   // no overlong forms
    if (lead == 0xF4) high = 0x8F;  // nothing beyond U+10FFFF
  } else {
    return {1, false};  // 80..C1, F5..FF never begin a sequence
  }
  for (std::size_t k = 1; k <= continuation; ++k) {
    if (k >= n) return {k, false};
    const unsigned byte = s[k];
    if (byte < (k == 1 ? low : 0x80u) || byte > (k == 1 ? high : 0xBFu)) return {k, false};
  }
  return {continuation + 1, true};
}

/// `text` when it is UTF-8; otherwise a copy in `buffer` with U+FFFD for each maximal invalid
/// subsequence, and a view of that.
inline std::string_view to_valid_utf8(std::string_view text, std::string& buffer) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  for (;;) {  // the common case: valid text, no copy
    while (i < n && s[i] < 0x80) ++i;
    if (i == n) return text;
    const Utf8Step step = utf8_step(s + i, n - i);
    if (!step.valid) break;
    i += step.length;
  }
  buffer.assign(text.data(), i);
  while (i < n) {
    const Utf8Step step = utf8_step(s + i, n - i);
    if (step.valid)
      buffer.append(text.data() + i, step.length);
    else
      buffer += "\xEF\xBF\xBD";  // U+FFFD
    i += step.length;
  }
  return buffer;
}

/// A code point read from valid UTF-8, and its length in bytes.
struct CodePoint {
  std::int32_t value;
  std::size_t length;
};
inline CodePoint decode_utf8(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<std::int32_t>(static_cast<unsigned char>(s[i + k])); };
  const std::int32_t lead = byte(0);
  if (lead < 0x80) return {lead, 1};
  if (lead < 0xE0) return {((lead & 0x1F) << 6) | (byte(1) & 0x3F), 2};
  if (lead < 0xF0) return {((lead & 0x0F) << 12) | ((byte(1) & 0x3F) << 6) | (byte(2) & 0x3F), 3};
  return {((lead & 0x07) << 18) | ((byte(1) & 0x3F) << 12) | ((byte(2) & 0x3F) << 6) | (byte(3) & 0x3F), 4};
}

inline void append_utf8(std::string& out, std::int32_t cp) {
  utf8proc_uint8_t bytes[4];
  const auto length = utf8proc_encode_char(cp, bytes);
  out.append(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(length));
}

// ---- Unicode classes -----------------------------------------------------------------------------

/// The classes of GPT-2's pattern: \p{L}, \p{N}, \s and everything else.
enum class CharClass : unsigned char { letter, number, space, other };

/// \s of Oniguruma and Rust's regex crate: Unicode White_Space, that is the separators Zs, Zl, Zp
/// and the controls U+0009..U+000D and U+0085. (JavaScript's \s differs: it adds U+FEFF and lacks
/// U+0085.)
inline CharClass char_class(std::int32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::letter;
    if (cp >= '0' && cp <= '9') return CharClass::number;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::space;
    return CharClass::other;
  }
  if (cp == 0x85) return CharClass::space;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return CharClass::letter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return CharClass::number;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return CharClass::space;
    default: return CharClass::other;
  }
}
inline bool is_space(std::int32_t cp) { return char_class(cp) == CharClass::space; }

/// \w of Rust's regex crate (Unicode's word characters, UTS #18 Annex C), which decides an added
/// token's single_word flag: Alphabetic, marks, decimal digits, connector punctuation, and the
/// joiners U+200C/U+200D. Alphabetic is the letters, the letter numbers (Nl) and Other_Alphabetic;
/// the Other_Alphabetic characters that are not marks are the circled and squared Latin letters.
inline bool is_word_char(std::int32_t cp) {
  if (cp == 0x200C || cp == 0x200D) return true;
  if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
      (cp >= 0x1F170 && cp <= 0x1F189))
    return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC: return true;
    default: return false;
  }
}

/// Where the character that ends at byte `end` of valid UTF-8 starts (end > 0).
inline std::size_t previous_char_start(std::string_view s, std::size_t end) {
  std::size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return start;
}

// ---- NFC -------------------------------------------------------------------------------------------

/// NFC(text) for valid UTF-8: `text` itself when it is already NFC, else a view of `buffer`. Text
/// below U+0300 is NFC (no such character decomposes, or composes with a following one), which
/// skips utf8proc for ASCII and Latin-1: every byte of such text is below 0xCC, the lead of U+0300.
inline std::string_view nfc(std::string_view text, std::string& buffer) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0xCC; })) return text;
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                   &result, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (length < 0) throw argument_error(std::string("NFC normalization failed: ") + utf8proc_errmsg(length));
  buffer.assign(reinterpret_cast<const char*>(result), static_cast<std::size_t>(length));
  std::free(result);
  return buffer;
}

// ---- GPT-2's pre-tokenizer ---------------------------------------------------------------------------

/// The end of the maximal run of characters of class `cls` that starts at s[i].
inline std::size_t run_end(std::string_view s, std::size_t i, CharClass cls) {
  while (i < s.size()) {
    const CodePoint c = decode_utf8(s, i);
    if (char_class(c.value) != cls) break;
    i += c.length;
  }
  return i;
}

/// Where the word that starts at s[i] ends: the match of GPT-2's pattern at i (valid UTF-8, i < size).
/// The alternatives, tried in order as a backtracking regex engine does (the first that matches wins):
///   's|'t|'re|'ve|'m|'ll|'d     a contraction: an apostrophe and lowercase letters, case-sensitive
///    ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+
///                               an optional space, then a run of letters, digits or other characters
///   \s+(?!\S)                   whitespace up to the end, or all of a run but its last character
///                               when a non-space follows (that character starts the next word,
///                               so " world" keeps its space)
///   \s+                         else: a single whitespace character before a non-space
/// Every character is matched by one alternative, so the words tile the text.
inline std::size_t pretoken_end(std::string_view s, std::size_t i) {
  const std::size_t n = s.size();
  if (s[i] == '\'' && i + 1 < n) {
    const char a = s[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 < n) {
      const char b = s[i + 2];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
  }
  const CodePoint first = decode_utf8(s, i);
  CharClass cls = char_class(first.value);
  std::size_t run_start = i;
  if (first.value == ' ' && i + 1 < n) {  // ` ?X+`: a space then a run of X (X not whitespace)
    const CharClass next = char_class(decode_utf8(s, i + 1).value);
    if (next != CharClass::space) {
      cls = next;
      run_start = i + 1;
    }
  }
  if (cls != CharClass::space) return run_end(s, run_start, cls);
  std::size_t end = i, last = i;  // the whitespace run [i, end); `last`: where its last character starts
  while (end < n) {
    const CodePoint c = decode_utf8(s, end);
    if (!is_space(c.value)) break;
    last = end;
    end += c.length;
  }
  if (end == n || last == i) return end;  // `\s+(?!\S)` to the end, or `\s+` for one character
  return last;                            // `\s+(?!\S)`, backtracked by one character
}

// ---- the byte-level alphabet ---------------------------------------------------------------------------

/// GPT-2's map from bytes to printable characters: the printable bytes '!'..'~', U+00A1..U+00AC and
/// U+00AE..U+00FF stand for themselves; the others (controls, space, U+00AD) become U+0100, U+0101,
/// ... in byte order. So " the" is "Ġthe" in the vocabulary (space is U+0120 'Ġ').
inline std::array<std::int32_t, 256> byte_to_char() {
  std::array<std::int32_t, 256> map{};
  std::int32_t next = 256;
  for (std::int32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[static_cast<std::size_t>(b)] = printable ? b : next++;
  }
  return map;
}

/// The inverse of byte_to_char: the byte a character of the alphabet stands for, -1 for others.
inline int char_to_byte(std::int32_t cp) {
  static const std::array<std::int16_t, 324> table = [] {
    std::array<std::int16_t, 324> inverse{};
    inverse.fill(-1);
    const auto map = byte_to_char();
    for (std::size_t b = 0; b < 256; ++b) inverse[static_cast<std::size_t>(map[b])] = static_cast<std::int16_t>(b);
    return inverse;
  }();
  return cp >= 0 && cp < 324 ? table[static_cast<std::size_t>(cp)] : -1;
}

// ---- the merge rules -------------------------------------------------------------------------------

/// A merge rule: the pair (left id, right id) joins into `merged`; lower ranks merge first.
struct MergeRule {
  std::int32_t rank;
  std::int32_t merged;
};

/// The merge rules by pair of ids, in an open-addressing hash table (linear probing, at most half
/// full): a lookup reads one cache line, which matters because BPE looks up every adjacent pair.
class MergeTable {
 public:
  /// Sets the rule of a pair (a pair given again: the last wins).
  void set(std::int32_t left, std::int32_t right, MergeRule rule) {
    if (2 * (used_ + 1) > entries_.size()) rehash(entries_.empty() ? 1024 : 2 * entries_.size());
    Entry& entry = entries_[position(key(left, right))];
    if (entry.key == empty) ++used_;
    entry = Entry{key(left, right), rule};
  }
  /// The rule of a pair, or nullptr.
  const MergeRule* find(std::int32_t left, std::int32_t right) const {
    if (entries_.empty()) return nullptr;
    const Entry& entry = entries_[position(key(left, right))];
    return entry.key == empty ? nullptr : &entry.rule;
  }

 private:
  static constexpr std::uint64_t empty = ~std::uint64_t{0};  // ids are never negative
  struct Entry {
    std::uint64_t key = empty;
    MergeRule rule{0, 0};
  };
  static std::uint64_t key(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }
  /// Where `k` is, or the empty entry where it would go.
  std::size_t position(std::uint64_t k) const {
    const std::size_t mask = entries_.size() - 1;
    std::size_t i = static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_);  // Fibonacci hashing
    while (entries_[i].key != empty && entries_[i].key != k) i = (i + 1) & mask;
    return i;
  }
  void rehash(std::size_t size) {  // size: a power of two
    std::vector<Entry> old(size);
    old.swap(entries_);
    shift_ = 64;
    for (std::size_t n = size; n > 1; n /= 2) --shift_;
    for (const Entry& entry : old)
      if (entry.key != empty) entries_[position(entry.key)] = entry;
  }
  std::vector<Entry> entries_;
  std::size_t used_ = 0;
  int shift_ = 64;  // 64 - log2(size)
};

// ---- the word cache ------------------------------------------------------------------------------

/// Words already encoded and their ids, in an open-addressing hash table (linear probing) of 64-byte
/// slots that hold the word and its ids inline: a hit reads one cache line. Words longer than 22
/// bytes or of more than 8 ids are not cached. Full (half the slots used, at most 2^16), it empties.
class WordCache {
 public:
  static constexpr std::size_t max_word_bytes = 22, max_ids = 8;

  static std::uint64_t hash(std::string_view word) {  // FNV-1a
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : word) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    return h;
  }
  /// Appends the ids of `word` to `ids` when cached.
  bool find(std::string_view word, std::uint64_t h, std::vector<std::int32_t>& ids) const {
    if (slots_.empty()) return false;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (slot.length == 0) return false;
      if (slot.hash == static_cast<std::uint32_t>(h >> 32) && slot.length == word.size() &&
          std::equal(word.begin(), word.end(), slot.word)) {
        ids.insert(ids.end(), slot.ids, slot.ids + slot.count);
        return true;
      }
    }
  }
  /// Caches a word (not cached yet) and its ids, if they fit.
  void insert(std::string_view word, std::uint64_t h, const std::int32_t* ids, std::size_t count) {
    if (word.empty() || word.size() > max_word_bytes || count > max_ids) return;
    if (2 * (used_ + 1) > slots_.size()) grow();
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = h & mask;
    while (slots_[i].length != 0) i = (i + 1) & mask;
    Slot& slot = slots_[i];
    slot.hash = static_cast<std::uint32_t>(h >> 32);
    slot.length = static_cast<std::uint8_t>(word.size());
    slot.count = static_cast<std::uint8_t>(count);
    std::copy(word.begin(), word.end(), slot.word);
    std::copy(ids, ids + count, slot.ids);
    ++used_;
  }
  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    used_ = 0;
  }

 private:
  struct alignas(64) Slot {
    std::uint32_t hash = 0;   // the high half of the word's hash (the low half picks the slot)
    std::uint8_t length = 0;  // 0: empty
    std::uint8_t count = 0;
    char word[max_word_bytes] = {};
    std::int32_t ids[max_ids] = {};
  };
  static constexpr std::size_t max_slots = std::size_t{1} << 17;

  void grow() {
    if (slots_.size() >= max_slots) return clear();
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 256 : 2 * old.size(), Slot{});
    used_ = 0;
    for (const Slot& slot : old)
      if (slot.length != 0) {
        const std::string_view word(slot.word, slot.length);
        insert(word, hash(word), slot.ids, slot.count);
      }
  }

  std::vector<Slot> slots_;
  std::size_t used_ = 0;
};

// ---- a trie of the added tokens -------------------------------------------------------------------------

/// The patterns of one pass of added-token matching, as a byte trie: at each position the longest
/// pattern that starts there (leftmost-longest matching, as Hugging Face's Aho-Corasick automaton).
class TokenTrie {
 public:
  TokenTrie() : nodes_(1) {}
  bool empty() const { return nodes_.size() == 1; }

  /// Adds `pattern` (non-empty) for added token number `token`; a pattern given twice keeps the first.
  void insert(std::string_view pattern, std::int32_t token) {
    std::size_t node = 0;
    for (char c : pattern) {
      const auto byte = static_cast<unsigned char>(c);
      std::int32_t child = find_child(node, byte);
      if (child < 0) {
        child = static_cast<std::int32_t>(nodes_.size());
        nodes_[node].children.emplace_back(byte, child);
        nodes_.emplace_back();
      }
      node = static_cast<std::size_t>(child);
    }
    if (nodes_[node].token < 0) nodes_[node].token = token;
    can_start_[static_cast<unsigned char>(pattern[0])] = true;
  }

  /// The longest pattern starting at text[i]: its length and token, or {0, -1}.
  std::pair<std::size_t, std::int32_t> longest_at(std::string_view text, std::size_t i) const {
    std::pair<std::size_t, std::int32_t> best{0, -1};
    if (!can_start_[static_cast<unsigned char>(text[i])]) return best;
    std::size_t node = 0;
    for (std::size_t k = i; k < text.size(); ++k) {
      const std::int32_t child = find_child(node, static_cast<unsigned char>(text[k]));
      if (child < 0) break;
      node = static_cast<std::size_t>(child);
      if (nodes_[node].token >= 0) best = {k + 1 - i, nodes_[node].token};
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, std::int32_t>> children;
    std::int32_t token = -1;
  };
  std::int32_t find_child(std::size_t node, unsigned char byte) const {
    for (const auto& [b, child] : nodes_[node].children)
      if (b == byte) return child;
    return -1;
  }
  std::vector<Node> nodes_;
  std::array<bool, 256> can_start_{};
};

}  // namespace bpe_detail

/// GPT-2 style byte-level BPE from a Hugging Face tokenizer.json (GPT-NeoX-20B's, for one). Immutable
/// once built; encode and decode may run on several threads at once.
class BpeTokenizer {
 public:
  /// Reads a tokenizer.json; file_error when it cannot be read or is not a supported tokenizer.
  static BpeTokenizer from_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw file_error("cannot open tokenizer file " + path);
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw file_error("cannot read tokenizer file " + path);
    return from_json(text.str(), path);
  }
  /// Builds the tokenizer from the text of a tokenizer.json; `source` names it in error messages.
  static BpeTokenizer from_json(const std::string& text, const std::string& source = "tokenizer.json") {
    BpeTokenizer tokenizer;
    tokenizer.load(io::parse_json(text, source), source);
    return tokenizer;
  }

  /// The ids of `text` (bytes; what is not UTF-8 reads as U+FFFD). No special tokens are added.
  std::vector<std::int32_t> encode(std::string_view text) const {
    std::vector<std::int32_t> ids;
    ids.reserve(text.size() / 4 + 1);
    encode_append(text, ids);
    return ids;
  }
  /// encode(text), appended to `ids`.
  void encode_append(std::string_view text, std::vector<std::int32_t>& ids) const {
    Workspace work;
    // The shared word cache serves one encode at a time; a concurrent one uses a cache of its own.
    std::unique_lock<std::mutex> lock;
    if (shared_cache_) {
      lock = std::unique_lock<std::mutex>(shared_cache_->mutex, std::try_to_lock);
      if (lock.owns_lock()) work.cache = &shared_cache_->cache;
    }
    const std::string_view valid = bpe_detail::to_valid_utf8(text, work.utf8);
    // Step 2: the raw text's added tokens; step 3: normalize the rest and find the normalized ones.
    split_added_tokens(valid, raw_trie_, ids, [&](std::string_view piece) {
      const std::string_view normalized = nfc_ ? bpe_detail::nfc(piece, work.normalized) : piece;
      split_added_tokens(normalized, normalized_trie_, ids,
                         [&](std::string_view rest) { encode_piece(rest, work, ids); });
    });
  }

  /// The text of `ids`: each token's bytes (an added token's content), read as UTF-8 with U+FFFD
  /// for invalid sequences, as Hugging Face decodes. With skip_special, special tokens are left out.
  /// argument_error for an id that is not in the vocabulary.
  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special = false) const {
    std::string bytes = decode_bytes(ids, skip_special);
    std::string replaced;
    if (bpe_detail::to_valid_utf8(bytes, replaced).data() == bytes.data()) return bytes;
    return replaced;
  }
  /// The bytes of `ids` as they are (possibly a UTF-8 sequence cut at a token boundary, which decode
  /// would turn into U+FFFD): for streaming, decode_bytes of consecutive id ranges concatenate.
  std::string decode_bytes(const std::vector<std::int32_t>& ids, bool skip_special = false) const {
    std::string bytes;
    for (const std::int32_t id : ids) {
      check_id(id, "decode");
      const Entry& entry = entries_[static_cast<std::size_t>(id)];
      if (!(skip_special && entry.special)) bytes += entry.bytes;
    }
    return bytes;
  }

  /// The id of a token, -1 when there is none: an added token's content, or a vocabulary entry as
  /// the file spells it (byte-level characters: "Ġthe" for " the").
  std::int32_t token_id(std::string_view token) const {
    const auto it = token_ids_.find(std::string(token));
    return it == token_ids_.end() ? -1 : it->second;
  }
  /// The token of an id as the file spells it (an added token's content); argument_error when none.
  const std::string& id_to_token(std::int32_t id) const {
    check_id(id, "id_to_token");
    return entries_[static_cast<std::size_t>(id)].token;
  }
  /// Whether `id` is a special token (skipped by decode with skip_special).
  bool is_special(std::int32_t id) const {
    check_id(id, "is_special");
    return entries_[static_cast<std::size_t>(id)].special;
  }
  /// The id of <|endoftext|> (GPT-2, GPT-NeoX), -1 when the vocabulary has none.
  std::int32_t eos_id() const { return token_id("<|endoftext|>"); }
  /// One more than the largest id (GPT-NeoX-20B: 50277, of which 50254 are BPE tokens and 23 added).
  index_t vocab_size() const { return static_cast<index_t>(entries_.size()); }

  /// Empties the word cache (at most 65,536 words, 8 MB; copies of a tokenizer share it).
  void clear_cache() const {
    if (!shared_cache_) return;
    const std::lock_guard<std::mutex> lock(shared_cache_->mutex);
    shared_cache_->cache.clear();
  }

  /// The text that encode tokenizes between added tokens: invalid UTF-8 replaced, then the file's
  /// normalizer (NFC) applied. decode(encode(text)) == normalize(text) when no added token has
  /// lstrip or rstrip (they drop whitespace) and no normalization joins across an added token.
  std::string normalize(std::string_view text) const {
    std::string buffer, normalized;
    const std::string_view valid = bpe_detail::to_valid_utf8(text, buffer);
    return std::string(nfc_ ? bpe_detail::nfc(valid, normalized) : valid);
  }

 private:
  struct AddedToken {
    std::string content;
    std::int32_t id = -1;
    bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = true;
  };
  struct Entry {
    std::string token;  // as the file spells it
    std::string bytes;  // what decode writes
    bool special = false;
    bool present = false;
  };
  using WordCache = bpe_detail::WordCache;
  struct SharedWordCache {
    std::mutex mutex;
    WordCache cache;
  };
  /// The scratch space of one encode call (no allocation per word once warm).
  struct Workspace {
    std::string utf8, normalized, spelled, prefixed;
    /// One symbol of the word being merged: a node of a doubly linked list in a vector.
    struct Symbol {
      ///@{
      /// The token id (-1: merged into its left neighbour) and the indices of the previous and next
      /// symbols (-1: none).
      std::int32_t id, prev, next;
      ///@}
    };
    /// A merge that may apply: the pair of symbols starting at `left` with the ids it had when pushed
    /// (a later merge makes it stale), and the merge rule's rank and result.
    struct Candidate {
      ///@{
      /// The rule's rank (lowest merges first), the left symbol's index, the pair's ids, the merged id.
      std::int32_t rank, left, left_id, right_id, merged;
      ///@}
    };
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
    WordCache own_cache;
    WordCache* cache = &own_cache;
  };

  void check_id(std::int32_t id, const char* what) const {
    if (id < 0 || static_cast<std::size_t>(id) >= entries_.size() || !entries_[static_cast<std::size_t>(id)].present)
      throw argument_error(std::string("BPE tokenizer ") + what + ": id " + std::to_string(id) +
                           " is not in the vocabulary (" + std::to_string(entries_.size()) + " ids)");
  }

  // ---- encoding ------------------------------------------------------------------------------------

  /// Splits `text` on the added tokens of `trie`: their ids go to `ids`, the pieces between them to
  /// `on_piece`, in order. Hugging Face's rule: the search goes left to right, taking the longest
  /// token at the first position where one starts, and resumes after it. A single_word token counts
  /// only without a word character (\w) on either side; lstrip and rstrip widen a match over the
  /// whitespace beside it (the pieces lose it). The search resumes at the match's own end even
  /// after rstrip, so a token inside the stripped whitespace is still found (both ids are emitted).
  template <class OnPiece>
  void split_added_tokens(std::string_view text, const bpe_detail::TokenTrie& trie, std::vector<std::int32_t>& ids,
                          OnPiece&& on_piece) const {
    if (trie.empty()) {
      if (!text.empty()) on_piece(text);
      return;
    }
    std::size_t emitted = 0;  // text before this went out as pieces and tokens
    std::size_t i = 0;        // where the search goes on
    while (i < text.size()) {
      const auto [length, index] = trie.longest_at(text, i);
      if (length == 0) {
        ++i;
        continue;
      }
      std::size_t start = i, stop = i + length;
      i = stop;
      const AddedToken& token = added_[static_cast<std::size_t>(index)];
      if (token.single_word) {
        const bool word_before =
            start > 0 &&
            bpe_detail::is_word_char(bpe_detail::decode_utf8(text, bpe_detail::previous_char_start(text, start)).value);
        const bool word_after =
            stop < text.size() && bpe_detail::is_word_char(bpe_detail::decode_utf8(text, stop).value);
        if (word_before || word_after) continue;
      }
      if (token.lstrip) {
        std::size_t spaces_start = start;
        while (spaces_start > 0) {
          const std::size_t previous = bpe_detail::previous_char_start(text, spaces_start);
          if (!bpe_detail::is_space(bpe_detail::decode_utf8(text, previous).value)) break;
          spaces_start = previous;
        }
        start = std::max(spaces_start, emitted);  // not into what an earlier match took
      }
      if (token.rstrip) {
        while (stop < text.size()) {
          const bpe_detail::CodePoint c = bpe_detail::decode_utf8(text, stop);
          if (!bpe_detail::is_space(c.value)) break;
          stop += c.length;
        }
      }
      if (emitted < start) on_piece(text.substr(emitted, start - emitted));
      ids.push_back(token.id);
      emitted = stop;
    }
    if (emitted < text.size()) on_piece(text.substr(emitted));
  }

  /// Steps 4 and 5 for a piece of normalized text between added tokens.
  void encode_piece(std::string_view piece, Workspace& work, std::vector<std::int32_t>& ids) const {
    if (add_prefix_space_ && piece.front() != ' ') {  // ByteLevel's add_prefix_space, per piece
      work.prefixed.assign(1, ' ');
      work.prefixed.append(piece);
      piece = work.prefixed;
    }
    if (!use_regex_) {
      encode_word(piece, work, ids);
      return;
    }
    for (std::size_t i = 0; i < piece.size();) {
      const std::size_t end = bpe_detail::pretoken_end(piece, i);
      encode_word(piece.substr(i, end - i), work, ids);
      i = end;
    }
  }

  /// The BPE ids of one word, from the cache when it has them.
  void encode_word(std::string_view word, Workspace& work, std::vector<std::int32_t>& ids) const {
    if (ignore_merges_) {  // a word that is a whole vocabulary entry is that token, unmerged
      std::string& spelled = work.spelled;
      spelled.clear();
      for (char c : word) bpe_detail::append_utf8(spelled, byte_char_[static_cast<unsigned char>(c)]);
      const auto it = model_ids_.find(spelled);
      if (it != model_ids_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    WordCache& cache = *work.cache;
    const bool cacheable = word.size() <= WordCache::max_word_bytes;
    const std::uint64_t hash = cacheable ? WordCache::hash(word) : 0;
    if (cacheable && cache.find(word, hash, ids)) return;
    const std::size_t first = ids.size();
    merge_word(word, work, ids);
    if (cacheable) cache.insert(word, hash, ids.data() + first, ids.size() - first);
  }

  /// BPE proper. The symbols start as one per byte; a min-heap holds every adjacent pair that has a
  /// merge rule, by (rank, position). Popping the top merges that pair (unless it is stale: one of
  /// its symbols has changed since) and pushes the pairs the new symbol forms with its neighbours.
  /// This is "merge the lowest-ranked pair, leftmost first, until none is left", in O(n log n).
  void merge_word(std::string_view word, Workspace& work, std::vector<std::int32_t>& ids) const {
    using Symbol = Workspace::Symbol;
    using Candidate = Workspace::Candidate;
    auto& symbols = work.symbols;
    auto& heap = work.heap;
    symbols.clear();
    heap.clear();
    // One symbol per byte. A byte without a token (GPT-NeoX has none for C0, C1, F5..FF, which
    // UTF-8 never uses) is dropped, or becomes unk_token when the file names one (fuse_unk: one
    // unk_token for a run of such bytes), as in Hugging Face.
    bool previous_unknown = false;
    for (const char c : word) {
      std::int32_t id = byte_ids_[static_cast<unsigned char>(c)];
      if (id < 0) {
        if (unk_id_ < 0 || (fuse_unk_ && previous_unknown)) continue;
        id = unk_id_;
        previous_unknown = true;
      } else {
        previous_unknown = false;
      }
      const auto index = static_cast<std::int32_t>(symbols.size());
      if (index > 0) symbols.back().next = index;
      symbols.push_back(Symbol{id, index - 1, -1});
    }
    const auto n = static_cast<std::int32_t>(symbols.size());
    const auto later = [](const Candidate& a, const Candidate& b) {  // std heaps keep the largest on top
      return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
    };
    const auto push_pair = [&](std::int32_t left) {
      const std::int32_t right = symbols[static_cast<std::size_t>(left)].next;
      if (right < 0) return;
      const std::int32_t left_id = symbols[static_cast<std::size_t>(left)].id;
      const std::int32_t right_id = symbols[static_cast<std::size_t>(right)].id;
      const bpe_detail::MergeRule* rule = merges_.find(left_id, right_id);
      if (!rule) return;
      heap.push_back(Candidate{rule->rank, left, left_id, right_id, rule->merged});
      std::push_heap(heap.begin(), heap.end(), later);
    };
    for (std::int32_t k = 0; k + 1 < n; ++k) push_pair(k);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Candidate top = heap.back();
      heap.pop_back();
      Symbol& left = symbols[static_cast<std::size_t>(top.left)];
      if (left.id != top.left_id || left.next < 0) continue;  // stale
      Symbol& right = symbols[static_cast<std::size_t>(left.next)];
      if (right.id != top.right_id) continue;  // stale
      left.id = top.merged;
      right.id = -1;
      left.next = right.next;
      if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top.left;
      if (left.prev >= 0) push_pair(left.prev);
      push_pair(top.left);
    }
    for (std::int32_t k = n > 0 ? 0 : -1; k >= 0; k = symbols[static_cast<std::size_t>(k)].next)
      ids.push_back(symbols[static_cast<std::size_t>(k)].id);
  }

  // ---- loading ---------------------------------------------------------------------------------------

  BpeTokenizer() = default;

  [[noreturn]] static void fail(const std::string& what) { throw file_error(what); }

  /// Reads the tokenizer from the parsed file; every file_error names `source`.
  void load(const io::Json& root, const std::string& source) {
    try {
      load_parts(root);
    } catch (const file_error& e) {
      const std::string prefix = "file error: ";
      const std::string message = e.what();
      throw file_error(source + ": " + (message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message));
    }
  }
  void load_parts(const io::Json& root) {
    root.as_object("the tokenizer file");
    for (const char* key : {"truncation", "padding"})
      if (const io::Json* value = root.find(key); value && !value->is_null())
        fail(std::string(key) + " is not supported (it must be null)");
    load_normalizer(root.find("normalizer"));
    load_pre_tokenizer(root.find("pre_tokenizer"));
    const io::Json* decoder = root.find("decoder");
    if (!decoder || decoder->is_null() || type_of(*decoder, "decoder") != "ByteLevel")
      fail("the decoder must be ByteLevel, found " + describe_type(decoder, "decoder"));
    const io::Json* model = root.find("model");
    if (!model) fail("no \"model\"");
    load_model(*model);
    load_added_tokens(root.find("added_tokens"));
  }

  static std::string type_of(const io::Json& object, const std::string& what) {
    object.as_object(what);
    const io::Json* type = object.find("type");
    if (!type) throw file_error(what + " has no \"type\"");
    return type->as_string(what + ".type");
  }
  static std::string describe_type(const io::Json* object, const std::string& what) {
    if (!object || object->is_null()) return "none";
    return "\"" + type_of(*object, what) + "\"";
  }
  static bool flag(const io::Json& object, const char* key, bool fallback, const std::string& what) {
    const io::Json* value = object.find(key);
    return value && !value->is_null() ? value->as_bool(what + "." + key) : fallback;
  }

  void load_normalizer(const io::Json* normalizer) {
    if (!normalizer || normalizer->is_null()) return;
    const std::string type = type_of(*normalizer, "normalizer");
    if (type == "NFC") {
      nfc_ = true;
    } else if (type == "Sequence") {  // NFC any number of times is NFC
      const io::Json* list = normalizer->find("normalizers");
      if (!list) fail("normalizer Sequence has no \"normalizers\"");
      for (const io::Json& item : list->as_array("normalizer.normalizers")) {
        const std::string inner = type_of(item, "normalizer in the Sequence");
        if (inner != "NFC") fail("unsupported normalizer \"" + inner + "\" in the Sequence (supported: NFC)");
        nfc_ = true;
      }
    } else {
      fail("unsupported normalizer \"" + type + "\" (supported: NFC, a Sequence of NFC, or null)");
    }
  }

  void load_pre_tokenizer(const io::Json* pre_tokenizer) {
    if (!pre_tokenizer || pre_tokenizer->is_null() || type_of(*pre_tokenizer, "pre_tokenizer") != "ByteLevel")
      fail("the pre_tokenizer must be ByteLevel, found " + describe_type(pre_tokenizer, "pre_tokenizer"));
    const io::Json* prefix = pre_tokenizer->find("add_prefix_space");
    if (!prefix) fail("pre_tokenizer has no \"add_prefix_space\"");
    add_prefix_space_ = prefix->as_bool("pre_tokenizer.add_prefix_space");
    use_regex_ = flag(*pre_tokenizer, "use_regex", true, "pre_tokenizer");
  }

  void load_model(const io::Json& model) {
    model.as_object("model");
    if (const io::Json* type = model.find("type"); type && type->as_string("model.type") != "BPE")
      fail("unsupported model \"" + type->as_string() + "\" (supported: BPE)");
    if (const io::Json* dropout = model.find("dropout");
        dropout && !dropout->is_null() && dropout->as_number("model.dropout") != 0.0)
      fail("BPE dropout is not supported (model.dropout must be null)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (const io::Json* value = model.find(key);
          value && !value->is_null() && !value->as_string(std::string("model.") + key).empty())
        fail(std::string("model.") + key + " is not supported (it must be null)");
    ignore_merges_ = flag(model, "ignore_merges", false, "model");

    // The vocabulary: token -> id, the ids 0..n-1 each once.
    const io::Json* vocab = model.find("vocab");
    if (!vocab) fail("model has no \"vocab\"");
    const auto& vocab_object = vocab->as_object("model.vocab");
    const auto count = static_cast<std::int64_t>(vocab_object.size());
    if (count == 0 || count >= INT32_MAX / 2) fail("model.vocab must have between 1 and 2^30 entries");
    entries_.assign(static_cast<std::size_t>(count), Entry{});
    model_ids_.reserve(vocab_object.size());
    for (const auto& [token, value] : vocab_object) {
      const double number = value.is_number() ? value.as_number() : -1.0;
      if (!(number >= 0.0 && number < static_cast<double>(count) && number == std::floor(number)))
        fail("model.vocab[\"" + token + "\"] must be an id in [0, " + std::to_string(count) + ")");
      const auto id = static_cast<std::int32_t>(number);
      Entry& entry = entries_[static_cast<std::size_t>(id)];
      if (entry.present)
        fail("model.vocab gives id " + std::to_string(id) + " to both \"" + entry.token + "\" and \"" + token + "\"");
      entry.token = token;
      entry.present = true;
      model_ids_.emplace(token, id);
    }

    // The byte-level alphabet: each byte's character and its id (-1 when the vocabulary lacks it).
    const auto alphabet = bpe_detail::byte_to_char();
    for (std::size_t b = 0; b < 256; ++b) {
      byte_char_[b] = alphabet[b];
      std::string spelled;
      bpe_detail::append_utf8(spelled, alphabet[b]);
      const auto it = model_ids_.find(spelled);
      byte_ids_[b] = it == model_ids_.end() ? -1 : it->second;
    }
    if (const io::Json* unk = model.find("unk_token"); unk && !unk->is_null()) {
      const auto it = model_ids_.find(unk->as_string("model.unk_token"));
      if (it == model_ids_.end()) fail("model.unk_token \"" + unk->as_string() + "\" is not in model.vocab");
      unk_id_ = it->second;
    }
    fuse_unk_ = flag(model, "fuse_unk", false, "model");
    for (Entry& entry : entries_) entry.bytes = decoded_bytes(entry.token);

    // The merges, by rank: "a b" strings (a "#version" line is skipped) or ["a", "b"] pairs.
    const io::Json* merges = model.find("merges");
    if (!merges) fail("model has no \"merges\"");
    const auto& merge_list = merges->as_array("model.merges");
    std::int32_t rank = 0;
    for (std::size_t k = 0; k < merge_list.size(); ++k) {
      const std::string where = "model.merges[" + std::to_string(k) + "]";
      std::string left, right;
      if (merge_list[k].is_string()) {
        const std::string& line = merge_list[k].as_string();
        if (line.rfind("#version", 0) == 0) continue;
        const std::size_t space = line.find(' ');
        if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
          fail(where + " \"" + line + "\" must be two tokens separated by one space");
        left = line.substr(0, space);
        right = line.substr(space + 1);
      } else {
        const auto& pair = merge_list[k].as_array(where + " (a string or a pair of strings)");
        if (pair.size() != 2) fail(where + " must be a pair of tokens");
        left = pair[0].as_string(where + "[0]");
        right = pair[1].as_string(where + "[1]");
      }
      const auto id_of = [&](const std::string& token) {
        const auto it = model_ids_.find(token);
        if (it == model_ids_.end()) fail(where + " names \"" + token + "\", which is not in model.vocab");
        return it->second;
      };
      const std::int32_t left_id = id_of(left), right_id = id_of(right), merged = id_of(left + right);
      merges_.set(left_id, right_id, bpe_detail::MergeRule{rank++, merged});  // a repeated pair: the last wins
    }
  }

  void load_added_tokens(const io::Json* list) {
    token_ids_ = model_ids_;
    const auto model_count = static_cast<std::int64_t>(entries_.size());
    if (list && !list->is_null()) {
      const auto& items = list->as_array("added_tokens");
      const auto max_id = model_count + static_cast<std::int64_t>(items.size()) - 1;
      for (std::size_t k = 0; k < items.size(); ++k) {
        const std::string where = "added_tokens[" + std::to_string(k) + "]";
        const io::Json& item = items[k];
        item.as_object(where);
        AddedToken token;
        const io::Json* content = item.find("content");
        const io::Json* id = item.find("id");
        if (!content || !id) fail(where + " needs \"id\" and \"content\"");
        token.content = content->as_string(where + ".content");
        token.id = static_cast<std::int32_t>(id->as_integer(where + ".id", 0, max_id));
        token.special = flag(item, "special", false, where);
        token.single_word = flag(item, "single_word", false, where);
        token.lstrip = flag(item, "lstrip", false, where);
        token.rstrip = flag(item, "rstrip", false, where);
        token.normalized = flag(item, "normalized", !token.special, where);
        if (token.content.empty()) continue;  // Hugging Face ignores them
        // A token of the model's vocabulary keeps its id there; new ones come after the vocabulary.
        if (const auto it = model_ids_.find(token.content); it != model_ids_.end()) {
          if (it->second != token.id)
            fail(where + " \"" + token.content + "\" has id " + std::to_string(token.id) +
                 " but model.vocab gives it " + std::to_string(it->second));
        } else if (token.id < model_count) {
          fail(where + " \"" + token.content + "\" has id " + std::to_string(token.id) +
               ", which model.vocab gives to \"" + entries_[static_cast<std::size_t>(token.id)].token + "\"");
        }
        for (const AddedToken& other : added_) {
          if (other.content == token.content) fail(where + ": the content \"" + token.content + "\" appears twice");
          if (other.id == token.id) fail(where + ": the id " + std::to_string(token.id) + " appears twice");
        }
        if (static_cast<std::size_t>(token.id) >= entries_.size())
          entries_.resize(static_cast<std::size_t>(token.id) + 1);
        Entry& entry = entries_[static_cast<std::size_t>(token.id)];
        entry.token = token.content;
        entry.bytes = decoded_bytes(token.content);
        entry.present = true;
        token_ids_[token.content] = token.id;
        added_.push_back(std::move(token));
      }
    }
    // Special ids: every id whose token is the content of a special added token.
    for (const AddedToken& token : added_)
      if (token.special) entries_[static_cast<std::size_t>(token.id)].special = true;
    // The two tries, special tokens first: for equal patterns the first added wins (Hugging Face
    // builds its automaton from the special tokens, then the others).
    for (const bool special : {true, false}) {
      for (std::size_t k = 0; k < added_.size(); ++k) {
        const AddedToken& token = added_[k];
        if (token.special != special) continue;
        if (!token.normalized) {
          raw_trie_.insert(token.content, static_cast<std::int32_t>(k));
        } else {
          normalized_trie_.insert(normalize(token.content), static_cast<std::int32_t>(k));
        }
      }
    }
    shared_cache_ = std::make_shared<SharedWordCache>();
  }

  /// The bytes a token decodes to: a token all of whose characters belong to the byte-level
  /// alphabet stands for those bytes; any other (" " runs, say) for its own UTF-8, as in Hugging Face.
  static std::string decoded_bytes(const std::string& token) {
    std::string buffer, bytes;
    const std::string_view valid = bpe_detail::to_valid_utf8(token, buffer);
    for (std::size_t i = 0; i < valid.size();) {
      const bpe_detail::CodePoint c = bpe_detail::decode_utf8(valid, i);
      const int byte = bpe_detail::char_to_byte(c.value);
      if (byte < 0) return token;
      bytes += static_cast<char>(byte);
      i += c.length;
    }
    return bytes;
  }

  // The model.
  std::vector<Entry> entries_;                               // by id
  std::unordered_map<std::string, std::int32_t> model_ids_;  // model.vocab
  std::unordered_map<std::string, std::int32_t> token_ids_;  // model.vocab and the added tokens
  bpe_detail::MergeTable merges_;                            // (left id, right id) -> rule
  std::array<std::int32_t, 256> byte_ids_{};                 // byte -> the id of its character
  std::array<std::int32_t, 256> byte_char_{};                // byte -> its character
  std::int32_t unk_id_ = -1;                                 // model.unk_token, -1 when none
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  // The added tokens and their two tries (normalized=false: raw text; normalized=true: NFC text).
  std::vector<AddedToken> added_;
  bpe_detail::TokenTrie raw_trie_, normalized_trie_;
  // The normalizer and pre-tokenizer.
  bool nfc_ = false;
  bool add_prefix_space_ = false;
  bool use_regex_ = true;
  // Shared by copies (it holds results of the same model, and one encode at a time uses it).
  std::shared_ptr<SharedWordCache> shared_cache_;
};

}  // namespace tokenformer

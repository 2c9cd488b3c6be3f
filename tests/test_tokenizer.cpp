// The GPT-NeoX-20B BPE tokenizer against Hugging Face: the ids of every reference case
// (tests/reference/tokenizer/cases.json, made by make_reference.mjs with Hugging Face's Rust
// tokenizers), decoding, the whole fortunes corpus by digest, the file's variants and formats,
// hostile files, bad ids, random bytes and threads.
//
// The tokenizer file is not in the repository: it is read from TOKENFORMER_NEOX_TOKENIZER (the
// environment variable, else the CMake cache variable, by default ../shared/data beside the
// repository). Tests that need it, or the fortunes files, are skipped when they are missing.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tokenformer/io/json.hpp"
#include "tokenformer/tokenizer/bpe_tokenizer.hpp"

using namespace tokenformer;

namespace {

// Catch2 2 has no SKIP: a test whose data is missing says why and exits with 77, which CTest reports
// as skipped (SKIP_RETURN_CODE 77 in tests/CMakeLists.txt). Run by hand, the program stops there.
[[noreturn]] void skip_test(const std::string& why) {
  std::cout << "SKIPPED: " << why << std::endl;
  std::exit(77);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}
bool file_exists(const std::string& path) { return static_cast<bool>(std::ifstream(path)); }

std::string neox_path() {
  if (const char* path = std::getenv("TOKENFORMER_NEOX_TOKENIZER"); path && *path) return path;
  return TOKENFORMER_NEOX_TOKENIZER;
}
std::string fortunes_dir() {
  if (const char* path = std::getenv("TOKENFORMER_FORTUNES_DIR"); path && *path) return path;
  return "/usr/share/games/fortunes";
}

/// The reference cases (committed, always present).
const io::Json& reference() {
  static const io::Json json = [] {
    const std::string path = std::string(TOKENFORMER_TEST_DATA_DIR) + "/../tokenizer/cases.json";
    const std::string text = read_file(path);
    if (text.empty()) throw std::runtime_error("cannot read " + path);
    return io::parse_json(text, path);
  }();
  return json;
}

/// The GPT-NeoX-20B tokenizer.json, its text and parsed (loaded once); skips the test when absent.
const std::string& neox_text() {
  static const std::string text = read_file(neox_path());
  if (text.empty())
    skip_test("the GPT-NeoX-20B tokenizer.json is not at " + neox_path() +
              " (set TOKENFORMER_NEOX_TOKENIZER to its path)");
  return text;
}
const io::Json& neox_json() {
  static const io::Json json = io::parse_json(neox_text(), neox_path());
  return json;
}
const BpeTokenizer& neox() {
  static const BpeTokenizer tokenizer = BpeTokenizer::from_json(neox_text(), neox_path());
  return tokenizer;
}

/// `root` with its member at a dotted `path` replaced by change(the old member, or nullptr).
io::Json with_member(const io::Json& root, const std::string& path,
                     const std::function<io::Json(const io::Json*)>& change) {
  const std::size_t dot = path.find('.');
  const std::string key = path.substr(0, dot);
  io::Json::Object object = root.as_object();
  const auto it = object.find(key);
  const io::Json* old = it == object.end() ? nullptr : &it->second;
  io::Json value = dot == std::string::npos ? change(old) : with_member(*old, path.substr(dot + 1), change);
  object[key] = std::move(value);
  return io::Json(std::move(object));
}
io::Json with_value(const io::Json& root, const std::string& path, io::Json value) {
  return with_member(root, path, [&](const io::Json*) { return value; });
}

/// The tokenizer of a case: the file, or a variant of it or of the tiny tokenizer (see
/// make_reference.mjs), built once per variant.
const BpeTokenizer& tokenizer_for(const std::string& variant) {
  static std::map<std::string, std::unique_ptr<BpeTokenizer>> built;
  if (variant.empty()) return neox();
  auto& slot = built[variant];
  if (!slot) {
    const io::Json& spec = *reference().find("variants")->find(variant);
    io::Json json = spec.find("base")->as_string() == "tiny" ? *reference().find("tiny_tokenizer") : neox_json();
    for (const io::Json& change : spec.find("changes")->as_array()) {
      if (const io::Json* path = change.find("append")) {
        json = with_member(json, path->as_string(), [&](const io::Json* old) {
          io::Json::Array array = old->as_array();
          for (const io::Json& value : change.find("values")->as_array()) array.push_back(value);
          return io::Json(std::move(array));
        });
      } else {
        json = with_value(json, change.find("set")->as_string(), *change.find("value"));
      }
    }
    slot = std::make_unique<BpeTokenizer>(BpeTokenizer::from_json(json.dump(), "variant " + variant));
  }
  return *slot;
}

std::vector<std::int32_t> ids_of(const io::Json& array) {
  std::vector<std::int32_t> ids;
  for (const io::Json& id : array.as_array()) ids.push_back(static_cast<std::int32_t>(id.as_integer()));
  return ids;
}
std::string case_text(const io::Json& item) {
  if (const io::Json* text = item.find("text")) return text->as_string();
  const std::string& hex = item.find("bytes_hex")->as_string();
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}
std::string variant_of(const io::Json& item) {
  const io::Json* variant = item.find("tokenizer");
  return variant ? variant->as_string() : std::string();
}

/// FNV-1a, 64 bits.
std::uint64_t fnv1a64(const void* data, std::size_t size, std::uint64_t hash = 0xcbf29ce484222325ull) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ull;
  return hash;
}
/// The digest of make_reference.mjs: FNV-1a over the ids as little-endian int32.
std::uint64_t ids_digest(const std::vector<std::int32_t>& ids) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const std::int32_t id : ids) {
    const auto u = static_cast<std::uint32_t>(id);
    const unsigned char bytes[4] = {static_cast<unsigned char>(u), static_cast<unsigned char>(u >> 8),
                                    static_cast<unsigned char>(u >> 16), static_cast<unsigned char>(u >> 24)};
    hash = fnv1a64(bytes, 4, hash);
  }
  return hash;
}
std::string hex64(std::uint64_t x) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(x));
  return text;
}

/// A small valid tokenizer.json for the error tests: bytes a, b, Ġ and one merge.
const char* const small_tokenizer = R"({
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": true, "normalized": false,
                    "single_word": false, "lstrip": false, "rstrip": false}],
  "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true},
  "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true},
  "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false,
            "vocab": {"<|endoftext|>": 0, "a": 1, "b": 2, "\u0120": 3, "ab": 4},
            "merges": ["a b"]}
})";

}  // namespace

// ================================================================================================
// Against Hugging Face
// ================================================================================================

TEST_CASE("every reference case has Hugging Face's ids", "[tokenizer][reference]") {
  neox();  // skips when the file is missing
  std::size_t checked = 0;
  for (const io::Json& item : reference().find("cases")->as_array()) {
    const std::string text = case_text(item);
    INFO("case \"" << item.find("name")->as_string() << "\"");
    CHECK(tokenizer_for(variant_of(item)).encode(text) == ids_of(*item.find("ids")));
    ++checked;
  }
  CHECK(checked >= 390);
}

TEST_CASE("decode of the reference ids gives Hugging Face's text", "[tokenizer][reference]") {
  for (const io::Json& item : reference().find("decode_cases")->as_array()) {
    const auto ids = ids_of(*item.find("ids"));
    const bool skip = item.find("skip_special")->as_bool();
    INFO("ids " << item.find("ids")->dump() << (skip ? " skipping special tokens" : ""));
    CHECK(neox().decode(ids, skip) == item.find("text")->as_string());
  }
}

TEST_CASE("decode(encode(text)) is the normalized text", "[tokenizer][reference]") {
  for (const io::Json& item : reference().find("cases")->as_array()) {
    if (!variant_of(item).empty()) continue;  // the file's own cases (no lstrip/rstrip tokens)
    const std::string text = case_text(item);
    INFO("case \"" << item.find("name")->as_string() << "\"");
    const auto ids = neox().encode(text);
    CHECK(neox().decode(ids) == neox().normalize(text));
    // The bytes of consecutive id ranges concatenate (streaming).
    const std::size_t half = ids.size() / 2;
    const std::vector<std::int32_t> first(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(half));
    const std::vector<std::int32_t> second(ids.begin() + static_cast<std::ptrdiff_t>(half), ids.end());
    CHECK(neox().decode_bytes(first) + neox().decode_bytes(second) == neox().decode_bytes(ids));
  }
  // NFC: a decomposed é comes back composed.
  CHECK(neox().decode(neox().encode("cafe\xCC\x81")) == "caf\xC3\xA9");
}

TEST_CASE("the fortunes corpus encodes to Hugging Face's ids, file by file", "[tokenizer][reference][corpus]") {
  neox();
  const auto& corpus = reference().find("corpus")->as_array();
  REQUIRE(corpus.size() >= 40);
  std::size_t total_ids = 0, total_bytes = 0;
  for (const io::Json& entry : corpus) {
    const std::string file = entry.find("file")->as_string();
    const std::string path = fortunes_dir() + "/" + file;
    if (!file_exists(path))
      skip_test(path + " is missing (Debian packages fortunes and fortunes-min, or set TOKENFORMER_FORTUNES_DIR)");
    const std::string text = read_file(path);
    if (hex64(fnv1a64(text.data(), text.size())) != entry.find("file_fnv1a64")->as_string())
      skip_test(path + " differs from the file whose digest cases.json holds (another version of fortunes?)");
    INFO("fortunes file " << file);
    const auto ids = neox().encode(text);
    CHECK(static_cast<double>(ids.size()) == entry.find("count")->as_number());
    CHECK(hex64(ids_digest(ids)) == entry.find("ids_fnv1a64")->as_string());
    CHECK(neox().decode(ids) == neox().normalize(text));
    total_ids += ids.size();
    total_bytes += text.size();
  }
  WARN("fortunes corpus: " << corpus.size() << " files, " << total_bytes << " bytes, " << total_ids << " ids");
}

// ================================================================================================
// The file's formats, the API, threads
// ================================================================================================

TEST_CASE("merges as [a, b] pairs give the same ids as \"a b\" strings", "[tokenizer]") {
  const io::Json pairs = with_member(neox_json(), "model.merges", [](const io::Json* old) {
    io::Json::Array array;
    for (const io::Json& merge : old->as_array()) {
      const std::string& line = merge.as_string();
      const std::size_t space = line.find(' ');
      array.push_back(io::Json(io::Json::Array{line.substr(0, space), line.substr(space + 1)}));
    }
    return io::Json(std::move(array));
  });
  const BpeTokenizer tokenizer = BpeTokenizer::from_json(pairs.dump());
  for (const io::Json& item : reference().find("cases")->as_array()) {
    if (!variant_of(item).empty()) continue;
    INFO("case \"" << item.find("name")->as_string() << "\"");
    CHECK(tokenizer.encode(case_text(item)) == ids_of(*item.find("ids")));
  }
}

TEST_CASE("the tokenizer's vocabulary, special tokens and ids", "[tokenizer]") {
  const BpeTokenizer& t = neox();
  CHECK(t.vocab_size() == 50277);
  CHECK(t.eos_id() == 0);
  CHECK(t.token_id("<|endoftext|>") == 0);
  CHECK(t.token_id("<|padding|>") == 1);
  CHECK(t.token_id("\xC4\xA0the") == 253);  // "Ġthe": the vocabulary spells a space as U+0120
  CHECK(t.token_id(std::string(24, ' ')) == 50254);
  CHECK(t.token_id("no such token") == -1);
  CHECK(t.id_to_token(0) == "<|endoftext|>");
  CHECK(t.id_to_token(50276) == "  ");
  CHECK(t.is_special(0));
  CHECK(t.is_special(1));
  CHECK_FALSE(t.is_special(50254));
  CHECK_FALSE(t.is_special(253));
  CHECK(t.encode(" the") == std::vector<std::int32_t>{253});
  CHECK(t.encode("").empty());
  CHECK(t.decode({}).empty());
  CHECK(t.decode({253, 0, 253}, /*skip_special=*/true) == " the the");

  // Copies share nothing they could disagree on.
  BpeTokenizer copy = t;
  CHECK(copy.encode("copied tokenizers agree") == t.encode("copied tokenizers agree"));
  BpeTokenizer moved = std::move(copy);
  CHECK(moved.encode("moved too") == t.encode("moved too"));

  // encode_append appends.
  std::vector<std::int32_t> ids{7};
  t.encode_append(" the", ids);
  CHECK(ids == std::vector<std::int32_t>{7, 253});
}

TEST_CASE("decode refuses ids outside the vocabulary", "[tokenizer][errors]") {
  const BpeTokenizer& t = neox();
  CHECK_THROWS_AS(t.decode({50277}), argument_error);
  CHECK_THROWS_WITH(t.decode({1, -1}), Catch::Contains("id -1 is not in the vocabulary"));
  CHECK_THROWS_AS(t.decode_bytes({1 << 30}), argument_error);
  CHECK_THROWS_AS(t.id_to_token(-5), argument_error);
  CHECK_THROWS_AS(t.is_special(50277), argument_error);
}

TEST_CASE("random bytes encode without error and decode to their normalized text", "[tokenizer]") {
  const BpeTokenizer& t = neox();
  std::mt19937 rng(12345);
  // Fragments that exercise every path: ASCII classes, contractions, runs of spaces, special tokens,
  // multi-byte characters, combining marks, and bytes that are not UTF-8.
  const std::vector<std::string> fragments = {"a",
                                              "Z",
                                              "7",
                                              " ",
                                              "  ",
                                              "\t",
                                              "\n",
                                              "\r\n",
                                              "'",
                                              "'s",
                                              "'ll",
                                              "!",
                                              "...",
                                              "<|endoftext|>",
                                              "<|",
                                              "|>",
                                              "\xC3\xA9",
                                              "e\xCC\x81",
                                              "\xCC\x81",
                                              "\xE4\xB8\xAD",
                                              "\xF0\x9F\x98\x80",
                                              "\xE2\x80\x8D",
                                              "\xC2\xA0",
                                              "\xC2\x85",
                                              "\xEF\xBB\xBF",
                                              "\xE3\x80\x80",
                                              "\xFF",
                                              "\xC3",
                                              "\xE2\x82",
                                              "\x80",
                                              "\xED\xA0\x80",
                                              "\xF4\x90"};
  std::uniform_int_distribution<std::size_t> pick(0, fragments.size() - 1), length(0, 40);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text;
    for (std::size_t k = length(rng); k > 0; --k) text += fragments[pick(rng)];
    INFO("trial " << trial);
    const auto ids = t.encode(text);
    CHECK(t.decode(ids) == t.normalize(text));
  }
}

TEST_CASE("encode gives the same ids on several threads at once", "[tokenizer][threads]") {
  const BpeTokenizer& t = neox();
  std::vector<std::string> texts;
  for (const io::Json& item : reference().find("cases")->as_array())
    if (variant_of(item).empty()) texts.push_back(case_text(item));
  std::vector<std::vector<std::int32_t>> expected;
  for (const auto& text : texts) expected.push_back(t.encode(text));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (int round = 0; round < 5; ++round)
        for (std::size_t i = 0; i < texts.size(); ++i)
          if (t.encode(texts[(i + static_cast<std::size_t>(w) * 31) % texts.size()]) !=
              expected[(i + static_cast<std::size_t>(w) * 31) % texts.size()])
            ++mismatches[static_cast<std::size_t>(w)];
    });
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

// ================================================================================================
// Hostile and unsupported files
// ================================================================================================

TEST_CASE("a small tokenizer.json of its own loads and encodes", "[tokenizer][errors]") {
  const BpeTokenizer t = BpeTokenizer::from_json(small_tokenizer);
  CHECK(t.vocab_size() == 5);
  CHECK(t.encode("ab ab<|endoftext|>") == std::vector<std::int32_t>{4, 3, 4, 0});
  CHECK(t.encode("abc") == std::vector<std::int32_t>{4});  // no token for 'c': dropped, as Hugging Face does
  CHECK(t.decode({4, 3, 1, 0}) == "ab a<|endoftext|>");
}

TEST_CASE("hostile or unsupported tokenizer files are refused with a file_error that says why", "[tokenizer][errors]") {
  const io::Json base = io::parse_json(small_tokenizer);
  const auto refused = [&](const io::Json& json, const std::string& message) {
    INFO("expected: " << message);
    CHECK_THROWS_AS(BpeTokenizer::from_json(json.dump(), "bad.json"), file_error);
    CHECK_THROWS_WITH(BpeTokenizer::from_json(json.dump(), "bad.json"),
                      Catch::Contains(message) && Catch::Contains("bad.json"));
  };
  using Array = io::Json::Array;
  using Object = io::Json::Object;
  refused(io::Json(Array{}), "the tokenizer file must be an object");
  refused(io::Json(Object{}), "the pre_tokenizer must be ByteLevel");
  refused(with_value(base, "model", nullptr), "model must be an object");
  refused(with_value(base, "model.vocab", Array{}), "model.vocab must be an object");
  refused(with_value(base, "model.vocab", Object{}), "model.vocab must have between 1 and 2^30 entries");
  refused(with_value(base, "model.vocab.a", "one"), "model.vocab[\"a\"] must be an id in [0, 5)");
  refused(with_value(base, "model.vocab.a", -1), "model.vocab[\"a\"] must be an id in [0, 5)");
  refused(with_value(base, "model.vocab.a", 2.5), "model.vocab[\"a\"] must be an id in [0, 5)");
  refused(with_value(base, "model.vocab.a", 1e12), "model.vocab[\"a\"] must be an id in [0, 5)");
  refused(with_value(base, "model.vocab.a", 2), "model.vocab gives id 2 to both");
  refused(with_value(base, "model.merges", Array{"a c"}), "names \"c\", which is not in model.vocab");
  refused(with_value(base, "model.merges", Array{"b a"}), "names \"ba\", which is not in model.vocab");
  refused(with_value(base, "model.merges", Array{"a b c"}), "must be two tokens separated by one space");
  refused(with_value(base, "model.merges", Array{"ab"}), "must be two tokens separated by one space");
  refused(with_value(base, "model.merges", Array{Array{"a"}}), "must be a pair of tokens");
  refused(with_value(base, "model.merges", Array{Array{"a", 1}}), "model.merges[0][1] must be a string");
  refused(with_value(base, "model.merges", Array{3}), "model.merges[0] (a string or a pair of strings)");
  refused(with_value(base, "model.merges", "a b"), "model.merges must be an array");
  refused(with_value(base, "model.type", "WordPiece"), "unsupported model \"WordPiece\"");
  refused(with_value(base, "model.dropout", 0.1), "BPE dropout is not supported");
  refused(with_value(base, "model.end_of_word_suffix", "</w>"), "model.end_of_word_suffix is not supported");
  refused(with_value(base, "model.unk_token", "<unk>"), "model.unk_token \"<unk>\" is not in model.vocab");
  refused(with_value(base, "model.fuse_unk", "yes"), "model.fuse_unk must be true or false");
  refused(with_value(base, "normalizer", Object{{"type", "NFKC"}}), "unsupported normalizer \"NFKC\"");
  refused(with_value(base, "normalizer",
                     Object{{"type", "Sequence"}, {"normalizers", Array{Object{{"type", "Lowercase"}}}}}),
          "unsupported normalizer \"Lowercase\" in the Sequence");
  refused(with_value(base, "normalizer", Object{}), "normalizer has no \"type\"");
  refused(with_value(base, "normalizer", Object{{"type", 3}}), "normalizer.type must be a string");
  refused(with_value(base, "pre_tokenizer", Object{{"type", "Metaspace"}}),
          "the pre_tokenizer must be ByteLevel, found \"Metaspace\"");
  refused(with_value(base, "pre_tokenizer", nullptr), "the pre_tokenizer must be ByteLevel, found none");
  refused(with_value(base, "pre_tokenizer", Object{{"type", "ByteLevel"}}),
          "pre_tokenizer has no \"add_prefix_space\"");
  refused(with_value(base, "pre_tokenizer.use_regex", 1), "pre_tokenizer.use_regex must be true or false");
  refused(with_value(base, "decoder", nullptr), "the decoder must be ByteLevel, found none");
  refused(with_value(base, "decoder", Object{{"type", "WordPiece"}}),
          "the decoder must be ByteLevel, found \"WordPiece\"");
  refused(with_value(base, "truncation", Object{{"max_length", 8}}), "truncation is not supported");
  refused(with_value(base, "padding", Object{}), "padding is not supported");
  refused(with_value(base, "added_tokens", Object{}), "added_tokens must be an array");
  refused(with_value(base, "added_tokens", Array{3}), "added_tokens[0] must be an object");
  refused(with_value(base, "added_tokens", Array{Object{{"id", 5}}}), "added_tokens[0] needs \"id\" and \"content\"");
  refused(with_value(base, "added_tokens", Array{Object{{"id", 5}, {"content", 5}}}),
          "added_tokens[0].content must be a string");
  refused(with_value(base, "added_tokens", Array{Object{{"id", 9}, {"content", "x"}}}),
          "added_tokens[0].id must be an integer in [0, 5]");
  refused(with_value(base, "added_tokens", Array{Object{{"id", 1}, {"content", "x"}}}),
          "which model.vocab gives to \"a\"");
  refused(with_value(base, "added_tokens", Array{Object{{"id", 5}, {"content", "a"}}}),
          "has id 5 but model.vocab gives it 1");
  refused(with_value(base, "added_tokens", Array{Object{{"id", 5}, {"content", "x"}, {"lstrip", "no"}}}),
          "added_tokens[0].lstrip must be true or false");
  refused(
      with_value(base, "added_tokens", Array{Object{{"id", 5}, {"content", "x"}}, Object{{"id", 6}, {"content", "x"}}}),
      "the content \"x\" appears twice");
  refused(
      with_value(base, "added_tokens", Array{Object{{"id", 5}, {"content", "x"}}, Object{{"id", 5}, {"content", "y"}}}),
      "the id 5 appears twice");

  // Malformed JSON and missing files.
  CHECK_THROWS_WITH(BpeTokenizer::from_json("{\"model\": ", "cut.json"), Catch::Contains("cut.json: malformed JSON"));
  CHECK_THROWS_AS(BpeTokenizer::from_file("/nonexistent/tokenizer.json"), file_error);
  CHECK_THROWS_WITH(BpeTokenizer::from_file("/nonexistent/tokenizer.json"),
                    Catch::Contains("cannot open tokenizer file /nonexistent/tokenizer.json"));
}

TEST_CASE("every truncation of a tokenizer.json is refused or loads, never crashes", "[tokenizer][errors]") {
  const std::string text = small_tokenizer;
  for (std::size_t length = 0; length < text.size(); ++length) {
    try {
      BpeTokenizer::from_json(text.substr(0, length));
    } catch (const file_error&) {
    }
  }
  SUCCEED();
}

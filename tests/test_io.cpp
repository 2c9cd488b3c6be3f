// File input and output: the strict JSON reader and writer, safetensors reading (F64/F32/F16/BF16)
// and writing, hostile safetensors files, atomic replacement of files (including a writer killed
// mid-write), official config files, and checkpoints of the golden models.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <locale>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.hpp"
#include "tokenformer/io/checkpoint.hpp"

using namespace tokenformer;
using Catch::Contains;

namespace {

// ---- helpers ----------------------------------------------------------------------------------

/// A fresh directory under the system temp directory (unique name from mkdtemp), removed with its
/// contents when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tokenformer_test_io_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  /// Names of the entries in the directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("test cannot write " + path);
}

/// n as 8 little-endian bytes.
std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

/// A safetensors file built by hand: header length, header text, data bytes.
std::string safetensors_bytes(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

/// 16-bit values as little-endian bytes.
std::string le16s(const std::vector<std::uint16_t>& values) {
  std::string s;
  for (auto v : values) {
    s += static_cast<char>(v & 0xFF);
    s += static_cast<char>(v >> 8);
  }
  return s;
}

/// The message of the E that f() throws, or "<nothing thrown>". Other exception types propagate
/// (and fail the test).
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<nothing thrown>";
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string json_error(const std::string& text) {
  return message_of<file_error>([&] { io::parse_json(text, "test.json"); });
}

std::uint32_t bits_of(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}
std::uint64_t bits_of(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, 8);
  return b;
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Replaces the global locale for the lifetime of the guard.
class GlobalLocale {
 public:
  explicit GlobalLocale(const std::locale& l) : old_(std::locale::global(l)) {}
  ~GlobalLocale() { std::locale::global(old_); }
  GlobalLocale(const GlobalLocale&) = delete;
  GlobalLocale& operator=(const GlobalLocale&) = delete;

 private:
  std::locale old_;
};
/// A German-style numeric punctuation: "1.234.567,5".
struct GroupingPunct : std::numpunct<char> {
  char do_decimal_point() const override { return ','; }
  char do_thousands_sep() const override { return '.'; }
  std::string do_grouping() const override { return "\3"; }
};

const std::string& golden_dir() {
  static const std::string dir = test_util::data_dir();
  return dir;
}

/// The golden l2_norm_gelu config with one key replaced (or removed when `value` is null).
std::string golden_config_with(const std::string& key, const io::Json* value) {
  io::Json::Object o = io::parse_json(io::read_text_file(golden_dir() + "/l2_norm_gelu_f32/config.json")).as_object();
  if (value == nullptr)
    REQUIRE(o.erase(key) == 1);
  else
    o[key] = *value;
  return io::Json(o).dump();
}
std::string golden_config_with(const std::string& key, const io::Json& value) {
  return golden_config_with(key, &value);
}
std::string golden_config_without(const std::string& key) { return golden_config_with(key, nullptr); }

std::string config_error_of(const std::string& text, index_t vocab_rows = 0) {
  return message_of<config_error>([&] { io::parse_config(text, "cfg.json", vocab_rows); });
}

using FloatModel = LanguageModel<presets::Dynamic<float>>;

/// The tensor of what for_each_parameter visits: a Parameter's value, or the tensor itself.
template <class P, class = void>
struct has_value_member : std::false_type {};
template <class P>
struct has_value_member<P, std::void_t<decltype(std::declval<P&>().value)>> : std::true_type {};
template <class P>
auto& value_of(P& p) {
  if constexpr (has_value_member<P>::value)
    return p.value;
  else
    return p;
}

/// Every parameter of a model, flattened in visiting order, with its name.
template <class Model>
std::vector<std::pair<std::string, std::vector<typename Model::scalar>>> parameters_of(Model& model) {
  std::vector<std::pair<std::string, std::vector<typename Model::scalar>>> out;
  model.for_each_parameter([&](const std::string& name, auto& parameter) {
    const auto& t = value_of(parameter);
    out.emplace_back(name, std::vector<typename Model::scalar>(t.data(), t.data() + t.size()));
  });
  return out;
}

/// Logits of a fixed batch of 2 sequences of 8 tokens (ids < 64, inside every golden vocabulary).
template <class Model>
std::vector<typename Model::scalar> logits_of(Model& model) {
  const std::vector<std::int32_t> tokens{1, 7, 3, 62, 0, 15, 9, 33, 4, 4, 50, 2, 8, 61, 19, 27};
  const auto logits = model.forward(tokens, 2, 8);
  return std::vector<typename Model::scalar>(logits.data(), logits.data() + logits.size());
}

/// Waits for `child` and returns its wait status.
int wait_for(pid_t child) {
  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

}  // namespace

// ================================================================================================
// JSON
// ================================================================================================

TEST_CASE("JSON parses every kind of value", "[io][json]") {
  const io::Json v = io::parse_json(
      " {\"null\": null, \"t\": true, \"f\": false, \"int\": 12, \"neg\": -3.5, \"exp\": 1e3, \"Exp\": 2.5E-2,"
      " \"zero\": -0, \"tiny\": 5e-324, \"s\": \"text\", \"empty\": \"\", \"arr\": [1, [], {}, \"x\"], \"obj\": "
      "{\"k\": [null]}}\n\t");
  REQUIRE(v.is_object());
  CHECK(v.as_object().size() == 13);
  CHECK(v.find("null")->is_null());
  CHECK(v.find("t")->as_bool() == true);
  CHECK(v.find("f")->as_bool() == false);
  CHECK(v.find("int")->as_number() == 12.0);
  CHECK(v.find("int")->as_integer() == 12);
  CHECK(v.find("neg")->as_number() == -3.5);
  CHECK(v.find("exp")->as_number() == 1000.0);
  CHECK(v.find("Exp")->as_number() == 0.025);
  CHECK(v.find("zero")->as_number() == 0.0);
  CHECK(std::signbit(v.find("zero")->as_number()));
  CHECK(v.find("tiny")->as_number() == std::numeric_limits<double>::denorm_min());
  CHECK(v.find("s")->as_string() == "text");
  CHECK(v.find("empty")->as_string().empty());
  const auto& arr = v.find("arr")->as_array();
  REQUIRE(arr.size() == 4);
  CHECK(arr[0].kind() == io::Json::Kind::number);
  CHECK(arr[1].is_array());
  CHECK(arr[1].as_array().empty());
  CHECK(arr[2].is_object());
  CHECK(arr[3].as_string() == "x");
  CHECK(v.find("obj")->find("k")->as_array()[0].is_null());
  CHECK(v.find("absent") == nullptr);
  CHECK(arr[0].find("k") == nullptr);  // not an object

  // Top-level scalars are documents too.
  CHECK(io::parse_json("42").as_number() == 42.0);
  CHECK(io::parse_json("\"s\"").as_string() == "s");
  CHECK(io::parse_json("null").is_null());
  CHECK(io::parse_json("1.7976931348623157e308").as_number() == std::numeric_limits<double>::max());
  CHECK(io::parse_json("1e-400").as_number() == 0.0);  // underflow rounds to zero, not an error

  // Keys are kept sorted.
  const io::Json keys = io::parse_json("{\"b\": 1, \"a\": 2, \"c\": 3}");
  std::string order;
  for (const auto& kv : keys.as_object()) order += kv.first;
  CHECK(order == "abc");
}

TEST_CASE("JSON accessors reject the wrong kind with file_error naming the value", "[io][json]") {
  const io::Json v = io::parse_json("{\"n\": 2.5, \"s\": \"x\", \"big\": 1e300}");
  CHECK_THROWS_WITH(v.find("n")->as_string("n"), "file error: n must be a string");
  CHECK_THROWS_WITH(v.find("s")->as_number("s"), "file error: s must be a number");
  CHECK_THROWS_WITH(v.find("s")->as_bool("s"), "file error: s must be true or false");
  CHECK_THROWS_WITH(v.find("s")->as_array("s"), "file error: s must be an array");
  CHECK_THROWS_WITH(v.as_array("root"), "file error: root must be an array");
  CHECK_THROWS_WITH(v.find("s")->as_object("s"), "file error: s must be an object");
  CHECK_THROWS_WITH(v.find("n")->as_integer("n", 0, 10), "file error: n must be an integer in [0, 10], got 2.5");
  CHECK_THROWS_WITH(v.find("big")->as_integer("big"),
                    Contains("big must be an integer in [") && Contains("got 1.0000000000000001e+300"));
  CHECK_THROWS_AS(io::parse_json("-1").as_integer("x", 0, 10), file_error);
  CHECK_THROWS_AS(io::parse_json("11").as_integer("x", 0, 10), file_error);
  CHECK(io::parse_json("10").as_integer("x", 0, 10) == 10);
}

TEST_CASE("JSON string escapes, \\u escapes and surrogate pairs decode to UTF-8", "[io][json]") {
  CHECK(io::parse_json(R"("a\"b\\c\/d\be\ff\ng\rh\ti")").as_string() == "a\"b\\c/d\be\ff\ng\rh\ti");
  CHECK(io::parse_json(R"("\n")").as_string() == "\n");
  CHECK(io::parse_json(R"("\u0041\u00e9\u00E9")").as_string() == "A\xC3\xA9\xC3\xA9");  // é = C3 A9
  CHECK(io::parse_json(R"("\u20ac")").as_string() == "\xE2\x82\xAC");                   // € = E2 82 AC
  CHECK(io::parse_json(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");         // U+1F600
  CHECK(io::parse_json(R"("\uDBFF\uDFFF")").as_string() == "\xF4\x8F\xBF\xBF");         // U+10FFFF
  CHECK(io::parse_json(R"("\u0000")").as_string() == std::string(1, '\0'));
  CHECK(io::parse_json(R"("\u007f\u0080\u07ff\u0800\uffff")").as_string() ==
        "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF");
  CHECK(io::parse_json("\"h\xC3\xA9llo\"").as_string() == "h\xC3\xA9llo");  // raw UTF-8 passes through
  CHECK(io::parse_json(R"({"\u006b": 1})").find("k") != nullptr);           // escapes in keys
}

TEST_CASE("malformed JSON throws file_error with the source and byte offset", "[io][json]") {
  struct Case {
    std::string text;
    std::string expected;  // what the message says; a leading number is the byte offset
  };
  const std::vector<Case> cases{
      {"", "0: expected a value"},
      {"   ", "3: expected a value"},
      // trailing text
      {"{} x", "3: unexpected text after the JSON value"},
      {"1 2", "2: unexpected text after the JSON value"},
      {"[1]]", "3: unexpected text after the JSON value"},
      {std::string("1\0", 2), "1: unexpected text after the JSON value"},
      // duplicate keys
      {R"({"a": 1, "a": 2})", "duplicate key \"a\""},
      {R"({"x": {"k": 1, "j": 2, "k": 3}})", "duplicate key \"k\""},
      // strings
      {R"("abc)", "4: unterminated string"},
      {R"(["abc)", "5: unterminated string"},
      {R"("abc\)", "unterminated string"},
      {"\"a\nb\"", "control character in string"},
      {"\"a\tb\"", "control character in string"},
      {std::string("\"a\0b\"", 5), "control character in string"},
      {"\"\x1F\"", "control character in string"},
      {R"("\q")", "bad escape"},
      {R"("\u12G4")", "bad \\u escape"},
      {R"("\u12")", "bad \\u escape"},
      // lone or broken surrogates
      {R"("\ud800")", "lone high surrogate"},
      {R"("\ud800x")", "lone high surrogate"},
      {R"("\ud800\n")", "lone high surrogate"},
      {R"("\ud800\u0041")", "bad surrogate pair"},
      {R"("\ud800\ud800")", "bad surrogate pair"},
      {R"("\udc00")", "lone low surrogate"},
      {R"("\udfff\ud800")", "lone low surrogate"},
      // numbers
      {"01", "1: unexpected text after the JSON value"},
      {"-01", "2: unexpected text after the JSON value"},
      {"1.", "2: expected a digit after '.'"},
      {"1.e5", "2: expected a digit after '.'"},
      {"-", "1: expected a value"},
      {"--1", "1: expected a value"},
      {"+1", "0: expected a value"},
      {".5", "0: expected a value"},
      {"1e", "2: expected a digit in the exponent"},
      {"1e+", "3: expected a digit in the exponent"},
      {"1e999", "5: number out of range"},
      {"-1e999", "6: number out of range"},
      {"[1e400]", "6: number out of range"},
      {"NaN", "0: expected a value"},
      {"Infinity", "0: expected a value"},
      {"0x10", "1: unexpected text after the JSON value"},
      // words
      {"tru", "3: expected 'true'"},
      {"nulL", "3: expected 'null'"},
      {"fals", "4: expected 'false'"},
      // structure
      {"[", "1: expected a value"},
      {"[1,]", "3: expected a value"},
      {"[1 2]", "3: expected ']'"},
      {"{", "1: expected a string key"},
      {"{1: 2}", "1: expected a string key"},
      {R"({"a": 1,})", "8: expected a string key"},
      {R"({"a" 1})", "5: expected ':'"},
      {R"({"a": 1 "b": 2})", "8: expected '}'"},
      {R"({'a': 1})", "1: expected a string key"},
  };
  for (const auto& c : cases) {
    INFO("input: " << c.text);
    const std::string message = json_error(c.text);
    CHECK_THAT(message, Contains("file error: test.json: malformed JSON at byte "));
    const bool has_offset = c.expected[0] >= '0' && c.expected[0] <= '9';
    CHECK_THAT(message, Contains(has_offset ? "at byte " + c.expected : ": " + c.expected));
  }
  // Without a source the message says "JSON".
  CHECK_THROWS_WITH(io::parse_json("[1,]"), "file error: JSON: malformed JSON at byte 3: expected a value");
}

TEST_CASE("JSON nesting deeper than 64 levels is rejected without exhausting the stack", "[io][json]") {
  const auto arrays = [](int n, const std::string& inner) {
    return std::string(static_cast<std::size_t>(n), '[') + inner + std::string(static_cast<std::size_t>(n), ']');
  };
  const auto objects = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += "{\"k\":";
    s += "1";
    return s + std::string(static_cast<std::size_t>(n), '}');
  };
  // 64 levels are fine, whatever the innermost value.
  CHECK_NOTHROW(io::parse_json(arrays(64, "")));
  CHECK_NOTHROW(io::parse_json(arrays(64, "1")));
  CHECK_NOTHROW(io::parse_json(arrays(64, "\"s\"")));
  CHECK_NOTHROW(io::parse_json(objects(64)));
  const io::Json deep = io::parse_json(arrays(64, "7"));
  const io::Json* p = &deep;
  for (int i = 0; i < 64; ++i) p = &p->as_array()[0];
  CHECK(p->as_number() == 7.0);
  // The 65th level is rejected at its opening bracket, empty or not.
  CHECK_THAT(json_error(arrays(65, "")), Contains("malformed JSON at byte 64: nesting deeper than 64 levels"));
  CHECK_THAT(json_error(arrays(65, "1")), Contains("malformed JSON at byte 64: nesting deeper than 64 levels"));
  CHECK_THAT(json_error(objects(65)), Contains("nesting deeper than 64 levels"));
  CHECK_THAT(json_error(std::string(100000, '[')), Contains("nesting deeper than 64 levels"));
  CHECK_THAT(json_error(arrays(200000, "")), Contains("nesting deeper than 64 levels"));
  std::string mixed;
  for (int i = 0; i < 40; ++i) mixed += "[{\"a\":";
  CHECK_THAT(json_error(mixed), Contains("nesting deeper than 64 levels"));
}

TEST_CASE("JSON dump() is compact and parses back to the same value", "[io][json]") {
  CHECK(io::Json().dump() == "null");
  CHECK(io::Json(true).dump() == "true");
  CHECK(io::Json(false).dump() == "false");
  CHECK(io::Json(42).dump() == "42");
  CHECK(io::Json(-7L).dump() == "-7");
  CHECK(io::Json(0.5).dump() == "0.5");
  CHECK(io::Json(0.1).dump() == "0.10000000000000001");
  CHECK(io::Json(1e20).dump() == "1e+20");
  CHECK(io::Json(123456789012345.0).dump() == "123456789012345");
  CHECK(io::Json("a\"b\\c\nd\x01").dump() == R"("a\"b\\c\u000ad\u0001")");
  CHECK(io::Json("caf\xC3\xA9").dump() == "\"caf\xC3\xA9\"");
  CHECK(io::Json(io::Json::Array{1, "x", nullptr, io::Json::Array{}}).dump() == R"([1,"x",null,[]])");
  CHECK(io::Json(io::Json::Object{{"b", 1}, {"a", io::Json::Object{}}}).dump() == R"({"a":{},"b":1})");

  // A document with every kind round-trips: dump(parse(dump(v))) == dump(v), values exact.
  const std::string text =
      R"({"a": [1, -2.5, 0.1, 1e-300, 6.02214076e23, 3.141592653589793, -0.0, 9007199254740993],)"
      R"( "b": {"nested": [true, false, null, {}]}, "c": "tab\there \u00e9 \ud83d\ude00 \u0001 \"q\" \\"})";
  const io::Json v = io::parse_json(text);
  const std::string once = v.dump();
  const io::Json again = io::parse_json(once);
  CHECK(again.dump() == once);
  CHECK(again.find("c")->as_string() == v.find("c")->as_string());
  const auto& a = v.find("a")->as_array();
  const auto& b = again.find("a")->as_array();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i << ": " << a[i].dump());
    CHECK(bits_of(a[i].as_number()) == bits_of(b[i].as_number()));
  }
  // Random doubles of every magnitude survive dump and parse bit for bit.
  Rng rng(11);
  for (int i = 0; i < 2000; ++i) {
    const double x =
        rng.normal(0.0, 1.0) * std::pow(10.0, static_cast<double>(static_cast<int>(rng.uniform() * 600.0) - 300));
    const double y = io::parse_json(io::Json(x).dump()).as_number();
    if (bits_of(x) != bits_of(y) && !(x == 0.0 && y == 0.0)) {
      FAIL("x = " << io::Json(x).dump() << " reads back as " << io::Json(y).dump());
    }
  }
}

TEST_CASE("JSON numbers are written and read the same under any global locale", "[io][json][locale]") {
  std::string integer, fraction, config_text;
  double parsed = 0.0;
  {
    const GlobalLocale guard(std::locale(std::locale::classic(), new GroupingPunct));
    integer = io::Json(1234567).dump();
    fraction = io::Json(1234.5).dump();
    parsed = io::parse_json("[1234.5]").as_array()[0].as_number();
    ModelConfig c;
    c.num_layers = 2;
    c.hidden_size = 64;
    c.num_heads = 4;
    c.qkv_tokens = c.proj_tokens = c.ffn_tokens = 16;
    c.vocab_size = 50257;
    config_text = io::config_to_json(c);
  }
  CHECK(integer == "1234567");
  CHECK(fraction == "1234.5");
  CHECK(parsed == 1234.5);
  CHECK_THAT(config_text, Contains("\"vocab_size\": 50257") && Contains("\"rotary_emb_base\": 10000"));
}

// ================================================================================================
// safetensors
// ================================================================================================

TEST_CASE("SafetensorsWriter writes float and double tensors that read back exactly", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  std::vector<float> f = test_util::random_vector<float>(6, 1);
  f[1] = -0.0f;
  f[2] = std::numeric_limits<float>::infinity();
  f[3] = std::numeric_limits<float>::denorm_min();
  f[4] = std::numeric_limits<float>::max();
  const std::vector<double> d{1.0 / 3.0, -1e300, std::numeric_limits<double>::denorm_min(), 0.0};
  const float scalar = 2.75f;
  const std::vector<float> big = test_util::random_vector<float>(3 * 4 * 5 * 6, 2);
  Tensor<float> tensor(Shape{7, 3});
  const std::vector<float> tensor_values = test_util::random_vector<float>(21, 3);
  tensor.copy_from_host(tensor_values.data());

  io::SafetensorsWriter w;
  w.add("layer.f", Shape{2, 3}, f.data());
  w.add("layer.d", Shape{4}, d.data());
  w.add("scalar", Shape{}, &scalar);
  w.add("empty", Shape{0, 5}, static_cast<const float*>(nullptr));
  w.add("rank4", Shape{3, 4, 5, 6}, big.data());
  w.add("tensor", tensor);
  w.set_metadata("format", "pt");
  w.set_metadata("note", "caf\xC3\xA9 \"quoted\"");
  w.write(path);
  CHECK(dir.entries() == std::vector<std::string>{"t.safetensors"});

  // The header length is a multiple of 8, so the data is aligned.
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i)
    header_size = header_size << 8 | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  CHECK(header_size % 8 == 0);
  CHECK(bytes.size() == 8 + header_size + (6 + 1 + 0 + 360 + 21) * 4 + 4 * 8);

  io::SafetensorsReader r(path);
  CHECK(r.path() == path);
  CHECK(r.tensors().size() == 6);
  CHECK(r.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "caf\xC3\xA9 \"quoted\""}});
  CHECK(r.contains("layer.f"));
  CHECK_FALSE(r.contains("__metadata__"));
  CHECK(r.info("layer.f").dtype == io::DType::F32);
  CHECK(r.info("layer.d").dtype == io::DType::F64);
  CHECK(r.info("layer.f").shape == Shape{2, 3});
  CHECK(r.info("scalar").shape == Shape{});
  CHECK(r.info("empty").shape == Shape{0, 5});
  // Data is laid out in the order added, back to back.
  CHECK(r.info("layer.f").begin == 0);
  CHECK(r.info("layer.f").end == 24);
  CHECK(r.info("layer.d").begin == 24);
  CHECK(r.info("layer.d").end == 56);
  CHECK(r.info("scalar").begin == 56);
  CHECK(r.info("empty").begin == r.info("empty").end);

  std::vector<float> f2(6);
  r.read("layer.f", Shape{2, 3}, f2.data());
  CHECK(same_bits(f, f2));
  std::vector<double> d2(4);
  r.read("layer.d", Shape{4}, d2.data());
  CHECK(same_bits(d, d2));
  float scalar2 = 0.0f;
  r.read("scalar", Shape{}, &scalar2);
  CHECK(scalar2 == 2.75f);
  std::vector<float> big2(big.size());
  r.read("rank4", Shape{3, 4, 5, 6}, big2.data());
  CHECK(same_bits(big, big2));
  Tensor<float> tensor2(Shape{7, 3});
  r.read("tensor", tensor2);
  CHECK(same_bits(tensor_values, std::vector<float>(tensor2.data(), tensor2.data() + 21)));
  Tensor<float> empty2(Shape{0, 5});
  CHECK_NOTHROW(r.read("empty", empty2));

  // Conversions on read: F32 into double is exact; F64 into float rounds.
  std::vector<double> f_as_double(6);
  r.read("layer.f", Shape{2, 3}, f_as_double.data());
  for (std::size_t i = 0; i < 6; ++i) CHECK(bits_of(f_as_double[i]) == bits_of(static_cast<double>(f[i])));
  std::vector<float> d_as_float(4);
  r.read("layer.d", Shape{4}, d_as_float.data());
  CHECK(d_as_float[0] == static_cast<float>(1.0 / 3.0));

  // Writing again replaces the file with the new content.
  io::SafetensorsWriter w2;
  w2.add("only", Shape{1}, &scalar);
  w2.write(path);
  io::SafetensorsReader r2(path);
  CHECK(r2.tensors().size() == 1);
  CHECK(r2.metadata().empty());
}

TEST_CASE("SafetensorsWriter rejects duplicate and reserved names and unwritable paths", "[io][safetensors]") {
  const float x = 1.0f;
  io::SafetensorsWriter w;
  w.add("a", Shape{1}, &x);
  CHECK_THROWS_WITH(w.add("a", Shape{1}, &x), "argument error: tensor 'a' added twice");
  CHECK_THROWS_AS(w.add("__metadata__", Shape{1}, &x), argument_error);
  TempDir dir;
  CHECK_THROWS_WITH(w.write(dir.file("missing/sub/t.safetensors")),
                    Contains("file error: cannot create ") && Contains("missing/sub/t.safetensors.tmp."));
}

TEST_CASE("F16 and BF16 tensors convert to float exactly, bit pattern by bit pattern", "[io][safetensors]") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<std::uint16_t, float>> half{
      {0x3C00, 1.0f},
      {0xC000, -2.0f},
      {0x3800, 0.5f},
      {0x3555, 0.333251953125f},        // 2^-2 * (1 + 341/1024)
      {0x7BFF, 65504.0f},               // largest finite half
      {0x0400, std::ldexp(1.0f, -14)},  // smallest normal
      {0x0001, std::ldexp(1.0f, -24)},  // smallest subnormal
      {0x8001, -std::ldexp(1.0f, -24)},
      {0x0200, std::ldexp(1.0f, -15)},     // subnormal, one bit
      {0x03FF, std::ldexp(1023.0f, -24)},  // largest subnormal
      {0x0000, 0.0f},
      {0x8000, -0.0f},
      {0x7C00, inf},
      {0xFC00, -inf},
  };
  const std::vector<std::pair<std::uint16_t, float>> bf16{
      {0x3F80, 1.0f},
      {0xC000, -2.0f},
      {0x3E80, 0.25f},
      {0x4049, 3.140625f},                // float bits 0x40490000
      {0x7F7F, std::ldexp(255.0f, 120)},  // largest finite: (2 - 2^-7) * 2^127
      {0x0080, std::ldexp(1.0f, -126)},   // smallest normal
      {0x0001, std::ldexp(1.0f, -133)},   // subnormal (float bits 0x00010000)
      {0x8000, -0.0f},
      {0x7F80, inf},
      {0xFF80, -inf},
  };
  std::vector<std::uint16_t> half_bits, bf16_bits;
  for (const auto& [b, v] : half) half_bits.push_back(b);
  for (const auto& [b, v] : bf16) bf16_bits.push_back(b);
  half_bits.push_back(0x7E00);  // NaN
  bf16_bits.push_back(0x7FC0);  // NaN
  const std::size_t nh = half_bits.size(), nb = bf16_bits.size();
  const std::string header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[" + std::to_string(nh) + "],\"data_offsets\":[0," +
                             std::to_string(2 * nh) + "]},\"b\":{\"dtype\":\"BF16\",\"shape\":[1," +
                             std::to_string(nb) + "],\"data_offsets\":[" + std::to_string(2 * nh) + "," +
                             std::to_string(2 * (nh + nb)) + "]}}";
  TempDir dir;
  const std::string path = dir.file("half.safetensors");
  write_bytes(path, safetensors_bytes(header, le16s(half_bits) + le16s(bf16_bits)));

  io::SafetensorsReader r(path);
  CHECK(r.info("h").dtype == io::DType::F16);
  CHECK(r.info("b").dtype == io::DType::BF16);
  std::vector<float> h(nh), b(nb);
  r.read("h", Shape{static_cast<index_t>(nh)}, h.data());
  r.read("b", Shape{1, static_cast<index_t>(nb)}, b.data());
  for (std::size_t i = 0; i < half.size(); ++i) {
    INFO("half 0x" << std::hex << half[i].first);
    CHECK(bits_of(h[i]) == bits_of(half[i].second));
    CHECK(bits_of(io::half_to_float(half[i].first)) == bits_of(half[i].second));
  }
  CHECK(std::isnan(h.back()));
  for (std::size_t i = 0; i < bf16.size(); ++i) {
    INFO("bf16 0x" << std::hex << bf16[i].first);
    CHECK(bits_of(b[i]) == bits_of(bf16[i].second));
    CHECK(bits_of(io::bfloat16_to_float(bf16[i].first)) == bits_of(bf16[i].second));
  }
  CHECK(std::isnan(b.back()));

  // Into double: the same values, exactly.
  std::vector<double> hd(nh);
  r.read("h", Shape{static_cast<index_t>(nh)}, hd.data());
  for (std::size_t i = 0; i < half.size(); ++i) CHECK(bits_of(hd[i]) == bits_of(static_cast<double>(half[i].second)));

  // Every one of the 2^16 half patterns: finite ones equal their exact value m * 2^(e-25).
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const std::uint32_t e = (bits >> 10) & 0x1F, m = bits & 0x3FF;
    const float sign = (bits & 0x8000) ? -1.0f : 1.0f;
    if (e == 31) continue;
    const float expected = e == 0 ? sign * std::ldexp(static_cast<float>(m), -24)
                                  : sign * std::ldexp(static_cast<float>(m | 0x400), static_cast<int>(e) - 25);
    if (bits_of(io::half_to_float(static_cast<std::uint16_t>(bits))) != bits_of(expected))
      FAIL("half 0x" << std::hex << bits << " converts to " << io::half_to_float(static_cast<std::uint16_t>(bits)));
  }
}

TEST_CASE("reading a tensor with the wrong shape or a missing name throws file_error naming it", "[io][safetensors]") {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<float> v(6, 1.0f);
  io::SafetensorsWriter w;
  w.add("block.weight", Shape{2, 3}, v.data());
  w.write(path);
  io::SafetensorsReader r(path);
  std::vector<float> out(6);
  CHECK(message_of<file_error>([&] {
          r.read("block.weight", Shape{3, 2}, out.data());
        }) == "file error: " + path + ": tensor 'block.weight' has shape [2, 3], expected [3, 2]");
  CHECK_THAT(message_of<file_error>([&] { r.read("block.weight", Shape{6}, out.data()); }),
             Contains("tensor 'block.weight' has shape [2, 3], expected [6]"));
  Tensor<float> wrong(Shape{2, 3, 1});
  CHECK_THAT(message_of<file_error>([&] { r.read("block.weight", wrong); }),
             Contains("tensor 'block.weight' has shape [2, 3], expected [2, 3, 1]"));
  CHECK(message_of<file_error>([&] { r.read("block.bias", Shape{3}, out.data()); }) ==
        "file error: " + path + ": missing tensor 'block.bias'");
  CHECK_THAT(message_of<file_error>([&] { r.info("nope"); }), Contains("missing tensor 'nope'"));
  // The reader still works after the errors.
  r.read("block.weight", Shape{2, 3}, out.data());
  CHECK(out == v);
}

TEST_CASE("hostile safetensors files raise file_error, never a crash", "[io][safetensors][hostile]") {
  TempDir dir;
  const std::string f32x2(8, '\0');  // two F32 zeros
  const auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return "{\"w\":{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}}";
  };
  struct Case {
    const char* what;
    std::string bytes;
    std::string expected;
  };
  const std::vector<Case> cases{
      {"empty file", "", "is not a safetensors file: shorter than its 8-byte header length"},
      {"7-byte file", std::string(7, '\x01'), "is not a safetensors file: shorter than its 8-byte header length"},
      {"header length larger than the file", le64(100) + "{}", "header length 100 exceeds the file size 10"},
      {"header length one more than the file", le64(3) + "{}", "header length 3 exceeds the file size 10"},
      {"header length 2^63", le64(std::uint64_t{1} << 63) + "{}",
       "header length 9223372036854775808 exceeds the file size 10"},
      {"header length 2^64-1", le64(~std::uint64_t{0}) + "{}", "header length 18446744073709551615 exceeds"},
      {"header length 2^28", le64(std::uint64_t{1} << 28) + "{}", "header length 268435456 exceeds"},
      {"header length zero", le64(0), "header: malformed JSON at byte 0: expected a value"},
      {"header not JSON", safetensors_bytes("hello world"), "header: malformed JSON at byte 0"},
      {"header JSON with trailing bytes", safetensors_bytes("{} {}"), "header: malformed JSON at byte 3"},
      {"header with a NUL byte", safetensors_bytes(std::string("{}\0\0", 4)), "header: malformed JSON at byte 2"},
      {"header deeply nested", safetensors_bytes(std::string(1000, '[')), "nesting deeper than 64 levels"},
      {"header JSON an array", safetensors_bytes("[]"), "header must be an object"},
      {"header JSON a string", safetensors_bytes("\"x\""), "header must be an object"},
      {"entry not an object", safetensors_bytes("{\"w\": 1}"), "tensor 'w': header entry must be an object"},
      {"entry missing dtype", safetensors_bytes("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", f32x2),
       "tensor 'w': header entry needs dtype, shape and data_offsets"},
      {"entry missing shape", safetensors_bytes("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", f32x2),
       "tensor 'w': header entry needs dtype, shape and data_offsets"},
      {"entry missing data_offsets", safetensors_bytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", f32x2),
       "tensor 'w': header entry needs dtype, shape and data_offsets"},
      {"dtype I8", safetensors_bytes(entry("\"I8\"", "[8]", "[0,8]"), f32x2),
       "tensor 'w': unsupported dtype I8 (expected F64, F32, F16 or BF16)"},
      {"dtype F8", safetensors_bytes(entry("\"F8\"", "[8]", "[0,8]"), f32x2), "tensor 'w': unsupported dtype F8"},
      {"dtype F8_E4M3", safetensors_bytes(entry("\"F8_E4M3\"", "[8]", "[0,8]"), f32x2), "unsupported dtype F8_E4M3"},
      {"dtype lower case", safetensors_bytes(entry("\"f32\"", "[2]", "[0,8]"), f32x2), "unsupported dtype f32"},
      {"dtype a number", safetensors_bytes(entry("32", "[2]", "[0,8]"), f32x2), "tensor 'w' dtype must be a string"},
      {"shape not an array", safetensors_bytes(entry("\"F32\"", "2", "[0,8]"), f32x2),
       "tensor 'w' shape must be an array"},
      {"negative dim", safetensors_bytes(entry("\"F32\"", "[-2]", "[0,8]"), f32x2),
       "tensor 'w' shape must be an integer in [0, 1099511627776], got -2"},
      {"non-integer dim", safetensors_bytes(entry("\"F32\"", "[1.5]", "[0,8]"), f32x2),
       "tensor 'w' shape must be an integer in [0, 1099511627776], got 1.5"},
      {"huge dim", safetensors_bytes(entry("\"F32\"", "[1e20]", "[0,8]"), f32x2), "got 1e+20"},
      {"dim 2^40 + 1", safetensors_bytes(entry("\"F32\"", "[1099511627777]", "[0,8]"), f32x2), "got 1099511627777"},
      {"dim a string", safetensors_bytes(entry("\"F32\"", "[\"2\"]", "[0,8]"), f32x2),
       "tensor 'w' shape must be a number"},
      {"shape product overflows", safetensors_bytes(entry("\"F32\"", "[1099511627776,1099511627776]", "[0,8]"), f32x2),
       "tensor 'w': shape is too large"},
      {"shape product 2^80 in four dims",
       safetensors_bytes(entry("\"F64\"", "[1048576,1048576,1048576,1048576]", "[0,8]"), f32x2),
       "tensor 'w': shape is too large"},
      {"shape product wraps to a small number",
       safetensors_bytes(entry("\"F32\"", "[4294967296,4294967296,1,2]", "[0,8]"), f32x2),
       "tensor 'w': shape is too large"},
      {"rank 5", safetensors_bytes(entry("\"F32\"", "[1,1,1,1,2]", "[0,8]"), f32x2),
       "tensor 'w': rank 5 is above the supported 4"},
      {"rank 1000", safetensors_bytes(entry("\"F32\"", "[1" + repeat(",1", 999) + "]", "[0,8]"), f32x2),
       "tensor 'w': rank 1000 is above the supported 4"},
      {"data_offsets not an array", safetensors_bytes(entry("\"F32\"", "[2]", "8"), f32x2),
       "tensor 'w' data_offsets must be an array"},
      {"data_offsets of one number", safetensors_bytes(entry("\"F32\"", "[2]", "[8]"), f32x2),
       "tensor 'w': data_offsets must be [begin, end]"},
      {"data_offsets of three numbers", safetensors_bytes(entry("\"F32\"", "[2]", "[0,8,8]"), f32x2),
       "tensor 'w': data_offsets must be [begin, end]"},
      {"negative data offset", safetensors_bytes(entry("\"F32\"", "[2]", "[-8,0]"), f32x2),
       "tensor 'w' data_offsets must be an integer in [0, 4503599627370496], got -8"},
      {"fractional data offset", safetensors_bytes(entry("\"F32\"", "[2]", "[0,7.5]"), f32x2), "got 7.5"},
      {"huge data offset", safetensors_bytes(entry("\"F32\"", "[2]", "[0,1e300]"), f32x2),
       "got 1.0000000000000001e+300"},
      {"data_offsets end before begin", safetensors_bytes(entry("\"F32\"", "[0]", "[8,4]"), f32x2),
       "tensor 'w': data_offsets end before begin"},
      {"data end beyond the file", safetensors_bytes(entry("\"F32\"", "[100]", "[0,400]"), f32x2),
       "tensor 'w': data ends at byte 400 but the file holds only 8 data bytes (truncated file?)"},
      {"data begin and end beyond the file",
       safetensors_bytes(entry("\"F32\"", "[2]", "[4503599627370488,4503599627370496]"), f32x2),
       "tensor 'w': data ends at byte 4503599627370496 but the file holds only 8 data bytes"},
      {"byte count smaller than the shape", safetensors_bytes(entry("\"F32\"", "[3]", "[0,8]"), f32x2),
       "tensor 'w': holds 8 bytes but shape [3] of F32 needs 12"},
      {"byte count larger than the shape", safetensors_bytes(entry("\"F16\"", "[2]", "[0,8]"), f32x2),
       "tensor 'w': holds 8 bytes but shape [2] of F16 needs 4"},
      {"empty shape with bytes", safetensors_bytes(entry("\"F64\"", "[0,3]", "[0,8]"), f32x2),
       "tensor 'w': holds 8 bytes but shape [0, 3] of F64 needs 0"},
      {"duplicate tensor names", safetensors_bytes("{\"w\":{},\"w\":{}}"), "duplicate key \"w\""},
      {"metadata not an object", safetensors_bytes("{\"__metadata__\": [1]}"), ": __metadata__ must be an object"},
      {"metadata value not a string", safetensors_bytes("{\"__metadata__\": {\"format\": 1}}"),
       ": __metadata__.format must be a string"},
  };
  int index = 0;
  for (const auto& c : cases) {
    INFO(c.what);
    const std::string path = dir.file("hostile_" + std::to_string(index++) + ".safetensors");
    write_bytes(path, c.bytes);
    const std::string message = message_of<file_error>([&] { io::SafetensorsReader reader(path); });
    CHECK_THAT(message, Contains(c.expected));
    CHECK_THAT(message, Contains(path));
    // load_model goes through the same reader.
    CHECK_THROWS_AS(io::load_model(golden_dir() + "/l2_norm_gelu_f32/config.json", path), file_error);
  }

  // Paths that are not files at all.
  CHECK(message_of<file_error>([&] { io::SafetensorsReader reader(dir.file("does_not_exist")); }) ==
        "file error: cannot open " + dir.file("does_not_exist"));
  std::filesystem::create_directory(dir.file("a_directory"));
  CHECK_THAT(message_of<file_error>([&] { io::SafetensorsReader reader(dir.file("a_directory")); }),
             Contains(dir.file("a_directory")) &&
                 (Contains("cannot read") || Contains("is not a safetensors file: shorter than")));
}

TEST_CASE("a truncated safetensors file is rejected naming the tensor that lost its data",
          "[io][safetensors][hostile]") {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::vector<float> a(4, 1.0f), b(16, 2.0f);
  io::SafetensorsWriter w;
  w.add("a", Shape{4}, a.data());
  w.add("b", Shape{4, 4}, b.data());
  w.write(path);
  const auto full = std::filesystem::file_size(path);

  std::filesystem::resize_file(path, full - 4);
  CHECK(message_of<file_error>([&] { io::SafetensorsReader r(path); }) ==
        "file error: " + path +
            ": tensor 'b': data ends at byte 80 but the file holds only 76 data bytes (truncated file?)");
  std::filesystem::resize_file(path, full - 60);  // 'a' still complete, 'b' mostly gone
  CHECK_THAT(message_of<file_error>([&] { io::SafetensorsReader r(path); }),
             Contains("tensor 'b': data ends at byte 80 but the file holds only 20 data bytes"));
  std::filesystem::resize_file(path, full - 80 + 8);  // into 'a'
  CHECK_THAT(message_of<file_error>([&] { io::SafetensorsReader r(path); }),
             Contains("tensor 'a': data ends at byte 16 but the file holds only 8 data bytes"));
  std::filesystem::resize_file(path, 20);  // inside the header
  CHECK_THAT(message_of<file_error>([&] { io::SafetensorsReader r(path); }), Contains("exceeds the file size 20"));

  // A file truncated after it was opened: the read itself fails cleanly.
  w.write(path);
  io::SafetensorsReader r(path);
  std::filesystem::resize_file(path, full - 4);
  std::vector<float> out(16);
  r.read("a", Shape{4}, out.data());
  CHECK(std::vector<float>(out.begin(), out.begin() + 4) == a);
  CHECK(message_of<file_error>([&] {
          r.read("b", Shape{4, 4}, out.data());
        }) == "file error: " + path + ": cannot read tensor 'b' (file truncated?)");
}

// ================================================================================================
// Atomic writes
// ================================================================================================

TEST_CASE("write_file_atomically replaces a file completely", "[io][atomic]") {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  const std::string long_text(100000, 'x');
  io::write_file_atomically(path, [&](io::FileSink& sink) {
    sink.write(long_text.data(), 50000);
    sink.write(long_text.data() + 50000, 50000);
  });
  CHECK(read_bytes(path) == long_text);
  io::write_file_atomically(path, [](io::FileSink& sink) { sink.write("short", 5); });
  CHECK(read_bytes(path) == "short");  // no bytes of the longer old content remain
  io::write_file_atomically(path, [](io::FileSink&) {});
  CHECK(read_bytes(path).empty());
  CHECK(dir.entries() == std::vector<std::string>{"out.txt"});
}

TEST_CASE("a writer that throws midway leaves the old file unchanged and no temporary file", "[io][atomic]") {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  write_bytes(path, "the old content");
  std::string tmp_seen;
  CHECK_THROWS_WITH(io::write_file_atomically(path,
                                              [&](io::FileSink& sink) {
                                                sink.write("the new, longer content", 23);
                                                // The partial content exists, beside the target, not in it.
                                                tmp_seen = read_bytes(test_util::atomic_temp_file(path, ::getpid()));
                                                throw std::runtime_error("writer failed midway");
                                              }),
                    "writer failed midway");
  CHECK(tmp_seen == "the new, longer content");
  CHECK(read_bytes(path) == "the old content");
  CHECK(dir.entries() == std::vector<std::string>{"out.txt"});

  // A library error from the writer propagates as itself.
  CHECK_THROWS_AS(io::write_file_atomically(path,
                                            [](io::FileSink& sink) {
                                              sink.write("x", 1);
                                              throw numeric_error("NaN in tensor");
                                            }),
                  numeric_error);
  CHECK(read_bytes(path) == "the old content");
  CHECK(dir.entries() == std::vector<std::string>{"out.txt"});

  // With no old file, a failed write leaves nothing at all.
  const std::string fresh = dir.file("fresh.txt");
  CHECK_THROWS(io::write_file_atomically(fresh, [](io::FileSink& sink) {
    sink.write("x", 1);
    throw std::runtime_error("fail");
  }));
  CHECK_FALSE(std::filesystem::exists(fresh));
  CHECK(dir.entries() == std::vector<std::string>{"out.txt"});

  // A target that cannot be replaced (a non-empty directory): file_error, and the temporary is gone.
  std::filesystem::create_directories(dir.file("d/inner"));
  CHECK_THROWS_WITH(io::write_file_atomically(dir.file("d"), [](io::FileSink& sink) { sink.write("x", 1); }),
                    Contains("file error: cannot rename ") && Contains(dir.file("d")));
  CHECK(dir.entries() == std::vector<std::string>{"d", "out.txt"});
  // A missing directory: file_error naming the temporary file it could not create.
  CHECK_THROWS_WITH(io::write_file_atomically(dir.file("no/such/dir/f"), [](io::FileSink&) {}),
                    Contains("file error: cannot create " + dir.file("no/such/dir/f") + ".tmp."));
}

TEST_CASE("a writer killed with SIGKILL mid-write leaves the existing checkpoint intact", "[io][atomic][crash]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<float> old_values = test_util::random_vector<float>(10 * 100, 21);
  {
    io::SafetensorsWriter w;
    w.add("w", Shape{10, 100}, old_values.data());
    w.write(path);
  }
  const std::string old_bytes = read_bytes(path);
  // The replacement: a valid, larger safetensors file (1 MiB of data), of which the child writes
  // the first half before it is killed.
  std::string new_bytes;
  {
    const std::vector<float> new_values = test_util::random_vector<float>(512 * 512, 22);
    io::SafetensorsWriter w;
    w.add("w", Shape{512, 512}, new_values.data());
    w.write(dir.file("new.safetensors"));
    new_bytes = read_bytes(dir.file("new.safetensors"));
    std::filesystem::remove(dir.file("new.safetensors"));
  }
  const std::size_t written_before_kill = new_bytes.size() / 2;

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      io::write_file_atomically(path, [&](io::FileSink& sink) {
        sink.write(new_bytes.data(), written_before_kill);
        ::raise(SIGKILL);
        sink.write(new_bytes.data() + written_before_kill, new_bytes.size() - written_before_kill);
      });
    } catch (...) {
      ::_exit(4);
    }
    ::_exit(3);  // not reached: SIGKILL cannot be caught
  }
  const int status = wait_for(child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);

  // The child died mid-write: its partial temporary file is left behind, beside the target...
  const std::string tmp = test_util::atomic_temp_file(path, child);
  REQUIRE(std::filesystem::exists(tmp));
  CHECK(std::filesystem::file_size(tmp) == written_before_kill);
  // ...and the checkpoint is the old one, byte for byte, and reads back bit-identical.
  const bool unchanged = read_bytes(path) == old_bytes;
  CHECK(unchanged);
  io::SafetensorsReader r(path);
  std::vector<float> values(old_values.size());
  r.read("w", Shape{10, 100}, values.data());
  CHECK(same_bits(values, old_values));
  std::filesystem::remove(tmp);
}

TEST_CASE("io::save_weights killed by the kernel mid-write leaves the existing checkpoint intact",
          "[io][atomic][crash]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::string softmax_dir = golden_dir() + "/softmax_f32";
  auto old_model = io::load_model(softmax_dir + "/config.json", softmax_dir + "/model.safetensors");
  io::save_weights(old_model, path);
  const std::string old_bytes = read_bytes(path);
  auto new_model = io::load_model(golden_dir() + "/l2_norm_gelu_f32/config.json",
                                  golden_dir() + "/l2_norm_gelu_f32/model.safetensors");
  // The child may write at most 64 KiB per file; its save_weights of the ~200 KiB l2_norm_gelu model
  // is killed by SIGXFSZ when the temporary file reaches the limit, inside SafetensorsWriter::write.
  const rlim_t limit = 64 * 1024;

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::prctl(PR_SET_DUMPABLE, 0);  // no core dump
    const struct rlimit no_core { 0, 0 };
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::signal(SIGXFSZ, SIG_DFL);
    const struct rlimit file_size { limit, limit };
    if (::setrlimit(RLIMIT_FSIZE, &file_size) != 0) ::_exit(5);
    try {
      io::save_weights(new_model, path);
    } catch (...) {
      ::_exit(4);
    }
    ::_exit(3);  // not reached
  }
  const int status = wait_for(child);
  INFO("wait status " << status);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGXFSZ);

  const std::string tmp = test_util::atomic_temp_file(path, child);
  REQUIRE(std::filesystem::exists(tmp));
  CHECK(std::filesystem::file_size(tmp) == limit);  // killed mid-write, after 64 KiB
  const bool unchanged = read_bytes(path) == old_bytes;
  CHECK(unchanged);
  // The checkpoint still loads, as the old model, bit for bit.
  auto reloaded = io::load_model(softmax_dir + "/config.json", path);
  CHECK(reloaded.config() == old_model.config());
  const auto expected = parameters_of(old_model);
  const auto actual = parameters_of(reloaded);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO(actual[i].first);
    CHECK(actual[i].first == expected[i].first);
    CHECK(same_bits(actual[i].second, expected[i].second));
  }
  std::filesystem::remove(tmp);
}

TEST_CASE("a checkpoint rewritten in a loop and killed at a random moment is always complete", "[io][atomic][crash]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<float> old_values = test_util::random_vector<float>(1000, 31);
  const std::vector<float> new_values = test_util::random_vector<float>(1 << 20, 32);  // 4 MiB
  {
    io::SafetensorsWriter w;
    w.add("w", Shape{1000}, old_values.data());
    w.write(path);
  }
  const std::string old_bytes = read_bytes(path);
  std::string new_bytes;
  {
    io::SafetensorsWriter w;
    w.add("w", Shape{1 << 20}, new_values.data());
    w.write(dir.file("new.safetensors"));
    new_bytes = read_bytes(dir.file("new.safetensors"));
    std::filesystem::remove(dir.file("new.safetensors"));
  }
  for (int round = 0; round < 3; ++round) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      try {
        io::SafetensorsWriter w;
        w.add("w", Shape{1 << 20}, new_values.data());
        for (;;) w.write(path);
      } catch (...) {
        ::_exit(4);
      }
    }
    ::usleep(static_cast<useconds_t>(5000 + 10000 * round));
    ::kill(child, SIGKILL);
    const int status = wait_for(child);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    // Whenever the kill came, the checkpoint is one complete file: the old or the new.
    const std::string now = read_bytes(path);
    const bool complete = now == old_bytes || now == new_bytes;
    CHECK(complete);
    CHECK_NOTHROW(io::SafetensorsReader(path));
    std::error_code ec;
    std::filesystem::remove(test_util::atomic_temp_file(path, child), ec);
  }
}

// ================================================================================================
// Config files
// ================================================================================================

TEST_CASE("parse_config reads the golden config", "[io][config]") {
  const std::string text = io::read_text_file(golden_dir() + "/l2_norm_gelu_f32/config.json");
  const ModelConfig c = io::parse_config(text);
  CHECK(c.num_layers == 2);
  CHECK(c.hidden_size == 64);
  CHECK(c.num_heads == 4);
  CHECK(c.qkv_tokens == 24);
  CHECK(c.proj_tokens == 20);
  CHECK(c.ffn_tokens == 72);
  CHECK(c.vocab_size == 100);
  CHECK(c.rotary_pct == 0.25);
  CHECK(c.normalization == Normalization::l2_norm_gelu);
  CHECK(c.layernorm_epsilon == 1e-5);
  CHECK(c.rotary_base == 10000.0);  // default
  // The embedding's row count wins over vocab_size (official models pad the vocabulary).
  CHECK(io::parse_config(text, "cfg", 128).vocab_size == 128);
  CHECK(io::parse_config(text, "cfg", 100).vocab_size == 100);
  CHECK(io::read_config(golden_dir() + "/l2_norm_gelu_f32/config.json") == c);
  const ModelConfig s = io::read_config(golden_dir() + "/softmax_f32/config.json");
  CHECK(s.normalization == Normalization::softmax);
  CHECK(s.rotary_pct == 0.5);
  CHECK(io::read_config(golden_dir() + "/gelu_l2_norm_f32/config.json").normalization == Normalization::gelu_l2_norm);

  // Keys of training configs that do not change the model are ignored; supported values pass.
  std::string extra = golden_config_with("lr", io::Json(0.0006));
  extra =
      extra.substr(0, extra.size() - 1) +
      R"(,"pos_emb":"rotary","norm":"layernorm_nonparam","final_norm":"layernorm","no_weight_tying":false,"rotary_emb_base":500000})";
  const ModelConfig e = io::parse_config(extra);
  CHECK(e.rotary_base == 500000.0);
  CHECK(e.num_layers == 2);
}

TEST_CASE("a missing required key is a config_error naming it", "[io][config]") {
  for (const char* key : {"num_layers", "hidden_size", "num_attention_heads", "qkv_slot_num", "proj_slot_num",
                          "ffn_slot_num", "vocab_size"}) {
    INFO(key);
    CHECK(config_error_of(golden_config_without(key)) ==
          std::string("config error: cfg.json: missing key \"") + key + "\"");
  }
  // Optional keys fall back to their defaults.
  CHECK(io::parse_config(golden_config_without("rotary_pct")).rotary_pct == 0.25);
  CHECK(io::parse_config(golden_config_without("layernorm_epsilon")).layernorm_epsilon == 1e-5);
  CHECK(io::parse_config(golden_config_without("norm_activation_type")).normalization == Normalization::l2_norm_gelu);
}

TEST_CASE("bad config values are config_errors that say what is accepted", "[io][config]") {
  CHECK_THAT(config_error_of(golden_config_with("norm_activation_type", io::Json("relu"))),
             Contains("unknown norm_activation_type 'relu' (expected l2_norm_gelu, gelu_l2_norm or softmax)"));
  CHECK_THAT(config_error_of(golden_config_with("norm_activation_type", io::Json(1))),
             Contains("norm_activation_type must be a string"));

  for (const io::Json& bad :
       {io::Json(2.5), io::Json(-2), io::Json(0), io::Json("2"), io::Json(1e10), io::Json(nullptr)}) {
    INFO("num_layers = " << bad.dump());
    CHECK(config_error_of(golden_config_with("num_layers", bad)) ==
          "config error: cfg.json: num_layers must be a positive integer");
  }
  CHECK_THAT(config_error_of(golden_config_with("hidden_size", io::Json(-64))),
             Contains("hidden_size must be a positive integer"));
  CHECK_THAT(config_error_of(golden_config_with("vocab_size", io::Json(100.5))),
             Contains("vocab_size must be a positive integer"));

  CHECK_THAT(config_error_of(golden_config_with("num_attention_heads", io::Json(5))),
             Contains("num_attention_heads (5) must divide hidden_size (64)"));
  // head_dim 16: 16 * 0.1875 = 3 rotary dims, odd.
  CHECK_THAT(config_error_of(golden_config_with("rotary_pct", io::Json(0.1875))),
             Contains("rotary dims int(head_dim * rotary_pct) = 3 must be even"));
  CHECK_THAT(config_error_of(golden_config_with("rotary_pct", io::Json(1.5))),
             Contains("rotary_pct must be in [0, 1]"));
  CHECK_THAT(config_error_of(golden_config_with("rotary_pct", io::Json("0.25"))),
             Contains("rotary_pct must be a number"));
  CHECK_THAT(config_error_of(golden_config_with("layernorm_epsilon", io::Json(0))),
             Contains("layernorm_epsilon must be positive and finite"));
  CHECK_THAT(config_error_of(golden_config_with("rotary_emb_base", io::Json(-1))),
             Contains("rotary_emb_base must be positive and finite"));

  CHECK(config_error_of(golden_config_with("pos_emb", io::Json("learned"))) ==
        "config error: cfg.json: pos_emb = \"learned\" is not supported (this library implements \"rotary\")");
  CHECK_THAT(config_error_of(golden_config_with("norm", io::Json("rmsnorm"))),
             Contains("norm = \"rmsnorm\" is not supported (this library implements \"layernorm_nonparam\")"));
  CHECK_THAT(config_error_of(golden_config_with("final_norm", io::Json(1))),
             Contains("final_norm = 1 is not supported (this library implements \"layernorm\")"));
  CHECK(config_error_of(golden_config_with("no_weight_tying", io::Json(true))) ==
        "config error: cfg.json: no_weight_tying must be false (embeddings are tied)");
  CHECK_THAT(config_error_of(golden_config_with("no_weight_tying", io::Json("false"))),
             Contains("no_weight_tying must be false"));

  // Text that is not a JSON object is a file_error.
  CHECK_THAT(message_of<file_error>([] { io::parse_config("{\"num_layers\": 2,}", "cfg.json"); }),
             Contains("cfg.json: malformed JSON at byte"));
  CHECK_THAT(message_of<file_error>([] { io::parse_config("[1, 2]", "cfg.json"); }),
             Contains("cfg.json must be an object"));
  TempDir dir;
  CHECK_THAT(message_of<file_error>([&] { io::read_config(dir.file("missing.json")); }),
             Contains("cannot open " + dir.file("missing.json")));
}

TEST_CASE("vocab_size may be left to the embedding's row count, but not exceed it", "[io][config]") {
  const std::string text = golden_config_without("vocab_size");
  CHECK(io::parse_config(text, "cfg.json", 128).vocab_size == 128);
  CHECK(config_error_of(text) == "config error: cfg.json: missing key \"vocab_size\"");
  CHECK(config_error_of(golden_config_with("vocab_size", io::Json(200)), 128) ==
        "config error: cfg.json: vocab_size 200 exceeds the 128 rows of the embedding");
  CHECK(io::parse_config(golden_config_with("vocab_size", io::Json(128)), "cfg.json", 128).vocab_size == 128);
}

TEST_CASE("write_config and read_config round-trip a ModelConfig exactly", "[io][config]") {
  ModelConfig golden = io::read_config(golden_dir() + "/l2_norm_gelu_f32/config.json");
  ModelConfig big;
  big.num_layers = 24;
  big.hidden_size = 96;
  big.num_heads = 6;  // head_dim 16, 16 * 0.375 = 6 rotary dims
  big.qkv_tokens = 7;
  big.proj_tokens = 9;
  big.ffn_tokens = 11;
  big.vocab_size = 50257;
  big.rotary_pct = 0.375;
  big.normalization = Normalization::softmax;
  big.layernorm_epsilon = 1e-6;
  big.rotary_base = 500000.0;
  ModelConfig odd = big;
  odd.hidden_size = 40;
  odd.num_heads = 2;     // head_dim 20
  odd.rotary_pct = 0.1;  // int(2.0000000000000004) = 2
  odd.normalization = Normalization::gelu_l2_norm;
  odd.layernorm_epsilon = 1.2345678901234567e-7;
  odd.rotary_base = 10000.5;
  ModelConfig no_rotary = golden;
  no_rotary.rotary_pct = 0.0;

  TempDir dir;
  int i = 0;
  for (const ModelConfig& c : {golden, big, odd, no_rotary}) {
    INFO("config " << i);
    REQUIRE_NOTHROW(c.validate());
    const std::string path = dir.file("config_" + std::to_string(i++) + ".json");
    io::write_config(c, path);
    const ModelConfig back = io::read_config(path);
    CHECK(back == c);
    CHECK(back.layernorm_epsilon == c.layernorm_epsilon);
    CHECK(back.rotary_pct == c.rotary_pct);
  }
  // The file is the official JSON, one key per line, with the implemented fixed values.
  const std::string text = io::read_text_file(dir.file("config_1.json"));
  CHECK_THAT(text, Contains("\n  \"num_layers\": 24,\n") && Contains("\"num_attention_heads\": 6") &&
                       Contains("\"norm_activation_type\": \"softmax\"") && Contains("\"pos_emb\": \"rotary\"") &&
                       Contains("\"no_weight_tying\": false") && Contains("\"rotary_emb_base\": 500000"));
  CHECK(text.back() == '\n');
  // Writing replaces the old file.
  io::write_config(golden, dir.file("config_1.json"));
  CHECK(io::read_config(dir.file("config_1.json")) == golden);
}

// ================================================================================================
// Checkpoints
// ================================================================================================

TEST_CASE("save_weights of the golden model reloads into a fresh model with identical logits", "[io][checkpoint]") {
  const std::string gdir = golden_dir() + "/l2_norm_gelu_f32";
  auto model = io::load_model(gdir + "/config.json", gdir + "/model.safetensors");
  CHECK(model.vocab_size() == 128);  // padded: rows of the embedding, not vocab_size 100
  TempDir dir;
  const std::string weights = dir.file("model.safetensors");
  const std::string config = dir.file("config.json");
  io::save_weights(model, weights);
  io::write_config(model.config(), config);
  CHECK(dir.entries() == std::vector<std::string>{"config.json", "model.safetensors"});

  // The saved file: the official names, F32, the model's shapes, and the producer metadata.
  io::SafetensorsReader saved(weights);
  io::SafetensorsReader original(gdir + "/model.safetensors");
  CHECK(saved.metadata().at("format") == "pt");
  CHECK(saved.metadata().at("producer") == "tokenformer");
  REQUIRE(saved.tensors().size() == original.tensors().size());
  for (const auto& [name, info] : original.tensors()) {
    INFO(name);
    REQUIRE(saved.contains(name));
    CHECK(saved.info(name).dtype == io::DType::F32);
    CHECK(saved.info(name).shape == info.shape);
  }

  auto reloaded = io::load_model(config, weights);
  CHECK(reloaded.config() == model.config());
  const auto expected = parameters_of(model);
  const auto actual = parameters_of(reloaded);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO(actual[i].first);
    CHECK(actual[i].first == expected[i].first);
    CHECK(same_bits(actual[i].second, expected[i].second));
  }
  const auto a = logits_of(model);
  const auto b = logits_of(reloaded);
  REQUIRE(a.size() == static_cast<std::size_t>(2 * 8 * 128));
  CHECK(same_bits(a, b));

  // Loading the saved weights into an existing model of the same shape gives the same logits too.
  FloatModel fresh(model.config());
  io::load_weights(fresh, weights);
  CHECK(same_bits(logits_of(fresh), a));
}

TEST_CASE("a double model saves F64 and reloads bit for bit", "[io][checkpoint]") {
  const std::string gdir = golden_dir() + "/softmax_f32";
  auto model = io::load_model<presets::Dynamic<double>>(gdir + "/config.json", gdir + "/model.safetensors");
  TempDir dir;
  io::save_weights(model, dir.file("model.safetensors"));
  io::SafetensorsReader saved(dir.file("model.safetensors"));
  for (const auto& [name, info] : saved.tensors()) {
    INFO(name);
    CHECK(info.dtype == io::DType::F64);
  }
  auto reloaded = io::load_model<presets::Dynamic<double>>(gdir + "/config.json", dir.file("model.safetensors"));
  const auto expected = parameters_of(model);
  const auto actual = parameters_of(reloaded);
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) CHECK(same_bits(actual[i].second, expected[i].second));
  CHECK(same_bits(logits_of(model), logits_of(reloaded)));
}

TEST_CASE("loading a checkpoint into a model of another shape names the first mismatched tensor", "[io][checkpoint]") {
  const std::string l2 = golden_dir() + "/l2_norm_gelu_f32";
  const std::string softmax = golden_dir() + "/softmax_f32";
  const std::string gelu = golden_dir() + "/gelu_l2_norm_f32";

  // softmax_f32 weights (C = 48, V = 64) into the l2_norm_gelu_f32 model (C = 64, V = 128).
  FloatModel model(io::read_config(l2 + "/config.json", 128));
  CHECK(message_of<file_error>([&] { io::load_weights(model, softmax + "/model.safetensors"); }) ==
        "file error: " + softmax +
            "/model.safetensors: tensor 'sequential.0.word_embeddings.weight' has shape [64, 48], expected [128, 64]");
  // load_model reads the vocabulary from the embedding: 64 rows cannot hold vocab_size 100.
  CHECK_THAT(message_of<config_error>([&] { io::load_model(l2 + "/config.json", softmax + "/model.safetensors"); }),
             Contains("vocab_size 100 exceeds the 64 rows of the embedding"));

  // The same sizes but fewer FFN tokens: the first parameter tokens that differ are named.
  ModelConfig fewer = io::read_config(l2 + "/config.json", 128);
  fewer.ffn_tokens = 71;
  FloatModel small_ffn(fewer);
  CHECK_THAT(message_of<file_error>([&] { io::load_weights(small_ffn, l2 + "/model.safetensors"); }),
             Contains("tensor 'sequential.2.mlp.key_param_tokens' has shape [72, 64], expected [71, 64]"));

  // More layers than the file (3): the first tensor of the 4th layer is missing.
  ModelConfig deeper = io::read_config(gelu + "/config.json", 77);
  deeper.num_layers = 4;
  FloatModel four_layers(deeper);
  CHECK_THAT(message_of<file_error>([&] { io::load_weights(four_layers, gelu + "/model.safetensors"); }),
             Contains("missing tensor 'sequential.5.attention.query.key_param_tokens'"));
  // Fewer layers: the final norm sits at sequential.{L+3}, which the file does not have.
  ModelConfig shallower = io::read_config(gelu + "/config.json", 77);
  shallower.num_layers = 2;
  FloatModel two_layers(shallower);
  CHECK_THAT(message_of<file_error>([&] { io::load_weights(two_layers, gelu + "/model.safetensors"); }),
             Contains("missing tensor 'sequential.5.norm.weight'"));

  // A weights file without an embedding, or with a 1-D one, cannot make a model.
  TempDir dir;
  const std::vector<float> v(5, 0.0f);
  io::SafetensorsWriter no_embedding;
  no_embedding.add("x", Shape{5}, v.data());
  no_embedding.write(dir.file("a.safetensors"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(l2 + "/config.json", dir.file("a.safetensors")); }),
             Contains("missing tensor 'sequential.0.word_embeddings.weight'"));
  io::SafetensorsWriter flat_embedding;
  flat_embedding.add(io::embedding_key(), Shape{5}, v.data());
  flat_embedding.write(dir.file("b.safetensors"));
  CHECK_THAT(message_of<file_error>([&] { io::load_model(l2 + "/config.json", dir.file("b.safetensors")); }),
             Contains("tensor 'sequential.0.word_embeddings.weight' must be 2-D, has shape [5]"));
}

// JSON: the strict reader and writer, escapes, malformed input, nesting limits, locales.
#include "io_test_util.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_io_json {

using namespace tokenformer;
using namespace io_test;

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

TEST_CASE("JSON string escapes, unicode escapes (backslash u) and surrogate pairs decode to UTF-8", "[io][json]") {
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

}  // namespace test_io_json

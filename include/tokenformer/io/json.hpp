// tokenformer/io/json.hpp: a small, strict JSON reader and writer for config files and safetensors
// headers.
//
// Parses RFC 8259 JSON into a Json value. Hostile input is safe: nesting is limited (64 levels), the
// whole text must be consumed, numbers must be finite, strings must be valid escapes; any violation
// throws file_error with the byte offset. Objects keep their keys sorted (std::map); duplicate keys
// are rejected.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tokenformer/core/error.hpp"

namespace tokenformer::io {

/// A JSON value: null, a boolean, a number (a double), a string, an array or an object (keys sorted).
/// A value never changes once built; copies share its string, array or object.
class Json {
 public:
  /// The kinds of JSON value.
  enum class Kind { null, boolean, number, string, array, object };
  using Array = std::vector<Json>;             ///< an array's elements
  using Object = std::map<std::string, Json>;  ///< an object's members, by key

  Json() = default;
  Json(std::nullptr_t) {}                              ///< null
  Json(bool b) : kind_(Kind::boolean), boolean_(b) {}  ///< true or false
  Json(double x) : kind_(Kind::number), number_(x) {}  ///< a number
  ///@{
  /// A number: the integer converted to double (exact up to 2^53).
  Json(int x) : Json(static_cast<double>(x)) {}
  Json(long x) : Json(static_cast<double>(x)) {}
  Json(long long x) : Json(static_cast<double>(x)) {}
  Json(unsigned long x) : Json(static_cast<double>(x)) {}
  Json(unsigned long long x) : Json(static_cast<double>(x)) {}
  ///@}
  Json(std::string s) : kind_(Kind::string), string_(std::make_shared<std::string>(std::move(s))) {}  ///< a string
  Json(const char* s) : Json(std::string(s)) {}                                                       ///< a string
  Json(Array a) : kind_(Kind::array), array_(std::make_shared<Array>(std::move(a))) {}                ///< an array
  Json(Object o) : kind_(Kind::object), object_(std::make_shared<Object>(std::move(o))) {}            ///< an object

  Kind kind() const { return kind_; }                       ///< the kind of value
  bool is_null() const { return kind_ == Kind::null; }      ///< kind() == Kind::null
  bool is_number() const { return kind_ == Kind::number; }  ///< kind() == Kind::number
  bool is_string() const { return kind_ == Kind::string; }  ///< kind() == Kind::string
  bool is_array() const { return kind_ == Kind::array; }    ///< kind() == Kind::array
  bool is_object() const { return kind_ == Kind::object; }  ///< kind() == Kind::object
  bool is_bool() const { return kind_ == Kind::boolean; }   ///< kind() == Kind::boolean

  ///@{
  /// The value as that kind; throws file_error naming `what` when it is another kind.
  bool as_bool(const std::string& what = "value") const {
    if (kind_ != Kind::boolean) throw file_error(what + " must be true or false");
    return boolean_;
  }
  double as_number(const std::string& what = "value") const {
    if (kind_ != Kind::number) throw file_error(what + " must be a number");
    return number_;
  }
  /// The number as an integer; throws unless it is integral and within [min, max].
  std::int64_t as_integer(const std::string& what = "value", std::int64_t min = INT64_MIN / 2,
                          std::int64_t max = INT64_MAX / 2) const {
    const double x = as_number(what);
    if (x != std::floor(x) || x < static_cast<double>(min) || x > static_cast<double>(max))
      throw file_error(what + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                       "], got " + number_text(x));
    return static_cast<std::int64_t>(x);
  }
  const std::string& as_string(const std::string& what = "value") const {
    if (kind_ != Kind::string) throw file_error(what + " must be a string");
    return *string_;
  }
  const Array& as_array(const std::string& what = "value") const {
    if (kind_ != Kind::array) throw file_error(what + " must be an array");
    return *array_;
  }
  const Object& as_object(const std::string& what = "value") const {
    if (kind_ != Kind::object) throw file_error(what + " must be an object");
    return *object_;
  }
  ///@}
  /// Member `key` of an object, or nullptr when absent.
  const Json* find(const std::string& key) const {
    if (kind_ != Kind::object) return nullptr;
    auto it = object_->find(key);
    return it == object_->end() ? nullptr : &it->second;
  }

  /// Compact serialization; numbers with 17 significant digits (integers without exponent).
  std::string dump() const {
    std::string out;
    dump_to(out);
    return out;
  }

  /// `x` as dump() writes it: an integer below 1e15 without exponent, otherwise 17 significant digits
  /// (never locale-dependent).
  static std::string number_text(double x) {
    if (x == std::floor(x) && std::fabs(x) < 1e15 && !(x == 0.0 && std::signbit(x))) {  // -0 keeps its sign below
      std::ostringstream os;
      os.imbue(std::locale::classic());  // never "12,345", whatever the global locale
      os << static_cast<long long>(x);
      return os.str();
    }
    std::ostringstream os;
    os.imbue(std::locale::classic());
    os.precision(17);
    os << x;
    return os.str();
  }

 private:
  void dump_to(std::string& out) const {
    switch (kind_) {
      case Kind::null: out += "null"; break;
      case Kind::boolean: out += boolean_ ? "true" : "false"; break;
      case Kind::number: out += number_text(number_); break;
      case Kind::string: quote(out, *string_); break;
      case Kind::array: {
        out += '[';
        bool first = true;
        for (const auto& v : *array_) {
          if (!first) out += ',';
          first = false;
          v.dump_to(out);
        }
        out += ']';
        break;
      }
      case Kind::object: {
        out += '{';
        bool first = true;
        for (const auto& [k, v] : *object_) {
          if (!first) out += ',';
          first = false;
          quote(out, k);
          out += ':';
          v.dump_to(out);
        }
        out += '}';
        break;
      }
    }
  }
  static void quote(std::string& out, const std::string& s) {
    static const char* hex = "0123456789abcdef";
    out += '"';
    for (const char byte : s) {
      const auto c = static_cast<unsigned char>(byte);  // a byte of UTF-8, 0 to 255
      if (c == '"')
        out += "\\\"";
      else if (c == '\\')
        out += "\\\\";
      else if (c < 0x20) {
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else
        out += static_cast<char>(c);
    }
    out += '"';
  }

  Kind kind_ = Kind::null;
  bool boolean_ = false;
  double number_ = 0.0;
  std::shared_ptr<std::string> string_;
  std::shared_ptr<Array> array_;
  std::shared_ptr<Object> object_;
};

namespace detail {

class JsonParser {
 public:
  JsonParser(const std::string& text, std::string source) : s_(text), source_(std::move(source)) {}

  Json parse_document() {
    skip_space();
    Json v = parse_value(0);
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  static constexpr int max_depth = 64;

  [[noreturn]] void fail(const std::string& what) const {
    throw file_error(source_ + ": malformed JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  void expect_word(const char* w) {
    for (const char* p = w; *p; ++p) {
      if (peek() != *p) fail(std::string("expected '") + w + "'");
      ++pos_;
    }
  }

  // `depth` counts the arrays and objects enclosing the value; a 65th nested one is rejected.
  Json parse_value(int depth) {
    if (depth >= max_depth && (peek() == '[' || peek() == '{')) fail("nesting deeper than 64 levels");
    switch (peek()) {
      case '{': return parse_object(depth);
      case '[': return parse_array(depth);
      case '"': return Json(parse_string());
      case 't': expect_word("true"); return Json(true);
      case 'f': expect_word("false"); return Json(false);
      case 'n': expect_word("null"); return Json(nullptr);
      default: return Json(parse_number());
    }
  }
  Json parse_object(int depth) {
    expect('{');
    Json::Object obj;
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return Json(std::move(obj));
    }
    for (;;) {
      skip_space();
      if (peek() != '"') fail("expected a string key");
      std::string key = parse_string();
      skip_space();
      expect(':');
      skip_space();
      if (obj.count(key)) fail("duplicate key \"" + key + "\"");
      obj.emplace(std::move(key), parse_value(depth + 1));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}');
      return Json(std::move(obj));
    }
  }
  Json parse_array(int depth) {
    expect('[');
    Json::Array arr;
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return Json(std::move(arr));
    }
    for (;;) {
      skip_space();
      arr.push_back(parse_value(depth + 1));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']');
      return Json(std::move(arr));
    }
  }
  unsigned hex4() {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = peek();
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else
        fail("bad \\u escape");
      ++pos_;
    }
    return v;
  }
  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80)
      out += static_cast<char>(cp);
    else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::string parse_string() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (s_.compare(pos_, 2, "\\u") != 0) fail("lone high surrogate");
            pos_ += 2;
            const unsigned low = hex4();
            if (low < 0xDC00 || low >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("lone low surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  double parse_number() {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0')
      ++pos_;
    else if (peek() >= '1' && peek() <= '9')
      while (peek() >= '0' && peek() <= '9') ++pos_;
    else
      fail("expected a value");
    if (peek() == '.') {
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit after '.'");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit in the exponent");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    std::istringstream is(s_.substr(start, pos_ - start));
    is.imbue(std::locale::classic());
    double x = 0.0;
    is >> x;
    // On overflow the stream sets failbit and stores +-DBL_MAX, which is finite: check both.
    if (is.fail() || !std::isfinite(x)) fail("number out of range");
    return x;
  }

  const std::string& s_;
  std::string source_;
  std::size_t pos_ = 0;
};

}  // namespace detail

/// Parses `text`; `source` names it in error messages (a file name, say).
inline Json parse_json(const std::string& text, const std::string& source = "JSON") {
  return detail::JsonParser(text, source).parse_document();
}

}  // namespace tokenformer::io

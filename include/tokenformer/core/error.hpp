// tokenformer/core/error.hpp: the exceptions the library throws.
//
// Every error is a tokenformer::error (a std::runtime_error) whose message says what was expected and
// what was found. Catch the specific type to tell bad input kinds apart.
#pragma once

#include <stdexcept>
#include <string>

namespace tokenformer {

/// Base class of every exception thrown by the library.
class error : public std::runtime_error {
 public:
  /// An error whose what() is `message` (the derived classes prefix their kind: "shape error: ...").
  explicit error(const std::string& message) : std::runtime_error(message) {}
};

/// Tensor shapes that do not fit together (wrong sizes passed to a layer or kernel).
class shape_error : public error {
 public:
  /// An error whose what() is "shape error: " + message.
  explicit shape_error(const std::string& message) : error("shape error: " + message) {}
};

/// A model configuration that is invalid or names an unknown value.
class config_error : public error {
 public:
  /// An error whose what() is "config error: " + message.
  explicit config_error(const std::string& message) : error("config error: " + message) {}
};

/// A file that cannot be read or written, or whose contents are malformed.
class file_error : public error {
 public:
  /// An error whose what() is "file error: " + message.
  explicit file_error(const std::string& message) : error("file error: " + message) {}
};

/// Non-finite values (NaN or Inf) where finite values are required.
class numeric_error : public error {
 public:
  /// An error whose what() is "numeric error: " + message.
  explicit numeric_error(const std::string& message) : error("numeric error: " + message) {}
};

/// Bad arguments other than shapes (for example a token id outside the vocabulary).
class argument_error : public error {
 public:
  /// An error whose what() is "argument error: " + message.
  explicit argument_error(const std::string& message) : error("argument error: " + message) {}
};

}  // namespace tokenformer

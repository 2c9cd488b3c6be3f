// tokenformer/core/span.hpp: Span, a caller's array with its length, and checked size products.
//
// The public calls that read a caller's memory (token ids, targets, prompts) take a Span, so the
// array comes with its length and the library checks it against the sizes it is asked to use
// (B*T ids for B sequences of T) instead of reading past its end. A Span converts implicitly from a
// std::vector, a std::array or a C array; (pointer, size) makes
// one from anything else. Sizes are products of caller-given numbers: checked_product multiplies
// with an overflow check, so B = 2^62, T = 4 is an error instead of a wrapped size.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/error.hpp"

namespace tokenformer {

/// a · b for sizes: throws argument_error naming `what` when either is negative or the product
/// does not fit index_t.
inline index_t checked_product(index_t a, index_t b, const char* what) {
  if (a < 0 || b < 0) throw argument_error(std::string(what) + ": negative size " + std::to_string(a < 0 ? a : b));
  if (a != 0 && b > std::numeric_limits<index_t>::max() / a)
    throw argument_error(std::string(what) + ": " + std::to_string(a) + " x " + std::to_string(b) +
                         " overflows the index type");
  return a * b;
}

/// The product of `sizes`, each checked as in checked_product.
inline index_t checked_product(std::initializer_list<index_t> sizes, const char* what) {
  index_t n = 1;
  for (index_t s : sizes) n = checked_product(n, s, what);
  return n;
}

/// A borrowed contiguous array of `size()` elements of T (T const for read-only), in host memory.
/// It never owns or frees memory; the caller keeps the array alive while the call that takes the
/// span runs.
template <class T>
class Span {
 public:
  using element_type = T;                     ///< T, const for a read-only span
  using value_type = std::remove_const_t<T>;  ///< T without const

  /// An empty span.
  constexpr Span() = default;
  /// `size` elements from `data`. Throws argument_error for a negative size or a null pointer with
  /// a non-zero size.
  Span(T* data, index_t size) : data_(data), size_(size) {
    if (size < 0) throw argument_error("a span cannot have a negative size (" + std::to_string(size) + ")");
    if (data == nullptr && size > 0)
      throw argument_error("a span of " + std::to_string(size) + " elements has no data");
  }
  /// The elements of a vector (read-only spans from a const vector).
  template <class U, class A, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  Span(std::vector<U, A>& v) : data_(v.data()), size_(static_cast<index_t>(v.size())) {}
  /// The elements of a const vector (read-only spans only).
  template <class U, class A, class = std::enable_if_t<std::is_convertible<const U (*)[], T (*)[]>::value>>
  Span(const std::vector<U, A>& v) : data_(v.data()), size_(static_cast<index_t>(v.size())) {}
  /// The elements of a std::array.
  template <class U, std::size_t N, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  constexpr Span(std::array<U, N>& a) : data_(a.data()), size_(static_cast<index_t>(N)) {}
  /// The elements of a const std::array (read-only spans only).
  template <class U, std::size_t N, class = std::enable_if_t<std::is_convertible<const U (*)[], T (*)[]>::value>>
  constexpr Span(const std::array<U, N>& a) : data_(a.data()), size_(static_cast<index_t>(N)) {}
  /// The elements of a C array.
  template <class U, std::size_t N, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  constexpr Span(U (&a)[N]) : data_(a), size_(static_cast<index_t>(N)) {}
  /// A read-only span converts from a mutable one.
  template <class U,
            class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value && !std::is_same<U, T>::value>>
  constexpr Span(Span<U> other) : data_(other.data()), size_(other.size()) {}

  /// The first element (nullptr for an empty span made without data).
  constexpr T* data() const { return data_; }
  /// The number of elements.
  constexpr index_t size() const { return size_; }
  /// True when the span has no elements.
  constexpr bool empty() const { return size_ == 0; }
  /// Element i, unchecked (0 <= i < size()).
  constexpr T& operator[](index_t i) const { return data_[i]; }
  /// Iteration over the elements.
  constexpr T* begin() const { return data_; }
  /// One past the last element.
  constexpr T* end() const { return data_ + size_; }
  /// Elements [offset, offset + count); throws argument_error when they are not all in the span.
  Span subspan(index_t offset, index_t count) const {
    if (offset < 0 || count < 0 || offset > size_ || count > size_ - offset)
      throw argument_error("elements [" + std::to_string(offset) + ", " + std::to_string(offset) + " + " +
                           std::to_string(count) + ") are outside a span of " + std::to_string(size_));
    return Span(data_ + offset, count);
  }

 private:
  T* data_ = nullptr;
  index_t size_ = 0;
};

/// Throws shape_error naming `what` unless `span` holds exactly B*T elements (B, T > 0 and their
/// product checked for overflow); returns B*T.
template <class T>
index_t expect_sequences(Span<T> span, index_t B, index_t T_len, const char* what) {
  if (B <= 0 || T_len <= 0)
    throw shape_error(std::string(what) + " needs B > 0 sequences of T > 0 positions, got B = " + std::to_string(B) +
                      ", T = " + std::to_string(T_len));
  const index_t M = checked_product(B, T_len, what);
  if (span.size() != M)
    throw shape_error(std::string(what) + ": got " + std::to_string(span.size()) +
                      " ids for B*T = " + std::to_string(B) + "*" + std::to_string(T_len) + " = " + std::to_string(M));
  return M;
}

}  // namespace tokenformer

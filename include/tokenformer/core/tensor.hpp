// tokenformer/core/tensor.hpp: Tensor (owning) and TensorView (borrowing), row-major, on a device.
//
// A Tensor<T, Device> owns `capacity()` elements of 64-byte aligned contiguous memory on its device and
// uses the first `size()` of them for its current shape, row-major. Like std::vector it can reserve
// more capacity than it uses, so a parameter-token matrix can grow by rows without moving.
// A TensorView<T, Device> borrows memory (it never frees it); TensorView<const T, Device> is the
// read-only form, and every Tensor converts to both.
// On the CPU, `matrix()` returns an Eigen::Map over the tensor seen as [rows, cols], where cols is the
// last dimension and rows the product of the others: data goes in and out of Eigen without copies.
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/eigen.hpp"
#include "tokenformer/core/error.hpp"

namespace tokenformer {

///@{
/// Row-major Eigen matrix types used throughout the library: a matrix, and maps (no copy) of mutable
/// and of const memory, as Tensor::matrix() returns.
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned>;
///@}

/// The shape of a tensor: up to four dimensions, each >= 0.
class Shape {
 public:
  static constexpr int max_rank = 4;  ///< a tensor has at most four dimensions

  Shape() = default;
  /// The shape of these dimensions; throws shape_error for more than four, a negative one, or an
  /// element count that would overflow index_t.
  Shape(std::initializer_list<index_t> dims) {
    if (dims.size() > static_cast<std::size_t>(max_rank)) throw shape_error("a tensor has at most 4 dimensions");
    for (index_t d : dims) push_back(d);
  }

  int rank() const { return rank_; }                                              ///< number of dimensions
  index_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }  ///< dimension i (unchecked)
  /// Number of elements (1 for a rank-0 shape).
  index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  /// Last dimension (1 for rank 0).
  index_t cols() const { return rank_ == 0 ? 1 : dims_[static_cast<std::size_t>(rank_ - 1)]; }
  /// Product of all dimensions but the last.
  index_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }

  /// Appends dimension `d`; throws shape_error for a fifth dimension, a negative one, or a shape
  /// whose element count would overflow index_t.
  void push_back(index_t d) {
    if (rank_ == max_rank) throw shape_error("a tensor has at most 4 dimensions");
    if (d < 0) throw shape_error("negative dimension " + std::to_string(d));
    const index_t n = numel();
    if (n != 0 && d > std::numeric_limits<index_t>::max() / n)
      throw shape_error("a tensor of shape " + str() + " x " + std::to_string(d) + " has too many elements");
    dims_[static_cast<std::size_t>(rank_++)] = d;
  }
  /// Returns a copy with dimension `i` replaced by `d`.
  Shape with(int i, index_t d) const {
    if (i < 0 || i >= rank_) throw shape_error("dimension index out of range");
    Shape s;  // rebuilt through push_back, which checks d and the element count
    for (int j = 0; j < rank_; ++j) s.push_back(j == i ? d : dims_[static_cast<std::size_t>(j)]);
    return s;
  }

  /// The same rank and the same dimensions.
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[static_cast<std::size_t>(i)] != b.dims_[static_cast<std::size_t>(i)]) return false;
    return true;
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }  ///< not ==

  /// "[2, 3, 4]"
  std::string str() const {
    std::ostringstream os;
    os << '[';
    for (int i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[static_cast<std::size_t>(i)];
    os << ']';
    return os.str();
  }

 private:
  std::array<index_t, max_rank> dims_{};
  int rank_ = 0;
};

/// Throws shape_error naming `what` unless `actual == expected`. (`what` is a C string so that the
/// check builds no std::string unless it fails: a decode step allocates nothing.)
inline void expect_shape(const Shape& actual, const Shape& expected, const char* what) {
  if (actual != expected)
    throw shape_error(std::string(what) + " has shape " + actual.str() + ", expected " + expected.str());
}
/// Throws shape_error naming `what` unless `actual == expected`.
inline void expect_shape(const Shape& actual, const Shape& expected, const std::string& what) {
  expect_shape(actual, expected, what.c_str());
}

/// A borrowed, contiguous, row-major tensor on `Device`. T may be const for read-only views.
template <class T, class Device = cpu>
class TensorView {
 public:
  using value_type = std::remove_const_t<T>;  ///< the element type without const

  TensorView() = default;
  /// A view of the `shape.numel()` elements at `data`, which the caller keeps alive.
  TensorView(T* data, Shape shape) : data_(data), shape_(shape) {}
  /// A read-only view converts from a mutable one.
  template <class U, class = std::enable_if_t<std::is_const<T>::value && std::is_same<const U, T>::value>>
  TensorView(const TensorView<U, Device>& other) : data_(other.data()), shape_(other.shape()) {}

  T* data() const { return data_; }                ///< the first element
  const Shape& shape() const { return shape_; }    ///< the dimensions
  int rank() const { return shape_.rank(); }       ///< number of dimensions
  index_t dim(int i) const { return shape_[i]; }   ///< dimension i (unchecked)
  index_t size() const { return shape_.numel(); }  ///< number of elements
  index_t rows() const { return shape_.rows(); }   ///< product of all dimensions but the last
  index_t cols() const { return shape_.cols(); }   ///< the last dimension (1 for rank 0)

  /// Rows [begin, end) of the tensor seen as a [rows, cols] matrix.
  TensorView row_range(index_t begin, index_t end) const {
    if (begin < 0 || end < begin || end > rows()) throw shape_error("row range out of bounds");
    return TensorView(data_ + begin * cols(), Shape{end - begin, cols()});
  }
  /// The same memory seen with another shape of equal element count.
  TensorView reshaped(Shape s) const {
    if (s.numel() != size()) throw shape_error("cannot reshape " + shape_.str() + " to " + s.str());
    return TensorView(data_, s);
  }

  /// Eigen view of the tensor as [rows, cols] (host-accessible devices only).
  Eigen::Map<std::conditional_t<std::is_const<T>::value, const RowMatrix<value_type>, RowMatrix<value_type>>> matrix()
      const {
    static_assert(device_memory<Device>::host_accessible, "matrix() needs host-accessible memory");
    return {data_, rows(), cols()};
  }

 private:
  T* data_ = nullptr;
  Shape shape_;
};

/// An owning, contiguous, row-major tensor on `Device` with std::vector-like capacity.
template <class T, class Device = cpu>
class Tensor {
  static_assert(std::is_trivially_copyable<T>::value, "Tensor elements must be trivially copyable");
  static_assert(!std::is_const<T>::value, "Tensor owns mutable memory; use TensorView<const T> for read-only");

 public:
  using value_type = T;        ///< the element type
  using device_type = Device;  ///< the device tag the memory is on

  /// An empty tensor: shape [0], no memory.
  Tensor() = default;
  /// A tensor of the given shape, zero-filled.
  explicit Tensor(Shape shape, Device device = {}) : device_(std::move(device)) { resize(shape); }
  /// A tensor of these dimensions, zero-filled, on a default-constructed device.
  Tensor(std::initializer_list<index_t> dims) : Tensor(Shape(dims)) {}

  /// A deep copy on other's device, with capacity for other's elements only.
  Tensor(const Tensor& other) : device_(other.device_) {
    reserve(other.size());
    shape_ = other.shape_;
    memory::copy(device_, data_, other.data_, bytes(other.size()));
  }
  /// Takes other's memory without copying; other is left empty (shape [0], no memory).
  Tensor(Tensor&& other) noexcept
      : device_(std::move(other.device_)),
        data_(std::exchange(other.data_, nullptr)),
        capacity_(std::exchange(other.capacity_, 0)),
        shape_(std::exchange(other.shape_, Shape{0})) {}
  /// Replaces the contents, shape and device with a deep copy of other's.
  Tensor& operator=(const Tensor& other) {
    if (this != &other) {
      Tensor copy(other);
      swap(copy);
    }
    return *this;
  }
  /// Frees this tensor's memory and takes other's; other is left empty.
  Tensor& operator=(Tensor&& other) noexcept {
    Tensor moved(std::move(other));
    swap(moved);
    return *this;
  }
  ~Tensor() { memory::deallocate(device_, data_); }

  /// Exchanges memory, shape and device with other, without copying elements.
  void swap(Tensor& other) noexcept {
    std::swap(device_, other.device_);
    std::swap(data_, other.data_);
    std::swap(capacity_, other.capacity_);
    std::swap(shape_, other.shape_);
  }

  T* data() { return data_; }                       ///< the first element (nullptr without memory)
  const T* data() const { return data_; }           ///< the first element (nullptr without memory)
  const Shape& shape() const { return shape_; }     ///< the dimensions
  int rank() const { return shape_.rank(); }        ///< number of dimensions
  index_t dim(int i) const { return shape_[i]; }    ///< dimension i (unchecked)
  index_t size() const { return shape_.numel(); }   ///< number of elements in use
  index_t rows() const { return shape_.rows(); }    ///< product of all dimensions but the last
  index_t cols() const { return shape_.cols(); }    ///< the last dimension (1 for rank 0)
  index_t capacity() const { return capacity_; }    ///< number of elements allocated (>= size())
  const Device& device() const { return device_; }  ///< the device the memory is on

  /// Makes room for `elements` elements, keeping the contents. Moves the data only when growing.
  void reserve(index_t elements) {
    if (elements < 0) throw shape_error("negative capacity");
    if (elements <= capacity_) return;
    if (static_cast<std::size_t>(elements) > std::numeric_limits<std::size_t>::max() / sizeof(T))
      throw shape_error("a tensor of " + std::to_string(elements) + " elements does not fit the address space");
    // Only the used elements are copied; the rest stays untouched until resize() zeroes what it uses.
    T* fresh = static_cast<T*>(memory::allocate(device_, bytes(elements)));
    if (data_ != nullptr) memory::copy(device_, fresh, data_, bytes(size()));
    memory::deallocate(device_, data_);
    data_ = fresh;
    capacity_ = elements;
  }

  /// Sets a new shape. The first min(old, new) elements keep their values (useful when only the
  /// leading dimension changes); new elements are zero. Reallocates only if capacity is exceeded.
  void resize(Shape shape) {
    const index_t old_size = data_ == nullptr ? 0 : size();
    reserve(shape.numel());
    if (shape.numel() > old_size) memory::zero(device_, data_ + old_size, bytes(shape.numel() - old_size));
    shape_ = shape;
  }

  /// Sets every element to zero.
  void set_zero() { memory::zero(device_, data_, bytes(size())); }

  /// Host-side element access (host-accessible devices only).
  T& operator[](index_t i) {
    static_assert(memory::host_accessible, "element access needs host-accessible memory");
    return data_[i];
  }
  /// Host-side read access (host-accessible devices only).
  const T& operator[](index_t i) const {
    static_assert(memory::host_accessible, "element access needs host-accessible memory");
    return data_[i];
  }

  TensorView<T, Device> view() { return {data_, shape_}; }              ///< a view of the whole tensor
  TensorView<const T, Device> view() const { return {data_, shape_}; }  ///< a read-only view of the whole tensor
  operator TensorView<T, Device>() { return view(); }                   ///< view()
  operator TensorView<const T, Device>() const { return view(); }       ///< view() const

  /// Eigen view of the tensor as [rows, cols] (host-accessible devices only).
  MatrixMap<T> matrix() {
    static_assert(memory::host_accessible, "matrix() needs host-accessible memory");
    return {data_, rows(), cols()};
  }
  /// Read-only Eigen view of the tensor as [rows, cols] (host-accessible devices only).
  ConstMatrixMap<T> matrix() const {
    static_assert(memory::host_accessible, "matrix() needs host-accessible memory");
    return {data_, rows(), cols()};
  }

  /// Copies `size()` elements from host memory into the tensor.
  void copy_from_host(const T* host) { memory::copy_from_host(device_, data_, host, bytes(size())); }
  /// Copies the tensor's `size()` elements into host memory.
  void copy_to_host(T* host) const { memory::copy_to_host(device_, host, data_, bytes(size())); }

 private:
  using memory = device_memory<Device>;
  static std::size_t bytes(index_t elements) { return static_cast<std::size_t>(elements) * sizeof(T); }

  Device device_{};
  T* data_ = nullptr;
  index_t capacity_ = 0;
  Shape shape_{0};  // an empty tensor has no elements (a rank-0 shape would count one)
};

}  // namespace tokenformer

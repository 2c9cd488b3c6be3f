// tokenformer/core/device.hpp: device tag types.
//
// A device is a small value type. Kernels are overloaded on it (`kernels::gemm(cpu{}, ...)`), so the
// compiler picks the implementation; layers are templated on the device type and never branch on it.
// Each device provides `device_memory<Device>` (allocate, free, copy, fill) used by Tensor.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "tokenformer/core/config.hpp"

namespace tokenformer {

/// The host CPU. Stateless: kernels use Eigen, xsimd and OpenMP.
struct cpu {
  static constexpr const char* name() { return "cpu"; }  ///< the device's name, "cpu"
};

/// Memory operations of a device. Specialized for every device type.
template <class Device>
struct device_memory;

namespace detail {
/// Host memory, shared by the host devices (cpu, reference).
template <class Device>
struct host_memory {
  /// Alignment of every allocation: one AVX-512 register / cache line.
  static constexpr std::size_t alignment = 64;

  /// Returns `bytes` bytes aligned to `alignment`, or throws std::bad_alloc. `bytes` may be 0.
  static void* allocate(const Device&, std::size_t bytes) {
    if (bytes == 0) return nullptr;
    const std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    void* p = std::aligned_alloc(alignment, rounded);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  static void deallocate(const Device&, void* p) noexcept { std::free(p); }
  /// Copies `bytes` bytes between two allocations of this device (they may not overlap).
  static void copy(const Device&, void* dst, const void* src, std::size_t bytes) {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  /// Copies between this device's memory and host memory, in either direction.
  static void copy_to_host(const Device&, void* host, const void* src, std::size_t bytes) {
    if (bytes != 0) std::memcpy(host, src, bytes);
  }
  static void copy_from_host(const Device&, void* dst, const void* host, std::size_t bytes) {
    if (bytes != 0) std::memcpy(dst, host, bytes);
  }
  /// Sets `bytes` bytes to zero.
  static void zero(const Device&, void* dst, std::size_t bytes) {
    if (bytes != 0) std::memset(dst, 0, bytes);
  }
  static constexpr bool host_accessible = true;
};
}  // namespace detail

template <>
struct device_memory<cpu> : detail::host_memory<cpu> {};

/// The plain reference kernels (kernels/reference/) as a device: host memory, every kernel a
/// double-accumulating loop. Slow, and the specification: tests run each kernel, layer and model on
/// `reference` and compare the fast devices against it (kernels/reference/device.hpp).
struct reference {
  static constexpr const char* name() { return "reference"; }  ///< the device's name, "reference"
};

template <>
struct device_memory<reference> : detail::host_memory<reference> {};

/// True for the device types the library knows.
template <class Device>
struct is_device : std::false_type {};
template <>
struct is_device<cpu> : std::true_type {};
template <>
struct is_device<reference> : std::true_type {};

}  // namespace tokenformer

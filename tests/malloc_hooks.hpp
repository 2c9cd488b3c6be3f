// tests/malloc_hooks.hpp: one interposer of the malloc family for the tests that watch allocations.
//
// glibc lets a program define malloc and friends; the definitions below forward to glibc's own
// (__libc_*) after asking malloc_hooks::allow, which counts requests while `counting`, records the
// largest single request while `watching`, and makes the request fail (null; operator new then
// throws std::bad_alloc) when an armed countdown reaches it. The tests include this header; the
// functions are defined once per program, by malloc_hooks.cpp (tests/CMakeLists.txt links it into
// every test program that includes the header). Under AddressSanitizer, which
// replaces malloc itself, or without glibc, nothing is interposed: TOKENFORMER_MALLOC_HOOKS is 0 and
// the tests say they did not check.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define TOKENFORMER_MALLOC_HOOKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TOKENFORMER_MALLOC_HOOKS 0
#endif
#endif
#if !defined(TOKENFORMER_MALLOC_HOOKS)
#if defined(__GLIBC__)
#define TOKENFORMER_MALLOC_HOOKS 1
#else
#define TOKENFORMER_MALLOC_HOOKS 0
#endif
#endif

namespace malloc_hooks {

/// Whether the hooks are installed in this build.
inline constexpr bool available = TOKENFORMER_MALLOC_HOOKS != 0;

inline std::atomic<bool> counting{false};            ///< count requests in `allocations`
inline std::atomic<long> allocations{0};             ///< requests counted
inline std::atomic<bool> watching{false};            ///< record the largest request
inline std::atomic<std::size_t> largest_request{0};  ///< the largest request seen while watching
inline std::atomic<long> fail_countdown{-1};         ///< n >= 0: the request after n more fails; -1: none
inline std::atomic<long> failures{0};                ///< requests made to fail

/// Called for every request of `bytes`; false makes it fail.
inline bool allow(std::size_t bytes) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (watching.load(std::memory_order_relaxed)) {
    std::size_t seen = largest_request.load(std::memory_order_relaxed);
    while (bytes > seen && !largest_request.compare_exchange_weak(seen, bytes, std::memory_order_relaxed)) {
    }
  }
  const long n = fail_countdown.load(std::memory_order_relaxed);
  if (n < 0) return true;
  fail_countdown.store(n - 1, std::memory_order_relaxed);
  if (n != 0) return true;
  failures.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace malloc_hooks

#if TOKENFORMER_MALLOC_HOOKS && defined(TOKENFORMER_MALLOC_HOOKS_DEFINE)
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
void* malloc(std::size_t size) noexcept { return malloc_hooks::allow(size) ? __libc_malloc(size) : nullptr; }
void* calloc(std::size_t count, std::size_t size) noexcept {
  return malloc_hooks::allow(count * size) ? __libc_calloc(count, size) : nullptr;
}
void* realloc(void* p, std::size_t size) noexcept {
  return malloc_hooks::allow(size) ? __libc_realloc(p, size) : nullptr;
}
void* memalign(std::size_t alignment, std::size_t size) noexcept {
  return malloc_hooks::allow(size) ? __libc_memalign(alignment, size) : nullptr;
}
void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  return malloc_hooks::allow(size) ? __libc_memalign(alignment, size) : nullptr;
}
int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (!malloc_hooks::allow(size)) return ENOMEM;
  void* p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) noexcept { __libc_free(p); }
}
#endif

// tokenformer/core/cuda.cuh: the CUDA device (compiled only by nvcc).
//
// `cuda` is a device tag like `cpu`, so `Tensor<float, cuda>`, `Pattention<float, cuda>` and
// `LanguageModel<Config, cuda>` are the CPU templates on the GPU. A tag holds a shared
// cuda_context: the GPU it runs on, one stream that every kernel, copy, allocation and cuBLAS call
// of that context is ordered on, a cuBLAS handle bound to that stream, and the GEMM precision. A
// default-constructed tag uses a process-wide context on GPU 0, created on first use.
//
// Memory is plain device memory from cudaMallocAsync on the context's stream (never managed
// memory). Copies to the host wait for the stream; everything else is asynchronous. Every failing
// CUDA or cuBLAS call throws tokenformer::cuda_error naming the call, the status and the place.
//
// Kernels launch on the calling thread's current CUDA device, which creating a context sets to the
// context's GPU. With several GPUs, call cudaSetDevice(context.device_index()) before working with
// another context's tensors. A tag's first use (which creates the default context) is not
// thread-safe; create the tags before sharing them between threads.
#pragma once

#if !defined(__CUDACC__)
#error "tokenformer/core/cuda.cuh needs nvcc: include tokenformer from a .cu file to use the cuda device"
#endif

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <string>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"

namespace tokenformer {

/// A CUDA runtime or cuBLAS call that failed, or a GPU that is missing.
class cuda_error : public error {
 public:
  /// An error whose what() is "cuda error: " + message.
  explicit cuda_error(const std::string& message) : error("cuda error: " + message) {}
};

namespace detail {

inline void cuda_check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  throw cuda_error(std::string(call) + " failed with " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) +
                   ") at " + file + ":" + std::to_string(line));
}

inline const char* cublas_status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "an unknown cuBLAS status";
  }
}

inline void cublas_check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw cuda_error(std::string(call) + " failed with " + cublas_status_name(status) + " at " + file + ":" +
                   std::to_string(line));
}

}  // namespace detail

/// Number of usable CUDA GPUs (0 when there is none or no driver: never throws).
inline int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

/// How cuBLAS multiplies float matrices. Storage stays float in every mode; only the multiply's
/// inputs are rounded (TF32: 10-bit mantissa, BF16: 7-bit) and products accumulate in float.
enum class GemmPrecision { fp32, tf32, bf16 };

/// One GPU, one stream, one cuBLAS handle. Not copyable; share it through the `cuda` tag.
class cuda_context {
 public:
  /// Makes GPU `device_index` current and creates a non-blocking stream and a cuBLAS handle on it.
  /// Throws cuda_error when there is no such GPU or a CUDA or cuBLAS call fails.
  explicit cuda_context(int device_index = 0, GemmPrecision precision = GemmPrecision::fp32)
      : device_index_(device_index), precision_(precision) {
    const int count = cuda_device_count();
    if (device_index < 0 || device_index >= count)
      throw cuda_error("GPU " + std::to_string(device_index) + " was asked for, but " + std::to_string(count) +
                       " CUDA device(s) are available");
    TOKENFORMER_CUDA_CHECK(cudaSetDevice(device_index_));
    TOKENFORMER_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    const cublasStatus_t status = cublasCreate(&cublas_);
    if (status != CUBLAS_STATUS_SUCCESS) {
      cudaStreamDestroy(stream_);
      TOKENFORMER_CUBLAS_CHECK(status);
    }
    TOKENFORMER_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  }
  cuda_context(const cuda_context&) = delete;
  cuda_context& operator=(const cuda_context&) = delete;
  ~cuda_context() {
    // Errors here (the runtime may already be shutting down at exit) cannot be reported.
    cudaStreamSynchronize(stream_);
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  int device_index() const { return device_index_; }           ///< the GPU, as cudaSetDevice numbers it
  cudaStream_t stream() const { return stream_; }              ///< the stream all of the context's work is on
  cublasHandle_t cublas() const { return cublas_; }            ///< the cuBLAS handle, bound to stream()
  GemmPrecision gemm_precision() const { return precision_; }  ///< how float GEMMs multiply
  void set_gemm_precision(GemmPrecision precision) { precision_ = precision; }  ///< for GEMMs issued from now on

  /// Waits until all work queued on the stream has finished; throws if any of it failed.
  void synchronize() const { TOKENFORMER_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  int device_index_;
  GemmPrecision precision_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

/// The CUDA device tag. Copies share one context.
class cuda {
 public:
  /// The process-wide default context: GPU 0, float GEMMs in full FP32 (created on first use).
  cuda() = default;
  /// A device on `context`, shared with every copy; throws argument_error for a null context.
  explicit cuda(std::shared_ptr<cuda_context> context) : context_(std::move(context)) {
    if (!context_) throw argument_error("a cuda device needs a context");
  }
  /// A device with its own stream on GPU `device_index`.
  static cuda create(int device_index = 0, GemmPrecision precision = GemmPrecision::fp32) {
    return cuda(std::make_shared<cuda_context>(device_index, precision));
  }

  static constexpr const char* name() { return "cuda"; }  ///< the device's name, "cuda"
  /// The device's context (the default one is created here on first use).
  cuda_context& context() const {
    if (!context_) context_ = default_context();
    return *context_;
  }
  cudaStream_t stream() const { return context().stream(); }  ///< the context's stream
  void synchronize() const { context().synchronize(); }       ///< cuda_context::synchronize()

 private:
  static std::shared_ptr<cuda_context> default_context() {
    static const std::shared_ptr<cuda_context> context = std::make_shared<cuda_context>(0);
    return context;
  }
  mutable std::shared_ptr<cuda_context> context_;
};

/// GPU memory: stream-ordered allocations and copies on the device's stream. Every failing CUDA call
/// throws cuda_error.
template <>
struct device_memory<cuda> {
  static constexpr std::size_t alignment = 256;  ///< what cudaMalloc guarantees

  /// Returns `bytes` bytes from cudaMallocAsync on the device's stream (nullptr for 0 bytes).
  static void* allocate(const cuda& device, std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    TOKENFORMER_CUDA_CHECK(cudaMallocAsync(&p, bytes, device.stream()));
    return p;
  }
  /// Frees `p` (from allocate, or nullptr) once the stream's earlier work is done; never throws.
  static void deallocate(const cuda& device, void* p) noexcept {
    if (p != nullptr) (void)cudaFreeAsync(p, device.stream());
  }
  /// Copies `bytes` bytes between two allocations of the device, asynchronously on its stream.
  static void copy(const cuda& device, void* dst, const void* src, std::size_t bytes) {
    if (bytes != 0) TOKENFORMER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, device.stream()));
  }
  /// Waits for the stream, so the host data is ready when this returns.
  static void copy_to_host(const cuda& device, void* host, const void* src, std::size_t bytes) {
    if (bytes == 0) return;
    TOKENFORMER_CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, device.stream()));
    device.synchronize();
  }
  /// The host buffer may be reused as soon as this returns (pageable memory is staged by CUDA).
  static void copy_from_host(const cuda& device, void* dst, const void* host, std::size_t bytes) {
    if (bytes != 0) TOKENFORMER_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, device.stream()));
  }
  /// Sets `bytes` bytes to zero, asynchronously on the stream.
  static void zero(const cuda& device, void* dst, std::size_t bytes) {
    if (bytes != 0) TOKENFORMER_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, device.stream()));
  }
  static constexpr bool host_accessible = false;  ///< the host cannot dereference device pointers
};

template <>
struct is_device<cuda> : std::true_type {};

}  // namespace tokenformer

// tokenformer/distributed/nccl.cuh: data-parallel ranks with one GPU each (compiled only by nvcc;
// CMake target tokenformer::nccl: NCCL from the CUDA toolkit or Debian's libnccl-dev, and MPI).
//
// Gradients in device memory are summed by NCCL (ncclAllReduce in place, on the model's stream, so
// the kernels queued after it see the sums without a host wait); host values (the loss, the gradient
// norm, checksums, flags, the NCCL id itself) go through the MpiProcessGroup it is built on. The
// Trainer needs nothing else: Trainer<LanguageModel<Config, cuda>>(model, corpus, options, nccl).
//
//   tokenformer::MpiSession mpi(&argc, &argv);
//   tokenformer::MpiProcessGroup ranks;
//   tokenformer::cuda gpu = tokenformer::cuda::create(local_rank);  // one GPU per rank
//   tokenformer::NcclProcessGroup group(ranks, gpu);
//
// NCCL's ring and tree all-reduces compute each sum once and send it to every rank, so every rank
// gets the same bits. Built and compiled in CI; it has not run here (no machine with several GPUs
// has been lent): tests/mpi/test_nccl.cu is the test to run where one is.
#pragma once

#if !defined(__CUDACC__)
#error "tokenformer/distributed/nccl.cuh needs nvcc"
#endif

#include <nccl.h>

#include <cstddef>
#include <string>
#include <utility>

#include "tokenformer/core/cuda.cuh"
#include "tokenformer/distributed/mpi.hpp"

namespace tokenformer {

/// A failed NCCL call.
class nccl_error : public error {
 public:
  /// An error whose what() is "NCCL error: " + message.
  explicit nccl_error(const std::string& message) : error("NCCL error: " + message) {}
};

/// The ranks of an MpiProcessGroup, each with one GPU, summing device memory with NCCL (see the
/// header comment).
class NcclProcessGroup final : public ProcessGroup {
 public:
  /// Joins the NCCL communicator of `host`'s ranks on the GPU of `device` (rank 0 creates the NCCL
  /// id, MPI broadcasts it). Collective. `host` must outlive this group; every rank must use a
  /// different GPU (NCCL refuses two ranks on one GPU).
  NcclProcessGroup(MpiProcessGroup& host, cuda device) : host_(host), device_(std::move(device)) {
    ncclUniqueId id{};
    if (host_.is_main()) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_.broadcast(&id, sizeof id, 0);
    TOKENFORMER_CUDA_CHECK(cudaSetDevice(device_.context().device_index()));
    check(ncclCommInitRank(&comm_, host_.size(), id, host_.rank()), "ncclCommInitRank");
  }
  NcclProcessGroup(const NcclProcessGroup&) = delete;             ///< owns a communicator
  NcclProcessGroup& operator=(const NcclProcessGroup&) = delete;  ///< owns a communicator
  /// Waits for the stream and destroys the communicator.
  ~NcclProcessGroup() override {
    if (comm_ == nullptr) return;
    (void)cudaStreamSynchronize(device_.stream());
    ncclCommDestroy(comm_);
  }

  int rank() const override { return host_.rank(); }  ///< the MPI rank
  int size() const override { return host_.size(); }  ///< the number of MPI ranks
  /// Device memory (the GPU model's gradients) is summed by NCCL.
  bool accepts_device_memory() const override { return true; }

  /// Device memory: ncclAllReduce, then a wait for the stream; host memory: MPI.
  void all_reduce_sum(float* data, std::size_t count) override { sum_now(data, count, ncclFloat); }
  /// The same for doubles.
  void all_reduce_sum(double* data, std::size_t count) override { sum_now(data, count, ncclDouble); }
  /// Device memory: ncclAllReduce queued on the device's stream (what is queued after it sees the
  /// sums); host memory: MPI_Iallreduce.
  void start_all_reduce_sum(float* data, std::size_t count) override { start(data, count, ncclFloat); }
  /// The same for doubles.
  void start_all_reduce_sum(double* data, std::size_t count) override { start(data, count, ncclDouble); }
  /// Waits for the host all-reduces (the device ones are ordered on the stream).
  void wait_all() override { host_.wait_all(); }
  void progress() override { host_.progress(); }  ///< the host all-reduces'
  /// Host memory only, through MPI.
  void broadcast(void* data, std::size_t bytes, int root) override { host_.broadcast(data, bytes, root); }
  void barrier() override { host_.barrier(); }  ///< MPI_Barrier
  /// "NCCL <version>, N ranks over MPI".
  std::string description() const override {
    int version = 0;
    ncclGetVersion(&version);
    return "NCCL " + std::to_string(version) + ", " + std::to_string(size()) + " ranks over MPI";
  }

 private:
  static void check(ncclResult_t result, const char* what) {
    if (result != ncclSuccess) throw nccl_error(std::string(what) + ": " + ncclGetErrorString(result));
  }
  static bool on_device(const void* data) {
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, data) != cudaSuccess) {
      (void)cudaGetLastError();  // a host pointer the runtime does not know: not an error to keep
      return false;
    }
    return attributes.type == cudaMemoryTypeDevice;
  }
  template <class T>
  void sum_now(T* data, std::size_t count, ncclDataType_t type) {
    if (!on_device(data)) return host_.all_reduce_sum(data, count);
    check(ncclAllReduce(data, data, count, type, ncclSum, comm_, device_.stream()), "ncclAllReduce");
    device_.synchronize();
  }
  template <class T>
  void start(T* data, std::size_t count, ncclDataType_t type) {
    if (!on_device(data)) return host_.start_all_reduce_sum(data, count);
    check(ncclAllReduce(data, data, count, type, ncclSum, comm_, device_.stream()), "ncclAllReduce");
  }

  MpiProcessGroup& host_;
  cuda device_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace tokenformer

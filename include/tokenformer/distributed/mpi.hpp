// tokenformer/distributed/mpi.hpp: the ProcessGroup of train/process_group.hpp over MPI, for
// data-parallel training across processes and machines (mpirun -np N ...). Needs the CMake target
// tokenformer::mpi (MPI's C bindings; Debian: libopenmpi-dev and openmpi-bin); the rest of the
// library never includes this header.
//
//   tokenformer::MpiSession mpi(argc, argv);   // MPI_Init_thread / MPI_Finalize
//   tokenformer::MpiProcessGroup group;         // MPI_COMM_WORLD, duplicated
//   tokenformer::Trainer<Model> trainer(model, corpus, options, group);
//
// Sums use MPI_Allreduce / MPI_Iallreduce in place. Every MPI implementation we know of (Open MPI's
// recursive doubling, ring and Rabenseifner algorithms, MPICH's) gives all ranks the same bits for a
// sum; the Trainer's tests check that the ranks' parameters stay bit-identical.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/train/process_group.hpp"

namespace tokenformer {

/// An error reported by an MPI call.
class mpi_error : public error {
 public:
  /// An error whose what() is "MPI error: " + message.
  explicit mpi_error(const std::string& message) : error("MPI error: " + message) {}
};

namespace detail {
inline void mpi_check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw mpi_error(std::string(what) + ": " + std::string(text, static_cast<std::size_t>(length)));
}
// MPI counts are int: larger arrays go in pieces.
constexpr std::size_t mpi_chunk = static_cast<std::size_t>(INT_MAX) / 2;
}  // namespace detail

/// MPI for the lifetime of this object: MPI_Init_thread (MPI_THREAD_FUNNELED: OpenMP threads compute,
/// the main thread communicates) unless MPI is already initialized, MPI_Finalize at the end if it
/// initialized it.
class MpiSession {
 public:
  /// Initializes MPI (argc/argv may be null). Throws mpi_error if it cannot.
  explicit MpiSession(int* argc = nullptr, char*** argv = nullptr) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    int provided = 0;
    detail::mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owner_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      owner_ = false;
      throw mpi_error("this MPI does not support MPI_THREAD_FUNNELED (OpenMP threads beside MPI calls)");
    }
  }
  MpiSession(const MpiSession&) = delete;             ///< one session
  MpiSession& operator=(const MpiSession&) = delete;  ///< one session
  /// MPI_Finalize, if this session initialized MPI. When an exception leaves its scope with several
  /// ranks, MPI_Abort instead: the other ranks may be waiting in a collective this rank will never
  /// reach, and would otherwise wait forever.
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!owner_ || finalized) return;
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (std::uncaught_exceptions() > 0 && size > 1) {
      std::fputs("tokenformer: an exception left the MPI session on one rank: aborting every rank\n", stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Finalize();
  }

  /// Whether this process was started by an MPI launcher (mpirun, mpiexec, srun): Open MPI's, PMI's
  /// or PMIx's environment variables are set. A program can then use MPI only when launched so.
  static bool launched_by_mpirun() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
      if (std::getenv(name) != nullptr) return true;
    return false;
  }
  /// Stops every rank (MPI_Abort with `code`): the way out when one rank fails while the others may
  /// be waiting in a collective.
  [[noreturn]] static void abort(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  bool owner_ = false;
};

/// The ranks of an MPI communicator (a duplicate of it, so our messages never mix with the caller's).
class MpiProcessGroup final : public ProcessGroup {
 public:
  /// The ranks of `communicator` (default MPI_COMM_WORLD); MPI must be initialized (MpiSession).
  explicit MpiProcessGroup(MPI_Comm communicator = MPI_COMM_WORLD) {
    detail::mpi_check(MPI_Comm_dup(communicator, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);  // errors on our communicator throw mpi_error
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  MpiProcessGroup(const MpiProcessGroup&) = delete;             ///< owns a communicator
  MpiProcessGroup& operator=(const MpiProcessGroup&) = delete;  ///< owns a communicator
  /// Waits for unfinished all-reduces and frees the communicator (unless MPI is finalized already, or
  /// an exception is unwinding: the other ranks may never join them, and MpiSession aborts).
  ~MpiProcessGroup() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || std::uncaught_exceptions() > 0) return;
    if (!requests_.empty()) MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }  ///< MPI_Comm_rank
  int size() const override { return size_; }  ///< MPI_Comm_size

  /// MPI_Allreduce(MPI_IN_PLACE, ..., MPI_SUM).
  void all_reduce_sum(float* data, std::size_t count) override { reduce(data, count, MPI_FLOAT); }
  /// MPI_Allreduce(MPI_IN_PLACE, ..., MPI_SUM).
  void all_reduce_sum(double* data, std::size_t count) override { reduce(data, count, MPI_DOUBLE); }
  /// MPI_Iallreduce(MPI_IN_PLACE, ..., MPI_SUM); finished by wait_all().
  void start_all_reduce_sum(float* data, std::size_t count) override { start(data, count, MPI_FLOAT); }
  /// MPI_Iallreduce(MPI_IN_PLACE, ..., MPI_SUM); finished by wait_all().
  void start_all_reduce_sum(double* data, std::size_t count) override { start(data, count, MPI_DOUBLE); }
  /// MPI_Waitall over the started all-reduces.
  void wait_all() override {
    if (requests_.empty()) return;
    const int code = MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    requests_.clear();
    detail::mpi_check(code, "MPI_Waitall");
  }
  /// MPI_Testall: lets the started all-reduces advance.
  void progress() override {
    if (requests_.empty()) return;
    int done = 0;
    detail::mpi_check(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE),
                      "MPI_Testall");
    if (done) requests_.clear();
  }
  /// MPI_Bcast of bytes.
  void broadcast(void* data, std::size_t bytes, int root) override {
    if (root < 0 || root >= size_)
      throw argument_error("broadcast: root " + std::to_string(root) + " of " + std::to_string(size_) + " ranks");
    auto* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < bytes;) {
      const std::size_t n = std::min(bytes - done, detail::mpi_chunk);
      detail::mpi_check(MPI_Bcast(p + done, static_cast<int>(n), MPI_BYTE, root, comm_), "MPI_Bcast");
      done += n;
    }
  }
  /// MPI_Barrier.
  void barrier() override { detail::mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }
  /// "MPI, N ranks, <library version>".
  std::string description() const override {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    std::string text(version, static_cast<std::size_t>(length));
    text = text.substr(0, text.find_first_of(",\n"));
    return "MPI, " + std::to_string(size_) + " ranks, " + text;
  }
  MPI_Comm communicator() const { return comm_; }  ///< the duplicated communicator

 private:
  template <class T>
  void reduce(T* data, std::size_t count, MPI_Datatype type) {
    for (std::size_t done = 0; done < count;) {
      const std::size_t n = std::min(count - done, detail::mpi_chunk);
      detail::mpi_check(MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(n), type, MPI_SUM, comm_),
                        "MPI_Allreduce");
      done += n;
    }
  }
  template <class T>
  void start(T* data, std::size_t count, MPI_Datatype type) {
    for (std::size_t done = 0; done < count;) {
      const std::size_t n = std::min(count - done, detail::mpi_chunk);
      MPI_Request request;
      detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, data + done, static_cast<int>(n), type, MPI_SUM, comm_, &request),
                        "MPI_Iallreduce");
      requests_.push_back(request);
      done += n;
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<MPI_Request> requests_;
};

/// MPI when this process was started by an MPI launcher (MpiSession::launched_by_mpirun), one
/// process otherwise: what a training program needs to run unchanged alone or under `mpirun -np N`.
class DataParallelLaunch {
 public:
  /// Initializes MPI and takes MPI_COMM_WORLD's ranks if launched by mpirun; else nothing.
  DataParallelLaunch(int* argc, char*** argv) {
    if (!MpiSession::launched_by_mpirun()) return;
    session_.emplace(argc, argv);
    ranks_.emplace();
  }
  /// The ranks (an MpiProcessGroup), or SingleProcess::instance().
  ProcessGroup& group() { return ranks_ ? static_cast<ProcessGroup&>(*ranks_) : SingleProcess::instance(); }

 private:
  std::optional<MpiSession> session_;  // declared first: finalized after the group is freed
  std::optional<MpiProcessGroup> ranks_;
};

}  // namespace tokenformer

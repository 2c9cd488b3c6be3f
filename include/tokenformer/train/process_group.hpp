// tokenformer/train/process_group.hpp: the processes of a data-parallel training run, as the Trainer
// sees them: this process's rank among size() ranks and the few collective operations that keep the
// ranks' models identical (sum over ranks, broadcast, barrier).
//
// The core knows only the interface and SingleProcess (one rank: every collective is the identity).
// The MPI implementation is distributed/mpi.hpp (CMake target tokenformer::mpi), so the header-only
// library never needs MPI.
//
// Contract of every implementation: collectives are called by every rank in the same order with the
// same sizes, and all_reduce_sum gives every rank the same bits (the Trainer relies on it to keep
// parameters bit-identical without a broadcast per step).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/error.hpp"

namespace tokenformer {

/// The ranks of a data-parallel run and their collectives (see the header comment).
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;  ///< this process, in [0, size())
  virtual int size() const = 0;  ///< number of processes, >= 1
  /// The main rank (0) prints progress and writes checkpoints, plots and summaries.
  bool is_main() const { return rank() == 0; }

  /// data[i] = Σ over ranks of data[i], in place, the same bits on every rank.
  virtual void all_reduce_sum(float* data, std::size_t count) = 0;
  /// The same for doubles.
  virtual void all_reduce_sum(double* data, std::size_t count) = 0;
  /// Whether the sums take device (GPU) memory too; false: host memory only.
  virtual bool accepts_device_memory() const { return false; }
  /// Starts all_reduce_sum(data, count) and returns at once where the implementation can overlap it
  /// with computation; `data` must stay untouched until wait_all(). The default does it now.
  virtual void start_all_reduce_sum(float* data, std::size_t count) { all_reduce_sum(data, count); }
  /// The same for doubles.
  virtual void start_all_reduce_sum(double* data, std::size_t count) { all_reduce_sum(data, count); }
  /// Waits for every started all-reduce to finish.
  virtual void wait_all() {}
  /// Lets started all-reduces progress (an implementation without a progress thread advances only
  /// inside its calls); cheap, called between pieces of computation.
  virtual void progress() {}
  /// Copies `bytes` bytes at `data` from rank `root` to every other rank.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  /// Returns when every rank has called it.
  virtual void barrier() = 0;
  /// A short description for logs ("1 process", "MPI, 2 ranks, Open MPI v4.1.4", ...).
  virtual std::string description() const = 0;

  /// True on every rank when `failed` is true on any rank: lets the ranks agree to stop together
  /// instead of one rank throwing while the others wait in a collective.
  bool any(bool failed) {
    double flag = failed ? 1.0 : 0.0;
    all_reduce_sum(&flag, 1);
    return flag != 0.0;
  }
};

/// One process: rank 0 of 1; every collective leaves the data as it is.
class SingleProcess final : public ProcessGroup {
 public:
  int rank() const override { return 0; }                                 ///< 0
  int size() const override { return 1; }                                 ///< 1
  void all_reduce_sum(float*, std::size_t) override {}                    ///< nothing to add
  void all_reduce_sum(double*, std::size_t) override {}                   ///< nothing to add
  void broadcast(void*, std::size_t, int root) override { check(root); }  ///< nothing to copy
  void barrier() override {}                                              ///< nothing to wait for
  std::string description() const override { return "1 process"; }        ///< "1 process"

  /// The process-wide instance (stateless), the Trainer's default group.
  static SingleProcess& instance() {
    static SingleProcess group;
    return group;
  }

 private:
  static void check(int root) {
    if (root != 0) throw argument_error("broadcast: root " + std::to_string(root) + " of a single process");
  }
};

/// The number of processes this job was started with, as an MPI launcher's environment says
/// (Open MPI's OMPI_COMM_WORLD_SIZE, MPICH's PMI_SIZE, Slurm's SLURM_NTASKS); 1 when there is none.
/// A program built without MPI checks it to refuse `mpirun -np N` instead of training N copies.
inline int launched_process_count() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (const char* value = std::getenv(name); value != nullptr) {
      const long count = std::strtol(value, nullptr, 10);
      if (count > 1) return static_cast<int>(count < 1 << 20 ? count : 1 << 20);
    }
  return 1;
}

/// A checksum of the parameter values (FNV-1a over their bits, in visiting order, names included):
/// equal on every rank exactly when the ranks hold bit-identical parameters.
template <class Model>
std::uint64_t parameter_checksum(Model& model) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  auto mix = [&hash](const void* data, std::size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 0x100000001b3ULL;
  };
  model.for_each_parameter([&](const std::string& name, auto& p) {
    mix(name.data(), name.size());
    using T = typename std::decay_t<decltype(p.value)>::value_type;
    std::vector<T> host(static_cast<std::size_t>(p.value.size()));
    p.value.copy_to_host(host.data());
    mix(host.data(), host.size() * sizeof(T));
  });
  return hash;
}

}  // namespace tokenformer

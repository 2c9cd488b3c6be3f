// Data-parallel training of a GPU model with NCCL (mpirun -np 2, one GPU per rank): the ranks hold
// bit-identical parameters after every step and follow the one-process run on the same global batch.
// Without a GPU per rank every rank says so and exits with 77 (CTest: skipped). Compiled by nvcc in
// CI; it has not run on a machine with several GPUs yet.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "mpi_test_setup.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/distributed/nccl.cuh"
#include "tokenformer/kernels/cuda.cuh"
#include "tokenformer/model/language_model.hpp"
#include "tokenformer/train/trainer.hpp"

namespace tf = tokenformer;
using Gpu = tokenformer::cuda;  // `cuda` alone is ambiguous with CCCL's ::cuda namespace

namespace {

using Model = tf::LanguageModel<mpi_test::TinyModel, Gpu>;

int failures = 0;
void check(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "FAILED: %s\n", what.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  tf::MpiSession session(&argc, &argv);
  int status = 0;
  {
    tf::MpiProcessGroup ranks;
    int gpus = 0;
    if (cudaGetDeviceCount(&gpus) != cudaSuccess) gpus = 0;
    if (ranks.any(gpus < ranks.size())) {
      if (ranks.is_main())
        std::printf("SKIPPED: %d ranks need a GPU each; this machine has %d (the NCCL test was compiled)\n",
                    ranks.size(), gpus);
      return 77;
    }
    Gpu gpu = Gpu::create(ranks.rank());
    tf::NcclProcessGroup group(ranks, gpu);

    const std::string dir = mpi_test::shared_directory(ranks, "tokenformer_test_nccl_");
    const tf::TextCorpus corpus({mpi_test::write_corpus(ranks, dir)}, 0.2);

    Model shared(gpu), alone(gpu);
    tf::Rng init(5), init_again(5);
    shared.initialize(init);
    alone.initialize(init_again);
    tf::Trainer<Model> two(shared, corpus, mpi_test::options(6), group);
    tf::Trainer<Model> one(alone, corpus, mpi_test::options(6));
    while (!two.done()) {
      const tf::StepRecord a = one.train_step(), b = two.train_step();
      const std::uint64_t mine = tf::parameter_checksum(shared);
      std::uint64_t main_rank = mine;
      ranks.broadcast(&main_rank, sizeof main_rank, 0);
      check(mine == main_rank, "step " + std::to_string(b.step) + ": the ranks' parameters differ");
      check(std::abs(a.loss - b.loss) <= 1e-5 * std::abs(a.loss), "step " + std::to_string(b.step) + ": one GPU " +
                                                                      std::to_string(a.loss) + ", two ranks " +
                                                                      std::to_string(b.loss));
    }
    if (ranks.is_main()) std::printf("%s: %d failures\n", group.description().c_str(), failures);
    ranks.barrier();
    if (ranks.is_main()) std::filesystem::remove_all(dir);
    status = ranks.any(failures != 0) ? 1 : 0;
  }
  return status;
}

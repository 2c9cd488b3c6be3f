// Data-parallel training over MPI, run with 2 ranks (mpirun -np 2; tests/CMakeLists.txt): the ranks
// hold bit-identical parameters after every step, 2 ranks follow the 1-process loss curve, rank 0's
// checkpoint resumes every rank (also after rank 0 is killed mid-save), a refused resume leaves every
// rank as it was, and growth on every rank gives identical models that keep training.
//
// Every rank runs every test case in the same order (collectives must match); a failed check on one
// rank is reported by that rank, and the program's exit status is non-zero on every rank that failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mpi_test_setup.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/distributed/mpi.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/model/language_model.hpp"
#include "tokenformer/train/trainer.hpp"

using namespace tokenformer;

namespace {

MpiProcessGroup* world = nullptr;  // set by main

using mpi_test::options;
using Model = LanguageModel<mpi_test::TinyModel>;

// A directory every rank agrees on, removed by rank 0 at the end of the test that asked for it.
std::string shared_directory() { return mpi_test::shared_directory(*world, "tokenformer_test_mpi_"); }

const TextCorpus& corpus() {
  static const TextCorpus text(std::vector<std::string>{mpi_test::write_corpus(*world, shared_directory())}, 0.2);
  return text;
}

Model fresh_model() {
  Model model;
  Rng init(5);
  model.initialize(init);
  return model;
}

// Whether every rank holds these bits: rank 0's checksum broadcast, every rank compares.
bool identical_on_every_rank(Model& model) {
  const std::uint64_t mine = parameter_checksum(model);
  std::uint64_t main = mine;
  world->broadcast(&main, sizeof main, 0);
  return !world->any(mine != main);
}

}  // namespace

TEST_CASE("mpi: the test runs with 2 ranks", "[mpi]") {
  REQUIRE(world->size() == 2);
  CHECK(world->description().rfind("MPI, 2 ranks", 0) == 0);
}

TEST_CASE("mpi: all_reduce_sum, its non-blocking form and broadcast", "[mpi]") {
  std::vector<float> a = {1.0f + static_cast<float>(world->rank()), 0.5f, -2.0f};
  world->all_reduce_sum(a.data(), a.size());
  CHECK(a == std::vector<float>{3.0f, 1.0f, -4.0f});
  std::vector<double> b(1000, 0.25 * (world->rank() + 1));
  world->start_all_reduce_sum(b.data(), b.size());
  world->progress();
  world->wait_all();
  for (double x : b) REQUIRE(x == 0.75);
  int value = world->rank() == 0 ? 42 : -1;
  world->broadcast(&value, sizeof value, 0);
  CHECK(value == 42);
  CHECK(world->any(world->rank() == 1));
  CHECK_FALSE(world->any(false));
}

TEST_CASE("mpi: the ranks hold bit-identical parameters after every step", "[mpi]") {
  Model model = fresh_model();
  Trainer<Model> trainer(model, corpus(), options(6), *world);
  CHECK(trainer.tokens_per_step() == 4 * 16);
  while (!trainer.done()) {
    const StepRecord r = trainer.train_step();
    INFO("step " << r.step);
    REQUIRE(identical_on_every_rank(model));
    // the loss and the clipped norm are the same on every rank too
    double loss = r.loss, norm = r.gradient_norm;
    world->broadcast(&loss, sizeof loss, 0);
    world->broadcast(&norm, sizeof norm, 0);
    CHECK(loss == r.loss);
    CHECK(norm == r.gradient_norm);
  }
}

TEST_CASE("mpi: two ranks follow the one-process loss curve of the same global batch", "[mpi]") {
  // Each rank also trains the same model alone (SingleProcess) on the whole batch.
  Model alone = fresh_model(), shared = fresh_model();
  Trainer<Model> one(alone, corpus(), options(8));
  Trainer<Model> two(shared, corpus(), options(8), *world);
  while (!one.done()) {
    const StepRecord a = one.train_step(), b = two.train_step();
    INFO("step " << a.step << ": one process " << a.loss << ", two ranks " << b.loss);
    // The same rows of the same batches, summed in a different order (two half-batch means averaged):
    // float rounding only. A wrong split (overlapping or other rows) moves the loss by 1e-2 and more.
    CHECK(std::abs(a.loss - b.loss) <= 1e-6 * std::abs(a.loss));  // measured <= 1.2e-8
    CHECK(std::abs(a.gradient_norm - b.gradient_norm) <= 1e-4 * a.gradient_norm);
    if (!std::isnan(a.validation_loss))
      CHECK(std::abs(a.validation_loss - b.validation_loss) <= 1e-6 * a.validation_loss);
  }
  double largest = 0;
  alone.for_each_parameter([&](const std::string& name, Parameter<float>& p) {
    shared.for_each_parameter([&](const std::string& other, Parameter<float>& q) {
      if (other != name) return;
      for (index_t i = 0; i < p.size(); ++i)
        largest = std::max(largest, static_cast<double>(std::abs(p.value.data()[i] - q.value.data()[i])));
    });
  });
  INFO("largest parameter difference after 8 steps " << largest);
  CHECK(largest < 2e-5);  // measured 1.9e-6; AdamW steps are up to 3e-3
}

TEST_CASE("mpi: a batch that does not split evenly over the ranks is refused", "[mpi]") {
  Model model = fresh_model();
  TrainerOptions odd = options(2);
  odd.batch_size = 3;
  CHECK_THROWS_AS(Trainer<Model>(model, corpus(), odd, *world), config_error);
}

TEST_CASE("mpi: rank 0 writes the checkpoint and every rank resumes from it, also after a kill mid-save", "[mpi]") {
  const std::string dir = shared_directory();
  const std::string path = dir + "/checkpoint.safetensors";
  // The uninterrupted run: 6 steps, saved after step 3.
  Model straight = fresh_model();
  Trainer<Model> reference(straight, corpus(), options(6), *world);
  for (int i = 0; i < 3; ++i) reference.train_step();
  reference.save(path);
  REQUIRE(std::filesystem::exists(path));  // every rank sees it once save() returns
  Model at_step_3 = straight;
  while (!reference.done()) reference.train_step();

  // Rank 0 is killed while it writes the step-6 checkpoint: a child process (no MPI in it) writes it
  // with a file-size limit of half the checkpoint, so the kernel kills it (SIGXFSZ) mid-write.
  if (world->is_main()) {
    const auto size = std::filesystem::file_size(path);
    const pid_t child = ::fork();
    CHECK(child >= 0);  // CHECK, not REQUIRE, on one rank: the other must still meet it below
    if (child == 0) {
      ::signal(SIGXFSZ, SIG_DFL);
      const rlimit limit{static_cast<rlim_t>(size / 2), static_cast<rlim_t>(size / 2)};
      ::setrlimit(RLIMIT_FSIZE, &limit);
      io::save_training_checkpoint(path, straight, reference.optimizer(), io::TrainingState{6, {1, 2, 3, 4}});
      ::_exit(0);  // not reached: the write is killed
    }
    int status = 0;
    if (child > 0) ::waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGXFSZ);
  }
  world->barrier();

  // Every rank resumes from the step-3 checkpoint and replays steps 4-6 exactly.
  Model resumed = fresh_model();
  Trainer<Model> again(resumed, corpus(), options(6), *world);
  again.resume(path);
  CHECK(again.step() == 3);
  CHECK(parameter_checksum(resumed) == parameter_checksum(at_step_3));
  CHECK(identical_on_every_rank(resumed));
  while (!again.done()) again.train_step();
  CHECK(parameter_checksum(resumed) == parameter_checksum(straight));
  world->barrier();
  if (world->is_main()) std::filesystem::remove_all(dir);
}

TEST_CASE("mpi: a resume that fails on one rank is refused on every rank, each model unchanged", "[mpi]") {
  const std::string dir = shared_directory();
  Model model = fresh_model();
  Trainer<Model> trainer(model, corpus(), options(4), *world);
  trainer.train_step();
  trainer.save(dir + "/good.safetensors");
  trainer.train_step();
  const std::uint64_t before = parameter_checksum(model);
  // Rank 1 is given a path that does not exist (as if the file were missing on its machine).
  const std::string path = world->rank() == 0 ? dir + "/good.safetensors" : dir + "/missing.safetensors";
  CHECK_THROWS_AS(trainer.resume(path), file_error);
  CHECK(trainer.step() == 2);
  CHECK(parameter_checksum(model) == before);
  // and the ranks still train together
  trainer.train_step();
  CHECK(identical_on_every_rank(model));
  world->barrier();
  if (world->is_main()) std::filesystem::remove_all(dir);
}

TEST_CASE("mpi: growth on every rank gives identical models that keep training together", "[mpi]") {
  Model model = fresh_model();
  {
    Trainer<Model> before(model, corpus(), options(3), *world);
    while (!before.done()) before.train_step();
  }
  const index_t params_before = model.parameter_count();
  GrowthSpec spec;
  spec.qkv = 8;
  spec.ffn = 16;
  spec.seed = 99;  // the same seed on every rank: the same new tokens
  grow(model, spec);
  CHECK(model.parameter_count() > params_before);
  REQUIRE(identical_on_every_rank(model));
  Trainer<Model> after(model, corpus(), options(4), *world);
  double first = 0, last = 0;
  while (!after.done()) {
    const StepRecord r = after.train_step();
    if (r.step == 1) first = r.loss;
    last = r.loss;
    REQUIRE(identical_on_every_rank(model));
  }
  CHECK(std::isfinite(last));
  CHECK(last < first);
}

int main(int argc, char** argv) {
  MpiSession session(&argc, &argv);
  int failed = 0;
  {
    MpiProcessGroup group;
    world = &group;
    Catch::Session catch_session;
    // Only rank 0 prints the summary; every rank prints its own failures.
    failed = catch_session.run(argc, argv);
    if (world->any(failed != 0) && failed == 0) failed = 1;  // fail on every rank when one fails
    world = nullptr;
  }
  return failed;
}

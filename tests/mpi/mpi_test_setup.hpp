// What the MPI tests (test_mpi.cpp, test_nccl.cu) share: the small model, the trainer options and a
// corpus file written by rank 0 into a directory every rank agrees on.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "tokenformer/core/presets.hpp"
#include "tokenformer/train/process_group.hpp"
#include "tokenformer/train/trainer.hpp"

namespace mpi_test {

/// Two layers of hidden 32: a training step takes milliseconds.
struct TinyModel : tokenformer::presets::Tiny {
  static constexpr tokenformer::index_t num_layers = 2, hidden_size = 32, num_heads = 2;
  static constexpr tokenformer::index_t qkv_tokens = 16, proj_tokens = 16, ffn_tokens = 32;
};

/// A global batch of 4 x 16 (2 rows per rank on 2 ranks), evaluations every 3 steps.
inline tokenformer::TrainerOptions options(long steps) {
  tokenformer::TrainerOptions o;
  o.batch_size = 4;
  o.sequence_length = 16;
  o.steps = steps;
  o.warmup_steps = 2;
  o.eval_every = 3;
  o.eval_batches = 2;
  o.adamw.lr = 3e-3;
  o.seed = 77;
  return o;
}

/// A directory every rank agrees on (named after rank 0's process id), created by rank 0.
inline std::string shared_directory(tokenformer::ProcessGroup& ranks, const std::string& prefix) {
  long id = static_cast<long>(::getpid());
  ranks.broadcast(&id, sizeof id, 0);
  const auto dir = std::filesystem::temp_directory_path() / (prefix + std::to_string(id));
  if (ranks.is_main()) std::filesystem::create_directories(dir);
  ranks.barrier();
  return dir.string();
}

/// DIR/corpus.txt, a few kilobytes of repetitive English written by rank 0; returns its path once
/// every rank can read it.
inline std::string write_corpus(tokenformer::ProcessGroup& ranks, const std::string& dir) {
  const std::string path = dir + "/corpus.txt";
  if (ranks.is_main()) {
    std::ofstream out(path);
    for (int i = 0; i < 300; ++i)
      out << "The quick brown fox " << i % 17 << " jumps over the lazy dog. A stitch in time saves nine.\n";
  }
  ranks.barrier();
  return path;
}

}  // namespace mpi_test

// libFuzzer target: load_training_checkpoint from memory into a small model and its AdamW. An input
// that loads must have restored every tensor; one that fails must leave the model, its moments and
// the optimizer's step count exactly as they were (the strong guarantee), else abort (a finding).
// `fuzz_training_checkpoint --write-seed PATH` writes a valid checkpoint of the model (the seed).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/model/language_model.hpp"
#include "tokenformer/train/optimizer.hpp"

namespace {

using Model = tokenformer::LanguageModel<tokenformer::presets::Dynamic<float>>;

Model& model() {
  static Model m = [] {
    tokenformer::ModelConfig c;
    c.num_layers = 1;
    c.hidden_size = 8;
    c.rotary_pct = 0.5;
    c.num_heads = 2;
    c.vocab_size = 11;
    c.qkv_tokens = 4;
    c.proj_tokens = 4;
    c.ffn_tokens = 6;
    Model built(c);
    tokenformer::Rng rng(1);
    built.initialize(rng);
    built.enable_training();
    return built;
  }();
  return m;
}

// Every value and moment of the model, in visiting order.
std::vector<float> snapshot() {
  std::vector<float> all;
  model().for_each_parameter([&](const std::string&, auto& p) {
    for (const auto* t : {&p.value, &p.first_moment, &p.second_moment})
      all.insert(all.end(), t->data(), t->data() + t->size());
  });
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (*argc == 3 && std::strcmp((*argv)[1], "--write-seed") == 0) {
    tokenformer::AdamW optimizer;
    tokenformer::io::save_training_checkpoint((*argv)[2], model(), optimizer,
                                              tokenformer::io::TrainingState{7, {1, 2, 3, 4}});
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static tokenformer::AdamW optimizer;
  const std::vector<float> before = snapshot();
  const long step_before = optimizer.step_count();
  try {
    auto file =
        tokenformer::io::SafetensorsReader::from_memory(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    tokenformer::io::load_training_checkpoint(file, model(), optimizer);
  } catch (const tokenformer::error&) {
    // Compared as bytes: a NaN loaded by an earlier input equals itself here.
    const std::vector<float> after = snapshot();
    if (after.size() != before.size() || std::memcmp(after.data(), before.data(), after.size() * sizeof(float)) != 0 ||
        optimizer.step_count() != step_before)
      std::abort();  // a failed load changed the model or the optimizer
  }
  return 0;
}

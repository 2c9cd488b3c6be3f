// A user's program: builds a tiny model from a preset and runs it.
#include <cmath>
#include <cstdio>

#include <tokenformer/tokenformer.hpp>

int main() {
  tokenformer::LanguageModel<tokenformer::presets::Tiny> model;
  tokenformer::Rng rng(1);
  model.initialize(rng);
  const auto logits = model.forward({1, 2, 3, 4}, 1, 4);
  const bool ok = logits.dim(2) == 257 && std::isfinite(logits[0]);
  std::printf("consumer: logits %s, %s\n", logits.shape().str().c_str(), ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

// Must not compile: head_dim 16 with rotary_pct 0.1875 gives 3 rotary dims, which cannot be paired.
#include "tokenformer/core/presets.hpp"
#include "tokenformer/model/language_model.hpp"

struct OddRotary : tokenformer::presets::Tiny {
  static constexpr double rotary_pct = 0.1875;
};
tokenformer::LanguageModel<OddRotary> model;

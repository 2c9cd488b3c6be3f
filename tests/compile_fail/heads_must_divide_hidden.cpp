// Must not compile: 5 heads do not divide a hidden size of 64.
#include "tokenformer/core/presets.hpp"
#include "tokenformer/model/language_model.hpp"

struct BadHeads : tokenformer::presets::Tiny {
  static constexpr tokenformer::index_t num_heads = 5;
};
tokenformer::LanguageModel<BadHeads> model;

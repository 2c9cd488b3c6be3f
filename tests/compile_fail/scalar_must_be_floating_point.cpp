// Must not compile: model scalars must be floating point.
#include "tokenformer/core/presets.hpp"
#include "tokenformer/model/language_model.hpp"

struct IntegerModel : tokenformer::presets::Tiny {
  using scalar = int;
};
tokenformer::LanguageModel<IntegerModel> model;

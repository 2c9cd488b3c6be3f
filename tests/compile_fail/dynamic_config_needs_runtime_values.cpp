// Must not compile: a dynamic config has no sizes to build a model from without a ModelConfig.
#include "tokenformer/core/presets.hpp"
#include "tokenformer/model/language_model.hpp"

tokenformer::LanguageModel<tokenformer::presets::Dynamic<float>> model;

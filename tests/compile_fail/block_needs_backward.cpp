// Must not compile: a block without backward; the message names the missing member.
#include <string>

#include "tokenformer/core/presets.hpp"
#include "tokenformer/model/language_model.hpp"

template <class T, class Device>
struct ForwardOnly {
  ForwardOnly(const tokenformer::ModelConfig&, Device, tokenformer::index_t) {}
  void forward(tokenformer::TensorView<T, Device>, tokenformer::TensorView<const T, Device>, tokenformer::index_t,
               tokenformer::index_t, tokenformer::index_t) {}
  template <class Visitor>
  void for_each_parameter(Visitor&&) {}
  template <class Visitor>
  void for_each_pattention(Visitor&&) {}
};

tokenformer::LanguageModel<tokenformer::presets::Tiny, tokenformer::cpu, ForwardOnly> model;

// tokenformer/layers/block.hpp: what a block of LanguageModel must provide, checked at compile time.
//
// LanguageModel<Config, Device, Block> stacks num_layers objects of Block<T, Device>. A block is
// any type with these members (TokenFormerLayer is the official one; tests/test_generic_model.cpp
// defines a block with one Pattention FFN in a test file):
//
//   Block(const ModelConfig& config, Device device, index_t layer)
//       builds layer `layer` of a model of `config` (token counts: config.layer(layer))
//   void forward(TensorView<T, Device> out, TensorView<const T, Device> x, index_t B, index_t T,
//                index_t position_offset)
//       out = block(x) for x [B*T, C]; keeps what backward needs
//   void backward(TensorView<T, Device> d_x, TensorView<const T, Device> d_out, TensorView<const T, Device> x)
//       adds parameter gradients and writes dL/dx for the last forward; d_x may alias d_out
//   for_each_parameter(visitor(const std::string& name, Parameter<T, Device>&))
//       every parameter under a name relative to the block (checkpoints, the optimizer, copy_parameters)
//   for_each_pattention(visitor(const std::string& path, PattentionRole, Pattention<T, Device>&))
//       every Pattention with its role (initialization, growth, the config's token counts)
//
// check_block<Block, T, Device>() stops the compilation with one message naming the first missing
// member, instead of an overload error deep inside the model.
#pragma once

#include <string>
#include <type_traits>
#include <utility>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/fit_config.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/layers/pattention.hpp"

namespace tokenformer {

namespace block_detail {

template <class T, class Device>
struct parameter_visitor {
  void operator()(const std::string&, Parameter<T, Device>&) const {}
};
template <class T, class Device>
struct pattention_visitor {
  void operator()(const std::string&, PattentionRole, Pattention<T, Device>&) const {}
};

template <class B, class T, class Device, class = void>
struct has_forward : std::false_type {};
template <class B, class T, class Device>
struct has_forward<B, T, Device,
                   std::void_t<decltype(std::declval<B&>().forward(
                       std::declval<TensorView<T, Device>>(), std::declval<TensorView<const T, Device>>(), index_t{},
                       index_t{}, index_t{}))>> : std::true_type {};

template <class B, class T, class Device, class = void>
struct has_backward : std::false_type {};
template <class B, class T, class Device>
struct has_backward<B, T, Device,
                    std::void_t<decltype(std::declval<B&>().backward(
                        std::declval<TensorView<T, Device>>(), std::declval<TensorView<const T, Device>>(),
                        std::declval<TensorView<const T, Device>>()))>> : std::true_type {};

template <class B, class T, class Device, class = void>
struct has_for_each_parameter : std::false_type {};
template <class B, class T, class Device>
struct has_for_each_parameter<
    B, T, Device, std::void_t<decltype(std::declval<B&>().for_each_parameter(parameter_visitor<T, Device>{}))>>
    : std::true_type {};

template <class B, class T, class Device, class = void>
struct has_for_each_pattention : std::false_type {};
template <class B, class T, class Device>
struct has_for_each_pattention<
    B, T, Device, std::void_t<decltype(std::declval<B&>().for_each_pattention(pattention_visitor<T, Device>{}))>>
    : std::true_type {};

}  // namespace block_detail

/// True when Block is a whole body (`static constexpr bool is_body = true`, e.g. FitBody): the model
/// builds one instead of num_layers, and it also provides for_each_pattention_of_unit(i, visitor)
/// and initialize_extra(Rng&).
template <class Block, class = void>
struct block_is_body : std::false_type {};
template <class Block>
struct block_is_body<Block, std::enable_if_t<Block::is_body>> : std::true_type {};

/// The architecture a block type implements (`static constexpr Architecture architecture`; absent:
/// tokenformer): LanguageModel refuses a config that names another one.
template <class Block, class = void>
struct block_architecture : std::integral_constant<Architecture, Architecture::tokenformer> {};
template <class Block>
struct block_architecture<Block, std::void_t<decltype(Block::architecture)>>
    : std::integral_constant<Architecture, Block::architecture> {};

/// True when Block has initialize_extra(Rng&): LanguageModel::initialize calls it after the
/// Pattentions (parameters that are not parameter tokens: FIT's latents, a Transformer's Linear layers).
template <class Block, class = void>
struct block_has_initialize_extra : std::false_type {};
template <class Block>
struct block_has_initialize_extra<Block,
                                  std::void_t<decltype(std::declval<Block&>().initialize_extra(std::declval<Rng&>()))>>
    : std::true_type {};

/// True when Block has every member a LanguageModel block needs; otherwise a static_assert names
/// the first missing one.
template <class Block, class T, class Device>
constexpr bool check_block() {
  static_assert(std::is_constructible<Block, const ModelConfig&, Device, index_t>::value,
                "a block needs a constructor Block(const ModelConfig& config, Device device, index_t layer)");
  static_assert(block_detail::has_forward<Block, T, Device>::value,
                "a block needs forward(TensorView<T, Device> out, TensorView<const T, Device> x, index_t B, "
                "index_t T, index_t position_offset)");
  static_assert(block_detail::has_backward<Block, T, Device>::value,
                "a block needs backward(TensorView<T, Device> d_x, TensorView<const T, Device> d_out, "
                "TensorView<const T, Device> x)");
  static_assert(block_detail::has_for_each_parameter<Block, T, Device>::value,
                "a block needs for_each_parameter(visitor(const std::string& name, Parameter<T, Device>&))");
  static_assert(block_detail::has_for_each_pattention<Block, T, Device>::value,
                "a block needs for_each_pattention(visitor(const std::string& path, PattentionRole, "
                "Pattention<T, Device>&))");
  return true;
}

}  // namespace tokenformer

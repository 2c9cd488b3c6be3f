// tokenformer/core/presets.hpp: static configs for the official model sizes and small teaching sizes.
//
// A preset is a struct of `static constexpr` members. Derive your own by inheriting and overriding:
//   struct MyConfig : presets::Tiny { static constexpr index_t num_layers = 4; };
#pragma once

#include <optional>

#include "tokenformer/core/model_config.hpp"

/// Static configs: the official model sizes, small teaching sizes and Dynamic (sizes from a file).
namespace tokenformer::presets {

/// Members shared by every preset: the official defaults.
struct Defaults {
  using scalar = float;                         ///< the scalar type of the model's parameters and activations
  static constexpr index_t vocab_size = 50304;  ///< GPT-NeoX tokenizer, padded to a multiple of 128
  static constexpr double rotary_pct = 0.25;    ///< fraction of each head's dims that rotary rotates
  static constexpr Normalization normalization = Normalization::l2_norm_gelu;  ///< Θ of every Pattention
  static constexpr double layernorm_epsilon = 1e-5;                            ///< ε of every LayerNorm
};

/// TokenFormer-150M: 12 layers, hidden 768, 12 heads.
struct TokenFormer150M : Defaults {
  ///@{
  /// The preset's sizes; ModelConfig describes each member.
  static constexpr index_t num_layers = 12, hidden_size = 768, num_heads = 12;
  static constexpr index_t qkv_tokens = 768, proj_tokens = 768, ffn_tokens = 3072;
  ///@}
};
/// TokenFormer-450M: 24 layers, hidden 1024, 16 heads.
struct TokenFormer450M : Defaults {
  ///@{
  /// The preset's sizes; ModelConfig describes each member.
  static constexpr index_t num_layers = 24, hidden_size = 1024, num_heads = 16;
  static constexpr index_t qkv_tokens = 1024, proj_tokens = 1024, ffn_tokens = 4096;
  ///@}
};
/// TokenFormer-900M: 32 layers, hidden 1280, 16 heads.
struct TokenFormer900M : Defaults {
  ///@{
  /// The preset's sizes; ModelConfig describes each member.
  static constexpr index_t num_layers = 32, hidden_size = 1280, num_heads = 16;
  static constexpr index_t qkv_tokens = 1280, proj_tokens = 1280, ffn_tokens = 5120;
  ///@}
};
/// TokenFormer-1.5B: 40 layers, hidden 1536, 16 heads.
struct TokenFormer1_5B : Defaults {
  ///@{
  /// The preset's sizes; ModelConfig describes each member.
  static constexpr index_t num_layers = 40, hidden_size = 1536, num_heads = 16;
  static constexpr index_t qkv_tokens = 1536, proj_tokens = 1536, ffn_tokens = 6144;
  ///@}
};

/// A byte-level teaching model (about 0.3M parameters): 2 layers, hidden 64, 4 heads.
struct Tiny : Defaults {
  ///@{
  /// The preset's sizes; ModelConfig describes each member.
  static constexpr index_t num_layers = 2, hidden_size = 64, num_heads = 4;
  static constexpr index_t qkv_tokens = 64, proj_tokens = 64, ffn_tokens = 256;
  ///@}
  static constexpr index_t vocab_size = 257;  ///< 256 bytes + end-of-text (ByteTokenizer)
  static constexpr double rotary_pct = 0.5;   ///< half of each head's dims rotate
};
/// A byte-level model of a few million parameters: 4 layers, hidden 256, 8 heads.
struct Small : Defaults {
  ///@{
  /// The preset's sizes; ModelConfig describes each member.
  static constexpr index_t num_layers = 4, hidden_size = 256, num_heads = 8;
  static constexpr index_t qkv_tokens = 256, proj_tokens = 256, ffn_tokens = 1024;
  ///@}
  static constexpr index_t vocab_size = 257;  ///< 256 bytes + end-of-text (ByteTokenizer)
  static constexpr double rotary_pct = 0.5;   ///< half of each head's dims rotate
};

/// Every size from the file: use with a ModelConfig read by io::read_config.
template <class Scalar = float>
struct Dynamic {
  using scalar = Scalar;  ///< the scalar type of the model's parameters and activations
  ///@{
  /// `dynamic`: the value comes from the ModelConfig given to the model.
  static constexpr index_t num_layers = dynamic, hidden_size = dynamic, num_heads = dynamic;
  static constexpr index_t qkv_tokens = dynamic, proj_tokens = dynamic, ffn_tokens = dynamic;
  static constexpr index_t vocab_size = dynamic;
  ///@}
  static constexpr double rotary_pct = -1.0;                                   ///< negative: from the ModelConfig
  static constexpr std::optional<Normalization> normalization = std::nullopt;  ///< from the ModelConfig
  static constexpr double layernorm_epsilon = 1e-5;  ///< not read: ε comes from the ModelConfig
};

}  // namespace tokenformer::presets

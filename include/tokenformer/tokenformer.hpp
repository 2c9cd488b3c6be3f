// tokenformer/tokenformer.hpp: the umbrella header. Include this to get the whole library.

/// @mainpage tokenformer
/// A header-only C++17 library of TokenFormer, the transformer whose linear projections are
/// Pattentions: attention from the input tokens to learnable parameter tokens, so that a trained model
/// grows by appending tokens. This reference is generated from the headers' doc comments; README.md
/// explains the model, the architecture, the examples and the command-line tool.
///
/// Where to start: tokenformer::LanguageModel and its configs (tokenformer::presets,
/// tokenformer::ModelConfig, tokenformer::io::load_model), tokenformer::Generator for sampling,
/// tokenformer::AdamW and tokenformer::Trainer for training, tokenformer::grow for growth; underneath,
/// the layers (tokenformer::Pattention, tokenformer::SelfAttention, tokenformer::TokenFormerLayer) and
/// the kernels (tokenformer::kernels), one overload per device tag (tokenformer::cpu, tokenformer::cuda).

/// @namespace tokenformer
/// The whole library: configs, device tags, tensors and parameters (core/), layers (layers/), the
/// language model, sampling, growth and transfer (model/), training (train/) and the tokenizers.

/// @namespace tokenformer::io
/// File formats (JSON, safetensors, PyTorch checkpoints, configs, atomic writes) and checkpoint.hpp,
/// the one module that knows the model: weights, hub directories and training checkpoints.
#pragma once

#include "tokenformer/core/config.hpp"
#if TOKENFORMER_CUDA_COMPILER
#include "tokenformer/core/cuda.cuh"  // the cuda device (nvcc only)
#endif
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/fit_config.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/normalization.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/precision.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/span.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/json.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/io/torch_checkpoint.hpp"
#include "tokenformer/io/weights_file.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/kernels/reference.hpp"
#include "tokenformer/layers/block.hpp"
#include "tokenformer/layers/cross_attention.hpp"
#include "tokenformer/layers/fit_body.hpp"
#include "tokenformer/layers/grouped_attention.hpp"
#include "tokenformer/layers/linear.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/layers/self_attention.hpp"
#include "tokenformer/layers/tokenformer_layer.hpp"
#include "tokenformer/layers/transformer_layer.hpp"
#include "tokenformer/model/copy_parameters.hpp"
#include "tokenformer/model/generation.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/model/language_model.hpp"
#include "tokenformer/model/transfer.hpp"
#include "tokenformer/tokenizer/byte_tokenizer.hpp"
#include "tokenformer/train/data.hpp"
#include "tokenformer/train/optimizer.hpp"
#include "tokenformer/train/report.hpp"
#include "tokenformer/train/schedule.hpp"
#include "tokenformer/train/trainer.hpp"
#include "tokenformer/train/training_run.hpp"

// tokenformer/tokenformer.hpp: the umbrella header. Include this to get the whole library.
#pragma once

#include "tokenformer/core/config.hpp"
#if TOKENFORMER_CUDA_COMPILER
#include "tokenformer/core/cuda.cuh"  // the cuda device (nvcc only)
#endif
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/io/checkpoint.hpp"
#include "tokenformer/io/config_file.hpp"
#include "tokenformer/io/json.hpp"
#include "tokenformer/io/safetensors.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/kernels/reference.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/layers/self_attention.hpp"
#include "tokenformer/layers/tokenformer_layer.hpp"
#include "tokenformer/model/copy_parameters.hpp"
#include "tokenformer/model/generation.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/model/language_model.hpp"
#include "tokenformer/train/checkpoint.hpp"
#include "tokenformer/train/data.hpp"
#include "tokenformer/train/optimizer.hpp"
#include "tokenformer/train/report.hpp"
#include "tokenformer/train/schedule.hpp"
#include "tokenformer/train/trainer.hpp"
#include "tokenformer/train/training_run.hpp"

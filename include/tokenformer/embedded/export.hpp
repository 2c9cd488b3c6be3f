// tokenformer/embedded/export.hpp: from a LanguageModel (trained, grown, loaded) to the weights of the
// freestanding StaticModel (embedded/static_model.hpp): in memory (OwnedWeights, for tests and host
// programs) or as a C++ header of `constexpr` arrays to compile into firmware (write_c_header, what
// `tokenformer-cli export-c` runs).
//
// This side is ordinary host code (heap, exceptions); only static_model.hpp is freestanding.
// Requires: a TokenFormer model (not FIT or Transformer) whose layers all have the same token counts,
// every value finite. int8 export quantizes each matrix row in blocks of 32 values with one float
// scale per block (scale = max |x| / 127, q = round(x / scale)), as ggml's Q8_0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/normalization.hpp"
#include "tokenformer/embedded/static_model.hpp"

namespace tokenformer::embedded {

/// One weight array of `Weights`, in the struct's order.
struct WeightTensor {
  std::string name;     ///< the model's (official) parameter name
  index_t rows = 0;     ///< rows (1 for a vector)
  index_t cols = 0;     ///< columns
  bool matrix = false;  ///< a token or embedding matrix (quantized in int8 exports), not a norm vector
};

/// Refuses (config_error) a config the static model cannot represent.
inline void check_exportable(const ModelConfig& config) {
  config.validate();
  if (config.architecture != Architecture::tokenformer)
    throw config_error(std::string("the embedded model runs the TokenFormer stack only, not architecture ") +
                       to_string(config.architecture));
  if (!config.per_layer.empty())
    throw config_error(
        "the embedded model needs the same token counts in every layer (this model was grown on "
        "some layers only)");
}

/// The arrays of Weights for `config`, in the struct's order: embedding, per layer the key and value
/// tokens of query, key, value, proj and mlp, then the final norm's weight and bias.
inline std::vector<WeightTensor> weight_tensors(const ModelConfig& config) {
  check_exportable(config);
  const index_t C = config.hidden_size;
  std::vector<WeightTensor> tensors{{"sequential.0.word_embeddings.weight", config.vocab_size, C, true}};
  for (index_t l = 0; l < config.num_layers; ++l) {
    const std::string prefix = "sequential." + std::to_string(l + 2) + ".";
    const std::pair<const char*, index_t> roles[] = {{"attention.query.", config.qkv_tokens},
                                                     {"attention.key.", config.qkv_tokens},
                                                     {"attention.value.", config.qkv_tokens},
                                                     {"attention.proj.", config.proj_tokens},
                                                     {"mlp.", config.ffn_tokens}};
    for (const auto& [role, tokens] : roles)
      for (const char* kind : {"key_param_tokens", "value_param_tokens"})
        tensors.push_back({prefix + role + kind, tokens, C, true});
  }
  const std::string norm = "sequential." + std::to_string(config.num_layers + 3) + ".norm.";
  tensors.push_back({norm + "weight", 1, C, false});
  tensors.push_back({norm + "bias", 1, C, false});
  return tensors;
}

using kernels::quantize_q8;  ///< (embedded/static_model.hpp)

/// The ModelConfig of a static embedded config (to build the LanguageModel it mirrors).
template <class Config>
ModelConfig model_config() {
  using d = Dims<Config>;
  ModelConfig config;
  config.num_layers = d::L;
  config.hidden_size = d::C;
  config.num_heads = d::H;
  config.qkv_tokens = d::Pq;
  config.proj_tokens = d::Pp;
  config.ffn_tokens = d::Pf;
  config.vocab_size = d::V;
  config.rotary_pct = Config::rotary_pct;
  config.normalization = d::theta;
  config.layernorm_epsilon = Config::layernorm_epsilon;
  config.rotary_base = d::rotary_base;
  config.qkv_scale_tokens = detail::qkv_scale_tokens_of<Config>::value;
  config.proj_scale_tokens = detail::proj_scale_tokens_of<Config>::value;
  config.ffn_scale_tokens = detail::ffn_scale_tokens_of<Config>::value;
  return config;
}

/// Copies of a model's parameters laid out for Weights<Config, Storage> (quantized for q8), and the
/// Weights that point into them. For host programs and tests; firmware uses an exported header.
template <class Config, class Storage>
class OwnedWeights {
 public:
  /// Copies (and for q8 quantizes) every weight of `model`, a CPU LanguageModel whose config equals
  /// Config's sizes (config_error otherwise).
  template <class Model>
  explicit OwnedWeights(Model& model) {
    const ModelConfig& config = model.config();
    const ModelConfig expected = model_config<Config>();
    const bool same =
        config.num_layers == expected.num_layers && config.hidden_size == expected.hidden_size &&
        config.num_heads == expected.num_heads && config.qkv_tokens == expected.qkv_tokens &&
        config.proj_tokens == expected.proj_tokens && config.ffn_tokens == expected.ffn_tokens &&
        config.vocab_size == expected.vocab_size && config.rotary_pct == expected.rotary_pct &&
        config.normalization == expected.normalization && config.layernorm_epsilon == expected.layernorm_epsilon &&
        config.rotary_base == expected.rotary_base && config.qkv_scale_tokens == expected.qkv_scale_tokens &&
        config.proj_scale_tokens == expected.proj_scale_tokens &&
        config.ffn_scale_tokens == expected.ffn_scale_tokens && config.per_layer.empty() &&
        config.architecture == Architecture::tokenformer;
    if (!same) throw config_error("OwnedWeights: the model's config differs from the static config");
    std::map<std::string, const float*> values;
    std::map<std::string, index_t> sizes;
    model.for_each_parameter([&](const std::string& name, auto& p) {
      values[name] = p.value.data();
      sizes[name] = p.value.size();
    });
    for (const WeightTensor& t : weight_tensors(config)) {
      const auto found = values.find(t.name);
      if (found == values.end() || sizes[t.name] != t.rows * t.cols)
        throw config_error("OwnedWeights: the model has no parameter " + t.name + " of " + std::to_string(t.rows) +
                           " x " + std::to_string(t.cols) + " values");
      floats_.emplace_back(found->second, found->second + t.rows * t.cols);
      for (std::size_t j = 0; j < floats_.back().size(); ++j)
        if (!std::isfinite(floats_.back()[j]))
          throw numeric_error("OwnedWeights: " + t.name + " has a non-finite value at element " + std::to_string(j));
      if (std::is_same<Storage, q8>::value && t.matrix) {
        ints_.emplace_back(static_cast<std::size_t>(t.rows * t.cols));
        scales_.emplace_back(static_cast<std::size_t>(t.rows * ((t.cols + q8::block - 1) / q8::block)));
        quantize_q8(floats_.back().data(), t.rows, t.cols, ints_.back().data(), scales_.back().data());
      } else {
        ints_.emplace_back();
        scales_.emplace_back();
      }
    }
    std::size_t next = 0;
    const auto matrix = [&](auto& m) {
      if constexpr (std::is_same<Storage, q8>::value) {
        m.values = ints_[next].data();
        m.scales = scales_[next].data();
      } else {
        m.values = floats_[next].data();
      }
      ++next;
    };
    matrix(weights_.embedding);
    for (auto& layer : weights_.layers) {
      matrix(layer.query_keys), matrix(layer.query_values), matrix(layer.key_keys), matrix(layer.key_values);
      matrix(layer.value_keys), matrix(layer.value_values), matrix(layer.proj_keys), matrix(layer.proj_values);
      matrix(layer.ffn_keys), matrix(layer.ffn_values);
    }
    weights_.final_norm_weight = floats_[next++].data();
    weights_.final_norm_bias = floats_[next++].data();
  }
  OwnedWeights(const OwnedWeights&) = delete;             ///< the Weights point into this object
  OwnedWeights& operator=(const OwnedWeights&) = delete;  ///< the Weights point into this object

  /// The weights, pointing into this object.
  const Weights<Config, Storage>& weights() const { return weights_; }

 private:
  std::vector<std::vector<float>> floats_;
  std::vector<std::vector<std::int8_t>> ints_;
  std::vector<std::vector<float>> scales_;
  Weights<Config, Storage> weights_{};
};

/// What write_c_header writes.
struct CHeaderOptions {
  std::string name = "tokenformer_model";  ///< the namespace of the config struct and the arrays
  index_t max_context = 256;               ///< positions the static model's KV cache holds
  bool int8 = false;                       ///< q8 matrices instead of float
  std::string source;                      ///< where the weights came from (a comment)
};

namespace detail {

inline void append_float(std::string& out, float v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%af", static_cast<double>(v));  // hexadecimal: exact
  out += buffer;
}

}  // namespace detail

/// The text of a C++ header with the static config struct `<name>::config` (sizes of `config`, and
/// max_context), one `constexpr` array per weight (float, or int8 values and float scales) and
/// `<name>::weights`, a constexpr Weights<config, storage> over them. `values` gives each tensor of
/// weight_tensors(config) by name. Throws argument_error for a name that is not a C++ identifier, a
/// non-positive max_context or a non-finite value.
inline std::string c_header(const ModelConfig& config, const std::map<std::string, const float*>& values,
                            const CHeaderOptions& options) {
  check_exportable(config);
  const std::string& name = options.name;
  bool identifier = !name.empty() && !(name[0] >= '0' && name[0] <= '9');
  for (char c : name)
    identifier = identifier && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
  static const char* const keywords[] = {
      "alignas",     "alignof",   "and",        "and_eq",    "asm",      "auto",         "bitand",
      "bitor",       "bool",      "break",      "case",      "catch",    "char",         "char8_t",
      "char16_t",    "char32_t",  "class",      "compl",     "concept",  "const",        "consteval",
      "constexpr",   "constinit", "const_cast", "continue",  "co_await", "co_return",    "co_yield",
      "decltype",    "default",   "delete",     "do",        "double",   "dynamic_cast", "else",
      "enum",        "explicit",  "export",     "extern",    "false",    "float",        "for",
      "friend",      "goto",      "if",         "inline",    "int",      "long",         "mutable",
      "namespace",   "new",       "noexcept",   "not",       "not_eq",   "nullptr",      "operator",
      "or",          "or_eq",     "private",    "protected", "public",   "register",     "reinterpret_cast",
      "requires",    "return",    "short",      "signed",    "sizeof",   "static",       "static_assert",
      "static_cast", "struct",    "switch",     "template",  "this",     "thread_local", "throw",
      "true",        "try",       "typedef",    "typeid",    "typename", "union",        "unsigned",
      "using",       "virtual",   "void",       "volatile",  "wchar_t",  "while",        "xor",
      "xor_eq",      "std",       "tokenformer"};
  for (const char* keyword : keywords) identifier = identifier && name != keyword;
  const bool reserved = name.find("__") != std::string::npos || (name.size() > 1 && name[0] == '_');
  if (!identifier || reserved)
    throw argument_error("export name '" + name +
                         "' is not a usable C++ identifier (a keyword, std, tokenformer, "
                         "or reserved)");
  if (options.max_context <= 0)
    throw argument_error("max_context must be positive, got " + std::to_string(options.max_context));
  const auto tensors = weight_tensors(config);
  std::string out;
  out += "// " + name + ": a TokenFormer model for tokenformer::embedded::StaticModel, generated by tokenformer-cli\n";
  out += "// export-c" + (options.source.empty() ? std::string() : " from " + options.source) + ". Do not edit.\n";
  out += "// " + std::to_string(config.parameter_count()) + " parameters, " +
         (options.int8 ? "int8 (one float scale per 32 values)" : "float") + ".\n";
  out += "#pragma once\n\n#include <cstdint>\n\n#include \"tokenformer/embedded/static_model.hpp\"\n\n";
  out += "namespace " + name + " {\n\n";
  char line[1024];
  out += "struct config {\n";
  std::snprintf(line, sizeof line,
                "  static constexpr tokenformer::index_t num_layers = %td, hidden_size = %td, num_heads = %td;\n"
                "  static constexpr tokenformer::index_t qkv_tokens = %td, proj_tokens = %td, ffn_tokens = %td;\n"
                "  static constexpr tokenformer::index_t vocab_size = %td, max_context = %td;\n",
                config.num_layers, config.hidden_size, config.num_heads, config.qkv_tokens, config.proj_tokens,
                config.ffn_tokens, config.vocab_size, options.max_context);
  out += line;
  std::snprintf(line, sizeof line,
                "  static constexpr tokenformer::index_t qkv_scale_tokens = %td, proj_scale_tokens = %td, "
                "ffn_scale_tokens = %td;\n",
                config.qkv_scale_tokens, config.proj_scale_tokens, config.ffn_scale_tokens);
  out += line;
  std::snprintf(line, sizeof line,
                "  static constexpr double rotary_pct = %.17g, layernorm_epsilon = %.17g, rotary_base = %.17g;\n",
                config.rotary_pct, config.layernorm_epsilon, config.rotary_base);
  out += line;
  out += std::string("  static constexpr tokenformer::Normalization normalization = tokenformer::Normalization::") +
         to_string(config.normalization) + ";\n};\n";
  out += std::string("using storage = tokenformer::embedded::") + (options.int8 ? "q8" : "f32") + ";\n\n";
  std::vector<std::string> members;  // the initializer of each Weights member, in order
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const WeightTensor& t = tensors[i];
    const auto found = values.find(t.name);
    if (found == values.end()) throw argument_error("export: no tensor " + t.name);
    const float* x = found->second;
    const index_t count = t.rows * t.cols;
    for (index_t j = 0; j < count; ++j)
      if (!std::isfinite(x[j]))
        throw argument_error("export: " + t.name + " has a non-finite value at element " + std::to_string(j));
    const std::string array = "w" + std::to_string(i);
    out += "// " + t.name + " [" + std::to_string(t.rows) + ", " + std::to_string(t.cols) + "]\n";
    if (options.int8 && t.matrix) {
      const index_t blocks = (t.cols + q8::block - 1) / q8::block;
      std::vector<std::int8_t> q(static_cast<std::size_t>(count));
      std::vector<float> scales(static_cast<std::size_t>(t.rows * blocks));
      quantize_q8(x, t.rows, t.cols, q.data(), scales.data());
      out += "alignas(16) inline constexpr std::int8_t " + array + "_q[] = {";
      for (index_t j = 0; j < count; ++j) {
        out += (j % 32 == 0 ? "\n  " : " ") + std::to_string(static_cast<int>(q[static_cast<std::size_t>(j)])) + ",";
      }
      out += "\n};\nalignas(16) inline constexpr float " + array + "_s[] = {";
      for (std::size_t j = 0; j < scales.size(); ++j) {
        out += j % 8 == 0 ? "\n  " : " ";
        detail::append_float(out, scales[j]);
        out += ",";
      }
      out += "\n};\n";
      members.push_back("{" + array + "_q, " + array + "_s}");
    } else {
      out += "alignas(16) inline constexpr float " + array + "[] = {";
      for (index_t j = 0; j < count; ++j) {
        out += j % 8 == 0 ? "\n  " : " ";
        detail::append_float(out, x[j]);
        out += ",";
      }
      out += "\n};\n";
      members.push_back(t.matrix ? "{" + array + "}" : array);
    }
  }
  out += "\ninline constexpr tokenformer::embedded::Weights<config, storage> weights = {\n  " + members[0] + ",\n  {\n";
  std::size_t next = 1;
  for (index_t l = 0; l < config.num_layers; ++l) {
    out += "    {";
    for (int k = 0; k < 10; ++k) out += (k ? ", " : "") + members[next++];
    out += "},\n";
  }
  out += "  },\n  " + members[next] + ",\n  " + members[next + 1] + ",\n};\n\n}  // namespace " + name + "\n";
  return out;
}

/// c_header over the parameters of a CPU LanguageModel.
template <class Model>
std::string c_header(Model& model, const CHeaderOptions& options) {
  std::map<std::string, const float*> values;
  std::map<std::string, index_t> sizes;
  model.for_each_parameter([&](const std::string& name, auto& p) {
    static_assert(std::is_same<typename std::decay_t<decltype(p.value)>::value_type, float>::value,
                  "export needs a float model");
    values[name] = p.value.data();
    sizes[name] = p.value.size();
  });
  for (const WeightTensor& t : weight_tensors(model.config()))
    if (sizes.count(t.name) == 0 || sizes[t.name] != t.rows * t.cols)
      throw config_error("export: the model has no parameter " + t.name + " of " + std::to_string(t.rows * t.cols) +
                         " values");
  return c_header(model.config(), values, options);
}

}  // namespace tokenformer::embedded

// tokenformer/io/config_file.hpp: read and write model configs in the official JSON key names.
//
// Keys: num_layers, hidden_size, num_attention_heads, qkv_slot_num, proj_slot_num, ffn_slot_num,
// vocab_size, rotary_pct, norm_activation_type, layernorm_epsilon (default 1e-5), rotary_emb_base
// (default 10000). Keys of the official training configs that do not change the model (learning
// rate, ...) are ignored; the ones that would change it must have the values this library implements
// (pos_emb "rotary", norm "layernorm_nonparam", final_norm "layernorm", no_weight_tying false,
// gpt_j_residual false), otherwise config_error names the key. The keys of a Hugging Face hub
// config.json that do not change the model are ignored knowingly: seq_length and
// max_position_embeddings (rotary needs no table), torch_dtype (the weights' dtype is what is read),
// architectures, model_type, transformers_version; its vocabulary size comes from the embedding.
// Parsing allocates nothing per layer unless a token key is a list (bounded by the text), so a
// huge num_layers costs nothing here. Integer keys accept at most 2^31 (max_config_integer); a larger
// integer is refused as "too large (limit 2147483648)". Extension keys written by growth with a pinned scale:
// qkv_scale_slot_num, proj_scale_slot_num, ffn_scale_slot_num (Θ's √n uses these counts). Where the
// layers differ (a model grown on some layers only), each of the six token keys may be a list with
// one entry per layer (a tokenformer extension; written only for the keys whose layers differ).
// FIT (a tokenformer extension): "architecture": "fit" with fit_layers, group_size,
// latents_per_group, latent_size, latent_attention_heads, max_groups and causal (default true); its
// num_layers is the number of FIT units and may be left out (see core/fit_config.hpp). FIT keys
// without "architecture": "fit" are an error. The plain Transformer baseline: "architecture":
// "transformer" with intermediate_size (default 4 * hidden_size) and norm "layernorm"; the Pattention
// keys (the six token keys, norm_activation_type) are an error there, and intermediate_size elsewhere.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/io/atomic_file.hpp"
#include "tokenformer/io/json.hpp"

namespace tokenformer::io {

/// Reads a whole file into a string; throws file_error if it cannot.
inline std::string read_text_file(const std::string& path, std::size_t max_bytes = std::size_t{1} << 26) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_bytes) throw file_error(path + " is larger than " + std::to_string(max_bytes) + " bytes");
  return text;
}

/// The largest value an integer config key accepts (sizes, counts, token counts): 2^31. A larger
/// integer is a config_error saying it is too large and naming this limit.
inline constexpr std::int64_t max_config_integer = std::int64_t{1} << 31;

namespace detail {
/// The integer `v` of config key `key`, in [min, max_config_integer]. Throws config_error: "`key` = N
/// is too large (limit 2147483648)" for a larger integer, else "`key``rule`" (" must be a positive
/// integer", ...) for anything else out of range or not an integer.
inline index_t config_integer(const Json& v, const std::string& key, std::int64_t min, const std::string& source,
                              const std::string& rule) {
  if (v.is_number()) {
    const double x = v.as_number();
    if (x == std::floor(x) && x > static_cast<double>(max_config_integer))
      throw config_error(source + ": " + key + " = " + Json::number_text(x) + " is too large (limit " +
                         std::to_string(max_config_integer) + ")");
  }
  try {
    return static_cast<index_t>(v.as_integer(key, min, max_config_integer));
  } catch (const file_error&) {
    throw config_error(source + ": " + key + rule);
  }
}
}  // namespace detail

/// Parses an official config from JSON text. `vocab_size` may be absent when `vocab_rows` > 0 gives it
/// (the embedding tensor's row count, which wins: official models pad the vocabulary).
inline ModelConfig parse_config(const std::string& text, const std::string& source = "config", index_t vocab_rows = 0) {
  const Json root = parse_json(text, source);
  root.as_object(source);
  const auto integer = [&](const char* key, bool required) -> index_t {
    const Json* v = root.find(key);
    if (v == nullptr) {
      if (required) throw config_error(source + ": missing key \"" + std::string(key) + "\"");
      return 0;
    }
    return detail::config_integer(*v, key, 1, source, " must be a positive integer");
  };
  const auto number = [&](const char* key, double fallback) {
    const Json* v = root.find(key);
    if (v == nullptr) return fallback;
    if (!v->is_number()) throw config_error(source + ": " + std::string(key) + " must be a number");
    return v->as_number();
  };
  const auto expect_value = [&](const char* key, const std::string& supported) {
    const Json* v = root.find(key);
    if (v == nullptr) return;
    if (!v->is_string() || v->as_string() != supported)
      throw config_error(source + ": " + std::string(key) + " = " + v->dump() +
                         " is not supported (this library implements \"" + supported + "\")");
  };
  ModelConfig c;
  if (const Json* a = root.find("architecture"); a != nullptr) {
    if (!a->is_string()) throw config_error(source + ": architecture must be a string");
    c.architecture = parse_architecture(a->as_string());
  }
  const bool transformer = c.architecture == Architecture::transformer;
  expect_value("pos_emb", "rotary");
  expect_value("norm", transformer ? "layernorm" : "layernorm_nonparam");
  expect_value("final_norm", "layernorm");
  if (const Json* tying = root.find("no_weight_tying"); tying != nullptr && !(tying->is_bool() && !tying->as_bool()))
    throw config_error(source + ": no_weight_tying must be false (embeddings are tied)");
  if (const Json* parallel = root.find("gpt_j_residual");
      parallel != nullptr && !(parallel->is_bool() && !parallel->as_bool()))
    throw config_error(source + ": gpt_j_residual must be false (the residual is sequential, not parallel)");
  static const char* const token_keys[] = {"qkv_slot_num",        "proj_slot_num",       "ffn_slot_num",
                                           "qkv_scale_slot_num",  "proj_scale_slot_num", "ffn_scale_slot_num",
                                           "norm_activation_type"};
  if (transformer) {
    for (const char* key : token_keys)
      if (root.find(key) != nullptr)
        throw config_error(source + ": " + std::string(key) +
                           " is a Pattention key, but a transformer has Linear layers (no parameter tokens)");
  } else if (root.find("intermediate_size") != nullptr) {
    throw config_error(source + ": intermediate_size is a transformer key but architecture is not \"transformer\"");
  }
  static const char* const fit_keys[] = {
      "fit_layers", "group_size", "latents_per_group", "latent_size", "latent_attention_heads", "max_groups", "causal"};
  if (c.architecture == Architecture::fit) {
    const Json* layers = root.find("fit_layers");
    if (layers == nullptr) throw config_error(source + ": missing key \"fit_layers\"");
    if (!layers->is_string()) throw config_error(source + ": fit_layers must be a string");
    c.fit.layers = layers->as_string();
    c.fit.group_size = integer("group_size", true);
    c.fit.latents_per_group = integer("latents_per_group", true);
    c.fit.latent_size = integer("latent_size", true);
    c.fit.latent_heads = integer("latent_attention_heads", true);
    c.fit.max_groups = integer("max_groups", true);
    if (const Json* causal = root.find("causal"); causal != nullptr) {
      if (!causal->is_bool()) throw config_error(source + ": causal must be true or false");
      c.fit.causal = causal->as_bool();
    }
    const auto units = static_cast<index_t>(parse_fit_layers(c.fit.layers).size());
    c.num_layers = root.find("num_layers") != nullptr ? integer("num_layers", true) : units;
  } else {
    for (const char* key : fit_keys)
      if (root.find(key) != nullptr)
        throw config_error(source + ": " + std::string(key) + " is a FIT key but architecture is not \"fit\"");
    c.num_layers = integer("num_layers", true);
  }
  c.hidden_size = integer("hidden_size", true);
  c.num_heads = integer("num_attention_heads", true);
  const index_t vocab = integer("vocab_size", vocab_rows <= 0);
  if (vocab_rows > 0 && vocab > vocab_rows)
    throw config_error(source + ": vocab_size " + std::to_string(vocab) + " exceeds the " + std::to_string(vocab_rows) +
                       " rows of the embedding");
  c.vocab_size = vocab_rows > 0 ? vocab_rows : vocab;
  c.rotary_pct = number("rotary_pct", 0.25);
  c.layernorm_epsilon = number("layernorm_epsilon", 1e-5);
  c.rotary_base = number("rotary_emb_base", 10000.0);
  if (transformer) {
    c.intermediate_size = integer("intermediate_size", false);
    c.validate();
    return c;
  }
  // Token counts and pinned scales: an integer for every layer, or a list of one per layer. Without
  // lists, one entry stands for every layer; with lists (each checked first to have one entry per
  // layer, so num_layers is bounded by the text), one entry per layer.
  std::size_t entries = 1;
  for (const char* key : {"qkv_slot_num", "proj_slot_num", "ffn_slot_num", "qkv_scale_slot_num", "proj_scale_slot_num",
                          "ffn_scale_slot_num"}) {
    const Json* v = root.find(key);
    if (v == nullptr || !v->is_array()) continue;
    if (static_cast<index_t>(v->as_array(key).size()) != c.num_layers)
      throw config_error(source + ": " + std::string(key) + " has " + std::to_string(v->as_array(key).size()) +
                         " entries for " + std::to_string(c.num_layers) + " layers");
    entries = static_cast<std::size_t>(c.num_layers);
  }
  const auto per_layer = [&](const char* key, bool count) {
    std::vector<index_t> values(entries, 0);
    const Json* v = root.find(key);
    if (v == nullptr) {
      if (count) throw config_error(source + ": missing key \"" + std::string(key) + "\"");
      return values;
    }
    const std::string rule = count ? " must be a positive integer" : " must be a non-negative integer";
    const auto one = [&](const Json& x) {
      return detail::config_integer(x, key, count ? 1 : 0, source, rule + " or a list of one per layer");
    };
    if (!v->is_array()) {
      const index_t x = one(*v);
      for (auto& e : values) e = x;
      return values;
    }
    const Json::Array& list = v->as_array(key);
    if (static_cast<index_t>(list.size()) != c.num_layers)
      throw config_error(source + ": " + std::string(key) + " has " + std::to_string(list.size()) + " entries for " +
                         std::to_string(c.num_layers) + " layers");
    for (std::size_t i = 0; i < list.size(); ++i) values[i] = one(list[i]);
    return values;
  };
  const auto qkv = per_layer("qkv_slot_num", true), proj = per_layer("proj_slot_num", true),
             ffn = per_layer("ffn_slot_num", true), qkv_scale = per_layer("qkv_scale_slot_num", false),
             proj_scale = per_layer("proj_scale_slot_num", false), ffn_scale = per_layer("ffn_scale_slot_num", false);
  std::vector<LayerTokens> layers;
  for (std::size_t i = 0; i < qkv.size(); ++i)
    layers.push_back(LayerTokens{qkv[i], proj[i], ffn[i], qkv_scale[i], proj_scale[i], ffn_scale[i]});
  c.set_layers(layers);
  if (const Json* kind = root.find("norm_activation_type"); kind != nullptr) {
    if (!kind->is_string()) throw config_error(source + ": norm_activation_type must be a string");
    c.normalization = parse_normalization(kind->as_string());
  }
  c.validate();
  return c;
}

/// The architecture a config file names ("architecture", absent: tokenformer) without reading the
/// rest, so that a caller can pick the model type before the weights give the vocabulary size.
inline Architecture read_architecture(const std::string& path) {
  const Json root = parse_json(read_text_file(path), path);
  root.as_object(path);
  const Json* a = root.find("architecture");
  if (a == nullptr) return Architecture::tokenformer;
  if (!a->is_string()) throw config_error(path + ": architecture must be a string");
  return parse_architecture(a->as_string());
}

/// Reads an official config file; see parse_config.
inline ModelConfig read_config(const std::string& path, index_t vocab_rows = 0) {
  return parse_config(read_text_file(path), path, vocab_rows);
}

/// The official JSON of a config (pretty enough to read: one key per line).
inline std::string config_to_json(const ModelConfig& c) {
  Json::Object o{{"num_layers", Json(static_cast<long long>(c.num_layers))},
                 {"hidden_size", Json(static_cast<long long>(c.hidden_size))},
                 {"num_attention_heads", Json(static_cast<long long>(c.num_heads))},
                 {"vocab_size", Json(static_cast<long long>(c.vocab_size))},
                 {"rotary_pct", Json(c.rotary_pct)},
                 {"rotary_emb_base", Json(c.rotary_base)},
                 {"norm_activation_type", Json(to_string(c.normalization))},
                 {"layernorm_epsilon", Json(c.layernorm_epsilon)},
                 {"pos_emb", Json("rotary")},
                 {"norm", Json(c.architecture == Architecture::transformer ? "layernorm" : "layernorm_nonparam")},
                 {"final_norm", Json("layernorm")},
                 {"no_weight_tying", Json(false)}};
  if (c.architecture == Architecture::transformer) {
    o.erase("norm_activation_type");
    o["architecture"] = Json(to_string(c.architecture));
    o["intermediate_size"] = Json(static_cast<long long>(c.mlp_size()));
  }
  // Each token key: one integer where every layer agrees, else a list of one per layer. A pinned
  // scale key is left out where no layer pins it.
  // (Without per-layer counts every layer has the scalar fields: nothing is built per layer.)
  const auto tokens = [&](const char* key, index_t LayerTokens::*field, bool always) {
    const index_t first = c.layer(0).*field;
    bool uniform = true, any = first > 0;
    for (const LayerTokens& l : c.per_layer) {
      uniform = uniform && l.*field == first;
      any = any || l.*field > 0;
    }
    if (!always && !any) return;
    if (uniform) {
      o[key] = Json(static_cast<long long>(first));
    } else {
      Json::Array list;
      for (const LayerTokens& l : c.per_layer) list.push_back(Json(static_cast<long long>(l.*field)));
      o[key] = Json(list);
    }
  };
  if (c.architecture != Architecture::transformer) {
    tokens("qkv_slot_num", &LayerTokens::qkv, true);
    tokens("proj_slot_num", &LayerTokens::proj, true);
    tokens("ffn_slot_num", &LayerTokens::ffn, true);
    tokens("qkv_scale_slot_num", &LayerTokens::qkv_scale, false);
    tokens("proj_scale_slot_num", &LayerTokens::proj_scale, false);
    tokens("ffn_scale_slot_num", &LayerTokens::ffn_scale, false);
  }
  if (c.architecture == Architecture::fit) {
    o["architecture"] = Json(to_string(c.architecture));
    o["fit_layers"] = Json(c.fit.layers);
    o["group_size"] = Json(static_cast<long long>(c.fit.group_size));
    o["latents_per_group"] = Json(static_cast<long long>(c.fit.latents_per_group));
    o["latent_size"] = Json(static_cast<long long>(c.fit.latent_size));
    o["latent_attention_heads"] = Json(static_cast<long long>(c.fit.latent_heads));
    o["max_groups"] = Json(static_cast<long long>(c.fit.max_groups));
    o["causal"] = Json(c.fit.causal);
  }
  std::string out = "{\n";
  bool first = true;
  for (const auto& [k, v] : o) {
    out += first ? "  " : ",\n  ";
    first = false;
    out += Json(k).dump() + ": " + v.dump();
  }
  return out + "\n}\n";
}

/// Writes a config file atomically.
inline void write_config(const ModelConfig& c, const std::string& path) {
  const std::string text = config_to_json(c);
  write_file_atomically(path, [&](FileSink& sink) { sink.write(text.data(), text.size()); });
}

}  // namespace tokenformer::io

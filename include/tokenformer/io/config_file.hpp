// tokenformer/io/config_file.hpp: read and write model configs in the official JSON key names.
//
// Keys: num_layers, hidden_size, num_attention_heads, qkv_slot_num, proj_slot_num, ffn_slot_num,
// vocab_size, rotary_pct, norm_activation_type, layernorm_epsilon (default 1e-5), rotary_emb_base
// (default 10000). Keys of the official training configs that do not change the model (learning
// rate, ...) are ignored; the ones that would change it must have the values this library implements
// (pos_emb "rotary", norm "layernorm_nonparam", final_norm "layernorm", no_weight_tying false),
// otherwise config_error names the key. Extension keys written by growth with a pinned scale:
// qkv_scale_slot_num, proj_scale_slot_num, ffn_scale_slot_num (Θ's √n uses these counts).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

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
    try {
      return static_cast<index_t>(v->as_integer(key, 1, std::int64_t{1} << 31));
    } catch (const file_error& e) {
      throw config_error(source + ": " + std::string(key) + " must be a positive integer");
    }
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
  expect_value("pos_emb", "rotary");
  expect_value("norm", "layernorm_nonparam");
  expect_value("final_norm", "layernorm");
  if (const Json* tying = root.find("no_weight_tying"); tying != nullptr && !(tying->is_bool() && !tying->as_bool()))
    throw config_error(source + ": no_weight_tying must be false (embeddings are tied)");

  ModelConfig c;
  c.num_layers = integer("num_layers", true);
  c.hidden_size = integer("hidden_size", true);
  c.num_heads = integer("num_attention_heads", true);
  c.qkv_tokens = integer("qkv_slot_num", true);
  c.proj_tokens = integer("proj_slot_num", true);
  c.ffn_tokens = integer("ffn_slot_num", true);
  const index_t vocab = integer("vocab_size", vocab_rows <= 0);
  if (vocab_rows > 0 && vocab > vocab_rows)
    throw config_error(source + ": vocab_size " + std::to_string(vocab) + " exceeds the " + std::to_string(vocab_rows) +
                       " rows of the embedding");
  c.vocab_size = vocab_rows > 0 ? vocab_rows : vocab;
  c.rotary_pct = number("rotary_pct", 0.25);
  c.layernorm_epsilon = number("layernorm_epsilon", 1e-5);
  c.rotary_base = number("rotary_emb_base", 10000.0);
  c.qkv_scale_tokens = integer("qkv_scale_slot_num", false);
  c.proj_scale_tokens = integer("proj_scale_slot_num", false);
  c.ffn_scale_tokens = integer("ffn_scale_slot_num", false);
  if (const Json* kind = root.find("norm_activation_type"); kind != nullptr) {
    if (!kind->is_string()) throw config_error(source + ": norm_activation_type must be a string");
    c.normalization = parse_normalization(kind->as_string());
  }
  c.validate();
  return c;
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
                 {"qkv_slot_num", Json(static_cast<long long>(c.qkv_tokens))},
                 {"proj_slot_num", Json(static_cast<long long>(c.proj_tokens))},
                 {"ffn_slot_num", Json(static_cast<long long>(c.ffn_tokens))},
                 {"vocab_size", Json(static_cast<long long>(c.vocab_size))},
                 {"rotary_pct", Json(c.rotary_pct)},
                 {"rotary_emb_base", Json(c.rotary_base)},
                 {"norm_activation_type", Json(to_string(c.normalization))},
                 {"layernorm_epsilon", Json(c.layernorm_epsilon)},
                 {"pos_emb", Json("rotary")},
                 {"norm", Json("layernorm_nonparam")},
                 {"final_norm", Json("layernorm")},
                 {"no_weight_tying", Json(false)}};
  if (c.qkv_scale_tokens > 0) o["qkv_scale_slot_num"] = Json(static_cast<long long>(c.qkv_scale_tokens));
  if (c.proj_scale_tokens > 0) o["proj_scale_slot_num"] = Json(static_cast<long long>(c.proj_scale_tokens));
  if (c.ffn_scale_tokens > 0) o["ffn_scale_slot_num"] = Json(static_cast<long long>(c.ffn_scale_tokens));
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

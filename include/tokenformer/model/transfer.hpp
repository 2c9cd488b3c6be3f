// tokenformer/model/transfer.hpp: cross-architecture transfer (XATL, arXiv 2404.02684): warm-start a
// model of one architecture from a trained model of another.
//
// transfer(source, target, spec) writes into `target` every component it shares with `source`, by role
// and layer, and returns a report of what happened to each target tensor. Components:
//   embeddings   the word embeddings (the tied head)
//   norms        the final LayerNorm, and a Transformer block's two affine LayerNorms (TokenFormer and
//                FIT blocks have non-parametric LayerNorms: nothing to copy)
//   qkv, proj    the attention's query/key/value and output projections
//   ffn          the feed-forward layer (a Pattention, or a Transformer's MLP)
// Each group can be skipped (TransferSpec; XATL's skip_reten / skip_oproj / skip_mlp switches).
//
// Layers. Target layer j takes source layer layer_map[j] (-1: none). The default map pairs, in order,
// the self-attention layers (TokenFormer and Transformer layers, FIT's local and global units) of the
// model width on both sides: the target's first such layer takes the source's first, and so on (FIT
// global units of another latent width, and read/write units, take and give none; layers left over
// on either side are unused or initialized). An explicit map may send any source layer anywhere; a
// width that differs is then an error naming the tensor.
//
// Pattention -> Pattention: keys and values copied token by token. Equal token counts: "copied" (with
// the source's pinned scale: the same function, if both use the same Θ; a Θ that differs is noted in
// the report). The target has more tokens: the source's are copied as a prefix and the rest
// initialized the growth way (spec.new_tokens, default zero_keys with values ~ N(0, 2/(L·√C)) of the
// target; with spec.pin_scale, Θ's scale is pinned to the source's count, so under l2_norm_gelu and
// gelu_l2_norm zero keys leave the layer's function exactly the source's; not under softmax, see
// model/growth.hpp): "prefix-copied". The target has fewer: the source's first tokens, "truncated".
// Otherwise a Pattention's scale is its own token count.
// Linear -> Pattention (from the plain Transformer; "converted", an initialization, not an identity,
// because Θ's normalization differs from a plain GeLU):
//   MLP W2·gelu(W1·x + b1) + b2 -> FFN Pattention: key token i = row i of W1, value token i = row i of
//   W2ᵀ (column i of W2); biases dropped. Token count I; a target with more tokens gets the new ones
//   as spec.new_tokens says, one with fewer the first ones (the scale is never pinned here).
//   Attention Linear W [d_out, d_in] -> Pattention: key token i = row i of W, value token i = e_i (the
//   i-th unit vector), so that with d_out tokens the Pattention computes Θ(W·x), not W·x + b.
// Pattention -> MLP (into a Transformer): W1's first rows = the key tokens, W2's first columns = the
// value tokens ("converted"); the MLP's other rows/columns and biases keep the target's values. A
// Pattention has no Linear form for the attention projections: those stay initialized.
// Linear -> Linear, MLP -> MLP, norms: copied when the shapes agree, an error otherwise.
// Target tensors with no source (FIT's latents, read/write units by default, skipped groups) keep
// their values: initialize the target first.
//
// Freezing (XATL's freeze_copied_weights): spec.freeze_transferred freezes every tensor written from
// the source's values (copied, truncated; for prefix-copied ones the copied rows, Parameter::
// frozen_rows), so training first trains only the new parts. Converted tensors are initializations
// and train from the start. Unfreezer releases them later (after N steps, or when the validation
// loss stops improving, XATL's loss-improvement rule), with a learning-rate warmup of their own.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tokenformer/core/error.hpp"
#include "tokenformer/core/fit_config.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/layers/linear.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/layers/transformer_layer.hpp"
#include "tokenformer/model/growth.hpp"
#include "tokenformer/model/language_model.hpp"

namespace tokenformer {

/// What transfer did with one target tensor.
enum class TransferAction { copied, prefix_copied, truncated, converted, initialized, skipped };

/// The action's name in the report: "copied", "prefix-copied", "truncated", "converted",
/// "initialized" or "skipped".
inline const char* to_string(TransferAction a) {
  switch (a) {
    case TransferAction::copied: return "copied";
    case TransferAction::prefix_copied: return "prefix-copied";
    case TransferAction::truncated: return "truncated";
    case TransferAction::converted: return "converted";
    case TransferAction::initialized: return "initialized";
    case TransferAction::skipped: return "skipped";
  }
  return "unknown";
}

/// One target tensor: its name, the source tensor it came from ("" for none), the action and a note.
struct TransferEntry {
  std::string target;                                   ///< the target tensor's parameter name
  std::string source;                                   ///< the source tensor's name ("" for none)
  TransferAction action = TransferAction::initialized;  ///< what was done
  std::string note;                                     ///< why, or what differs (may be empty)
  bool frozen = false;  ///< frozen by freeze_transferred (whole tensor or its copied rows)
};

/// What transfer did, one entry per target tensor, in the target's parameter order.
struct TransferReport {
  std::vector<TransferEntry> entries;  ///< one per target tensor

  /// The number of entries with `action`.
  index_t count(TransferAction action) const {
    return static_cast<index_t>(
        std::count_if(entries.begin(), entries.end(), [&](const TransferEntry& e) { return e.action == action; }));
  }
  /// The entry of target tensor `target`, or nullptr when there is none.
  const TransferEntry* find(const std::string& target) const {
    for (const auto& e : entries)
      if (e.target == target) return &e;
    return nullptr;
  }
  /// A table: target, action, source, note; then the count of each action.
  std::string str() const {
    std::ostringstream out;
    for (const auto& e : entries) {
      out << e.target << "  " << to_string(e.action);
      if (!e.source.empty()) out << "  <- " << e.source;
      if (!e.note.empty()) out << "  (" << e.note << ")";
      if (e.frozen) out << "  [frozen]";
      out << "\n";
    }
    out << "copied " << count(TransferAction::copied) << ", prefix-copied " << count(TransferAction::prefix_copied)
        << ", truncated " << count(TransferAction::truncated) << ", converted " << count(TransferAction::converted)
        << ", initialized " << count(TransferAction::initialized) << ", skipped " << count(TransferAction::skipped)
        << " tensors\n";
    return out.str();
  }
};

/// What to transfer and how.
struct TransferSpec {
  ///@{
  /// Which components to transfer (see the header comment); a false one is skipped.
  bool embeddings = true, norms = true, qkv = true, proj = true, ffn = true;
  ///@}
  /// layer_map[j]: the source layer of target layer j (a FIT unit), or -1 for none; empty: the default
  /// map (see the header comment). Must have one entry per target layer.
  std::vector<index_t> layer_map;
  /// How target tokens beyond the source's start (as growth's TokenInit).
  TokenInit new_tokens = TokenInit::zero_keys;
  /// Pin Θ's scale of prefix-copied Pattentions to the source's token count.
  bool pin_scale = false;
  /// Freeze what came from the source (see the header comment).
  bool freeze_transferred = false;
  std::uint64_t seed = 0;  ///< for the new tokens' values

  /// Turns off the groups of a comma-separated list of embeddings, norms, qkv, proj, ffn; throws
  /// config_error naming an unknown one.
  void skip(const std::string& list) {
    std::stringstream ss(list);
    for (std::string name; std::getline(ss, name, ',');) {
      if (name == "embeddings")
        embeddings = false;
      else if (name == "norms")
        norms = false;
      else if (name == "qkv")
        qkv = false;
      else if (name == "proj")
        proj = false;
      else if (name == "ffn")
        ffn = false;
      else
        throw config_error("unknown transfer group '" + name + "' (expected embeddings, norms, qkv, proj or ffn)");
    }
  }
};

namespace transfer_detail {

enum Slot { query, key, value, proj, ffn, slot_count };
inline const char* slot_name(int s) {
  static const char* const names[] = {"query", "key", "value", "proj", "ffn"};
  return names[s];
}

/// One projection or feed-forward layer of a layer, in whichever form the block has.
template <class T, class Device>
struct Component {
  std::string name;  // the parameter path without the tensor name ("sequential.2.attention.query")
  Pattention<T, Device>* pattention = nullptr;
  Linear<T, Device>* linear = nullptr;      // an attention Linear, or the MLP's first layer
  Linear<T, Device>* linear_out = nullptr;  // the MLP's second layer
  bool present() const { return pattention != nullptr || linear != nullptr; }
};

template <class T, class Device>
struct LayerComponents {
  bool self_attention = true;  // false for FIT's read/write units
  index_t width = 0;           // the width of the stream the layer updates
  Component<T, Device> slots[slot_count];
  std::vector<std::pair<std::string, Parameter<T, Device>*>> norms;  // full names
};

/// The components of layer `i` of a model.
template <class Model>
LayerComponents<typename Model::scalar, std::decay_t<decltype(std::declval<Model&>().device())>> components(
    Model& model, index_t i) {
  using T = typename Model::scalar;
  using Device = std::decay_t<decltype(model.device())>;
  LayerComponents<T, Device> c;
  if constexpr (std::is_same<typename Model::Layer, TransformerLayer<T, Device>>::value) {
    auto& layer = model.layers.at(static_cast<std::size_t>(i));
    const std::string prefix = "sequential." + std::to_string(i + 2) + ".";
    c.width = layer.hidden_size();
    c.slots[query] = {prefix + "attention.query", nullptr, &layer.attention.query, nullptr};
    c.slots[key] = {prefix + "attention.key", nullptr, &layer.attention.key, nullptr};
    c.slots[value] = {prefix + "attention.value", nullptr, &layer.attention.value, nullptr};
    c.slots[proj] = {prefix + "attention.proj", nullptr, &layer.attention.proj, nullptr};
    c.slots[ffn] = {prefix + "mlp", nullptr, &layer.mlp_in, &layer.mlp_out};
    c.norms = {{prefix + "input_layernorm.weight", &layer.input_norm_weight},
               {prefix + "input_layernorm.bias", &layer.input_norm_bias},
               {prefix + "post_attention_layernorm.weight", &layer.post_norm_weight},
               {prefix + "post_attention_layernorm.bias", &layer.post_norm_bias}};
  } else {
    if constexpr (Model::whole_body) {
      const FitUnitKind kind = model.layers.at(0).units().at(static_cast<std::size_t>(i)).kind;
      c.self_attention = kind == FitUnitKind::local || kind == FitUnitKind::global;
    }
    model.for_each_pattention_of_layer(i, [&](const std::string& path, PattentionRole, Pattention<T, Device>& p) {
      const std::string last = path.substr(path.rfind('.') + 1);
      int slot = -1;
      for (int s = 0; s < slot_count; ++s)
        if (last == slot_name(s) || (s == ffn && last == "mlp")) slot = s;
      if (slot < 0) return;  // a Pattention of a role transfer does not know: left as it is
      c.slots[slot] = {path, &p, nullptr, nullptr};
      if (slot == query) c.width = p.input_features();
      if (slot == ffn && c.width == 0) c.width = p.input_features();
    });
  }
  return c;
}

template <class P>
std::vector<double> host_values(const P& p) {
  using T = typename std::decay_t<decltype(p.value)>::value_type;
  std::vector<T> host(static_cast<std::size_t>(p.value.size()));
  p.value.copy_to_host(host.data());
  return std::vector<double>(host.begin(), host.end());
}
template <class P>
void set_host_values(P& p, const std::vector<double>& values) {
  using T = typename std::decay_t<decltype(p.value)>::value_type;
  const std::vector<T> host(values.begin(), values.end());
  p.value.copy_from_host(host.data());
}

/// The running transfer: the report, the random draws for new tokens, the spec.
struct Context {
  const TransferSpec& spec;
  Rng rng;
  double target_value_std;                    // the target's official value std 2/(L·√C)
  std::map<std::string, TransferEntry> done;  // by target tensor name
};

inline std::string rows_note(index_t copied, index_t target_rows, const char* what) {
  return std::to_string(copied) + " of " + std::to_string(target_rows) + " " + what + " from the source";
}

template <class P>
void freeze(P& p, TransferEntry& e, const TransferSpec& spec, index_t copied_rows) {
  if (!spec.freeze_transferred) return;
  if (e.action == TransferAction::copied || e.action == TransferAction::truncated) {
    p.frozen = true;
    e.frozen = true;
  } else if (e.action == TransferAction::prefix_copied) {
    p.frozen_rows = copied_rows;
    e.frozen = true;
  }
}

inline TransferAction rows_action(index_t source_rows, index_t target_rows) {
  return source_rows == target_rows  ? TransferAction::copied
         : source_rows < target_rows ? TransferAction::prefix_copied
                                     : TransferAction::truncated;
}

/// Writes `keys` [n, d_in] and `values` [n, d_out] (host, row-major) into the target Pattention as its
/// first min(n, P) tokens; tokens beyond n start as spec.new_tokens says.
template <class T, class Device>
void write_tokens(Context& ctx, Pattention<T, Device>& target, const std::vector<double>& keys,
                  const std::vector<double>& values, index_t n) {
  const index_t P = target.tokens(), din = target.input_features(), dout = target.output_features();
  std::vector<double> k = host_values(target.key_parameter()), v = host_values(target.value_parameter());
  const index_t copy = std::min(n, P);
  std::copy(keys.begin(), keys.begin() + copy * din, k.begin());
  std::copy(values.begin(), values.begin() + copy * dout, v.begin());
  for (index_t row = copy; row < P; ++row) {
    const bool random_keys = ctx.spec.new_tokens == TokenInit::random || ctx.spec.new_tokens == TokenInit::random_keys;
    const bool random_values = ctx.spec.new_tokens == TokenInit::random || ctx.spec.new_tokens == TokenInit::zero_keys;
    for (index_t i = 0; i < din; ++i)
      k[static_cast<std::size_t>(row * din + i)] = random_keys ? ctx.rng.normal(0.0, 0.02) : 0.0;
    for (index_t i = 0; i < dout; ++i)
      v[static_cast<std::size_t>(row * dout + i)] = random_values ? ctx.rng.normal(0.0, ctx.target_value_std) : 0.0;
  }
  set_host_values(target.key_parameter(), k);
  set_host_values(target.value_parameter(), v);
}

template <class TS, class DS, class TT, class DT>
void transfer_component(Context& ctx, const Component<TS, DS>& from, const Component<TT, DT>& to) {
  const auto record = [&](const std::string& tensor, const std::string& source, TransferAction action,
                          const std::string& note) -> TransferEntry& {
    TransferEntry& e = ctx.done[tensor];
    e = TransferEntry{tensor, source, action, note, false};
    return e;
  };
  const auto width_error = [](const std::string& tensor, index_t have, const std::string& source, index_t want,
                              const char* what) {
    throw shape_error("transfer: " + tensor + " has " + what + " " + std::to_string(have) + ", but its source " +
                      source + " has " + std::to_string(want));
  };
  if (to.pattention != nullptr) {
    auto& p = *to.pattention;
    const std::string keys = to.name + ".key_param_tokens", values = to.name + ".value_param_tokens";
    if (from.pattention != nullptr) {
      auto& s = *from.pattention;
      if (s.input_features() != p.input_features())
        width_error(keys, p.input_features(), from.name + ".key_param_tokens", s.input_features(), "width");
      if (s.output_features() != p.output_features())
        width_error(values, p.output_features(), from.name + ".value_param_tokens", s.output_features(), "width");
      const index_t n = s.tokens(), P = p.tokens();
      write_tokens(ctx, p, host_values(s.key_parameter()), host_values(s.value_parameter()), n);
      const TransferAction action = rows_action(n, P);
      // Θ's scale: the source's pin for a whole copy (the same function), the source's count for a
      // pinned prefix copy, otherwise the target's own count (the official semantics).
      if (action == TransferAction::copied)
        p.pin_scale_tokens(s.pinned_scale_tokens());
      else if (action == TransferAction::prefix_copied && ctx.spec.pin_scale)
        p.pin_scale_tokens(s.scale_tokens());
      else
        p.pin_scale_tokens(0);
      std::string note = action == TransferAction::copied ? "" : rows_note(std::min(n, P), P, "tokens");
      if (s.normalization() != p.normalization())
        note += std::string(note.empty() ? "" : "; ") + "Θ differs: " + to_string(s.normalization()) + " -> " +
                to_string(p.normalization());
      freeze(p.key_parameter(), record(keys, from.name + ".key_param_tokens", action, note), ctx.spec, std::min(n, P));
      freeze(p.value_parameter(), record(values, from.name + ".value_param_tokens", action, note), ctx.spec,
             std::min(n, P));
      return;
    }
    if (from.linear_out != nullptr) {  // MLP -> FFN Pattention
      auto& w1 = *from.linear;
      auto& w2 = *from.linear_out;
      const index_t I = w1.output_features(), C = w1.input_features();
      if (C != p.input_features())
        width_error(keys, p.input_features(), from.name + ".dense_h_to_4h.weight", C, "width");
      if (w2.output_features() != p.output_features())
        width_error(values, p.output_features(), from.name + ".dense_4h_to_h.weight", w2.output_features(), "width");
      const std::vector<double> k = host_values(w1.weight), w2v = host_values(w2.weight);  // [I, C], [Cout, I]
      const index_t dout = w2.output_features();
      std::vector<double> v(static_cast<std::size_t>(I * dout));
      for (index_t i = 0; i < I; ++i)
        for (index_t o = 0; o < dout; ++o)
          v[static_cast<std::size_t>(i * dout + o)] = w2v[static_cast<std::size_t>(o * I + i)];
      write_tokens(ctx, p, k, v, I);
      const std::string note = "keys = rows of W1, values = columns of W2, biases dropped; " +
                               rows_note(std::min(I, p.tokens()), p.tokens(), "tokens");
      record(keys, from.name + ".dense_h_to_4h.weight", TransferAction::converted, note);
      record(values, from.name + ".dense_4h_to_h.weight", TransferAction::converted, note);
      return;
    }
    if (from.linear != nullptr) {  // attention Linear -> Pattention
      auto& w = *from.linear;
      const index_t out = w.output_features(), in = w.input_features();
      if (in != p.input_features()) width_error(keys, p.input_features(), from.name + ".weight", in, "width");
      if (out != p.output_features()) width_error(values, p.output_features(), from.name + ".weight", out, "width");
      std::vector<double> v(static_cast<std::size_t>(out * out), 0.0);
      for (index_t i = 0; i < out; ++i) v[static_cast<std::size_t>(i * out + i)] = 1.0;
      write_tokens(ctx, p, host_values(w.weight), v, out);
      const std::string note = "keys = rows of W, values = unit vectors, bias dropped; " +
                               rows_note(std::min(out, p.tokens()), p.tokens(), "tokens");
      record(keys, from.name + ".weight", TransferAction::converted, note);
      record(values, "", TransferAction::converted, note);
      return;
    }
    return;
  }
  if (to.linear_out != nullptr) {  // into a Transformer's MLP
    auto& w1 = *to.linear;
    auto& w2 = *to.linear_out;
    const std::string n1 = to.name + ".dense_h_to_4h", n2 = to.name + ".dense_4h_to_h";
    if (from.linear_out != nullptr) {  // MLP -> MLP
      auto& s1 = *from.linear;
      auto& s2 = *from.linear_out;
      if (s1.weight.shape() != w1.weight.shape())
        throw shape_error("transfer: " + n1 + ".weight has shape " + w1.weight.shape().str() + ", but its source " +
                          from.name + ".dense_h_to_4h.weight has " + s1.weight.shape().str());
      if (s2.weight.shape() != w2.weight.shape())
        throw shape_error("transfer: " + n2 + ".weight has shape " + w2.weight.shape().str() + ", but its source " +
                          from.name + ".dense_4h_to_h.weight has " + s2.weight.shape().str());
      const std::pair<Parameter<TT, DT>*, Parameter<TS, DS>*> pairs[] = {
          {&w1.weight, &s1.weight}, {&w1.bias, &s1.bias}, {&w2.weight, &s2.weight}, {&w2.bias, &s2.bias}};
      const char* const names[] = {".dense_h_to_4h.weight", ".dense_h_to_4h.bias", ".dense_4h_to_h.weight",
                                   ".dense_4h_to_h.bias"};
      for (int i = 0; i < 4; ++i) {
        set_host_values(*pairs[i].first, host_values(*pairs[i].second));
        freeze(*pairs[i].first, record(to.name + names[i], from.name + names[i], TransferAction::copied, ""), ctx.spec,
               0);
      }
      return;
    }
    if (from.pattention != nullptr) {  // FFN Pattention -> MLP
      auto& s = *from.pattention;
      const index_t C = w1.input_features(), I = w1.output_features(), dout = w2.output_features();
      if (s.input_features() != C)
        width_error(n1 + ".weight", C, from.name + ".key_param_tokens", s.input_features(), "width");
      if (s.output_features() != dout)
        width_error(n2 + ".weight", dout, from.name + ".value_param_tokens", s.output_features(), "width");
      const index_t copy = std::min(s.tokens(), I);
      std::vector<double> a = host_values(w1.weight), b = host_values(w2.weight);
      const std::vector<double> k = host_values(s.key_parameter()), v = host_values(s.value_parameter());
      std::copy(k.begin(), k.begin() + copy * C, a.begin());
      for (index_t i = 0; i < copy; ++i)
        for (index_t o = 0; o < dout; ++o)
          b[static_cast<std::size_t>(o * I + i)] = v[static_cast<std::size_t>(i * dout + o)];
      set_host_values(w1.weight, a);
      set_host_values(w2.weight, b);
      const std::string note = "rows of W1 = keys, columns of W2 = values; " + rows_note(copy, I, "hidden units");
      record(n1 + ".weight", from.name + ".key_param_tokens", TransferAction::converted, note);
      record(n2 + ".weight", from.name + ".value_param_tokens", TransferAction::converted, note);
      return;
    }
    return;
  }
  if (to.linear != nullptr && from.linear != nullptr) {  // attention Linear -> Linear
    auto& w = *to.linear;
    auto& s = *from.linear;
    if (s.weight.shape() != w.weight.shape())
      throw shape_error("transfer: " + to.name + ".weight has shape " + w.weight.shape().str() + ", but its source " +
                        from.name + ".weight has " + s.weight.shape().str());
    set_host_values(w.weight, host_values(s.weight));
    set_host_values(w.bias, host_values(s.bias));
    freeze(w.weight, record(to.name + ".weight", from.name + ".weight", TransferAction::copied, ""), ctx.spec, 0);
    freeze(w.bias, record(to.name + ".bias", from.name + ".bias", TransferAction::copied, ""), ctx.spec, 0);
  }
  // A Pattention into an attention Linear has no meaningful form: the target stays initialized.
}

/// Copies a whole parameter (rows as a prefix when the row counts differ, the widths must agree).
template <class PT, class PS>
void copy_rows(Context& ctx, PT& to, const std::string& to_name, PS& from, const std::string& from_name) {
  const Shape& a = to.shape();
  const Shape& b = from.shape();
  const index_t width_a = a.rank() > 1 ? a.numel() / a[0] : 1, width_b = b.rank() > 1 ? b.numel() / b[0] : 1;
  if (a.rank() != b.rank() || width_a != width_b || (a.rank() == 1 && a[0] != b[0]))
    throw shape_error("transfer: " + to_name + " has shape " + a.str() + ", but its source " + from_name + " has " +
                      b.str());
  std::vector<double> values = host_values(to);
  const std::vector<double> source = host_values(from);
  const index_t rows = std::min(a[0], b[0]);
  std::copy(source.begin(), source.begin() + rows * width_a, values.begin());
  set_host_values(to, values);
  const TransferAction action = a.rank() == 1 ? TransferAction::copied : rows_action(b[0], a[0]);
  TransferEntry& e = ctx.done[to_name];
  e = TransferEntry{to_name, from_name, action, action == TransferAction::copied ? "" : rows_note(rows, a[0], "rows"),
                    false};
  freeze(to, e, ctx.spec, rows);
}

}  // namespace transfer_detail

/// The default layer map from `source` to `target` (see the header comment).
template <class Source, class Target>
std::vector<index_t> default_layer_map(Source& source, Target& target) {
  std::vector<index_t> source_layers;
  for (index_t i = 0; i < source.layer_count(); ++i) {
    const auto c = transfer_detail::components(source, i);
    if (c.self_attention && c.width == source.hidden_size()) source_layers.push_back(i);
  }
  std::vector<index_t> map;
  std::size_t next = 0;
  for (index_t j = 0; j < target.layer_count(); ++j) {
    const auto c = transfer_detail::components(target, j);
    const bool takes = c.self_attention && c.width == source.hidden_size() && next < source_layers.size();
    map.push_back(takes ? source_layers[next++] : -1);
  }
  return map;
}

/// Writes the components `target` shares with `source` into `target` (see the header comment) and
/// returns what happened to every target tensor. Throws shape_error naming the tensor where widths
/// differ, argument_error for a bad layer map; the target may be partly written then.
template <class Source, class Target>
TransferReport transfer(Source& source, Target& target, const TransferSpec& spec = {}) {
  using namespace transfer_detail;
  std::vector<index_t> map = spec.layer_map.empty() ? default_layer_map(source, target) : spec.layer_map;
  if (static_cast<index_t>(map.size()) != target.layer_count())
    throw argument_error("transfer: the layer map has " + std::to_string(map.size()) + " entries for " +
                         std::to_string(target.layer_count()) + " target layers");
  for (index_t s : map)
    if (s < -1 || s >= source.layer_count())
      throw argument_error("transfer: layer map entry " + std::to_string(s) +
                           " is not a source layer (the source has " + std::to_string(source.layer_count()) +
                           ", -1 for none)");
  const double wang =
      2.0 / static_cast<double>(target.layer_count()) / std::sqrt(static_cast<double>(target.hidden_size()));
  Context ctx{spec, Rng(spec.seed), wang, {}};

  const auto skip_names = [&](const std::vector<std::string>& names, const char* group) {
    for (const auto& n : names)
      ctx.done[n] = TransferEntry{n, "", TransferAction::skipped, std::string("skip ") + group};
  };
  if (spec.embeddings)
    copy_rows(ctx, target.word_embeddings, "sequential.0.word_embeddings.weight", source.word_embeddings,
              "sequential.0.word_embeddings.weight");
  else
    skip_names({"sequential.0.word_embeddings.weight"}, "embeddings");

  // The final norm's names differ between stacks and bodies: find them by the model's own visitor.
  std::string target_norm[2], source_norm[2];
  target.for_each_parameter([&](const std::string& name, auto& p) {
    if (&p == &target.final_norm_weight) target_norm[0] = name;
    if (&p == &target.final_norm_bias) target_norm[1] = name;
  });
  source.for_each_parameter([&](const std::string& name, auto& p) {
    if (&p == &source.final_norm_weight) source_norm[0] = name;
    if (&p == &source.final_norm_bias) source_norm[1] = name;
  });
  if (spec.norms) {
    copy_rows(ctx, target.final_norm_weight, target_norm[0], source.final_norm_weight, source_norm[0]);
    copy_rows(ctx, target.final_norm_bias, target_norm[1], source.final_norm_bias, source_norm[1]);
  } else {
    skip_names({target_norm[0], target_norm[1]}, "norms");
  }

  for (index_t j = 0; j < target.layer_count(); ++j) {
    const auto to = components(target, j);
    const index_t s = map[static_cast<std::size_t>(j)];
    if (s < 0) continue;  // no source: every tensor of the layer is reported as initialized below
    const auto from = components(source, s);
    for (int slot = 0; slot < slot_count; ++slot) {
      const Component<typename Target::scalar, std::decay_t<decltype(target.device())>>& t = to.slots[slot];
      if (!t.present()) continue;
      const bool wanted = slot <= value ? spec.qkv : slot == proj ? spec.proj : spec.ffn;
      const char* group = slot <= value ? "qkv" : slot == proj ? "proj" : "ffn";
      if (!wanted) {
        target.for_each_parameter([&](const std::string& name, auto&) {
          if (name.compare(0, t.name.size() + 1, t.name + ".") == 0)
            ctx.done[name] = TransferEntry{name, "", TransferAction::skipped, std::string("skip ") + group};
        });
        continue;
      }
      if (!from.slots[slot].present()) continue;
      transfer_component(ctx, from.slots[slot], t);
    }
    for (const auto& [name, param] : to.norms) {
      if (!spec.norms) {
        ctx.done[name] = TransferEntry{name, "", TransferAction::skipped, "skip norms"};
        continue;
      }
      const std::string suffix = name.substr(name.find('.', name.find('.') + 1) + 1);  // after "sequential.N."
      for (const auto& [source_name, source_param] : from.norms)
        if (source_name.substr(source_name.find('.', source_name.find('.') + 1) + 1) == suffix)
          copy_rows(ctx, *param, name, *source_param, source_name);
    }
  }
  if constexpr (!std::is_same<typename Target::Layer, TransformerLayer<typename Target::scalar,
                                                                       std::decay_t<decltype(target.device())>>>::value)
    target.refresh_config_from_layers();  // pinned scales

  TransferReport report;
  target.for_each_parameter([&](const std::string& name, auto&) {
    const auto it = ctx.done.find(name);
    if (it != ctx.done.end())
      report.entries.push_back(it->second);
    else
      report.entries.push_back(TransferEntry{name, "", TransferAction::initialized, "no source", false});
  });
  return report;
}

/// When to release what freeze_transferred froze (all zero: never; Unfreezer::unfreeze does it by hand).
struct UnfreezeOptions {
  long after_steps = 0;          ///< unfreeze at this step (0: not by step count)
  double min_improvement = 0.0;  ///< or when the best validation loss improved by less than this fraction ...
  long patience = 0;             ///< ... over the last `patience` evaluations (0: not by loss)
  long warmup_steps = 0;         ///< then ramp their learning rate from 0 to the schedule's over this many steps

  /// Throws config_error for a negative count or a negative or non-finite min_improvement.
  void validate() const {
    if (after_steps < 0 || patience < 0 || warmup_steps < 0)
      throw config_error("unfreeze options must not be negative");
    if (!(min_improvement >= 0.0 && std::isfinite(min_improvement)))
      throw config_error("unfreeze min_improvement must be finite and >= 0");
  }
};

/// Releases the tensors that transfer froze (freeze_transferred), by the rule of UnfreezeOptions, and
/// ramps the learning rate (Parameter::lr_scale) of those frozen whole from 0 to 1 over warmup_steps
/// (a prefix-copied tensor's new rows were training all along: its copied rows are released without
/// a ramp). Call update() after every optimizer step. Their AdamW moments start at zero while the
/// optimizer's bias correction uses its global step count, so their first update is about
/// (1 − β1)/√(1 − β2) of a normal one (0.45 with the default betas). Frozen flags and lr_scale are
/// not saved in checkpoints: resume after the release, or release again by hand (unfreeze).
class Unfreezer {
 public:
  /// Watches the tensors that `report` marks frozen; throws config_error for invalid options.
  Unfreezer(const TransferReport& report, UnfreezeOptions options) : options_(options) {
    options_.validate();
    for (const auto& e : report.entries)
      if (e.frozen) {
        names_.push_back(e.target);
        if (e.action != TransferAction::prefix_copied) ramped_.push_back(e.target);
      }
  }

  bool unfrozen() const { return unfrozen_at_ >= 0; }  ///< whether the tensors were released
  /// The step at which update() released the tensors (-1: not yet).
  long unfrozen_at() const { return unfrozen_at_; }
  const std::vector<std::string>& frozen_names() const { return names_; }  ///< the tensors it releases

  /// After optimizer step `step` (1-based), with the validation loss of that step (NaN when not
  /// evaluated). Returns true on the step it unfreezes.
  template <class Model>
  bool update(Model& model, long step, double validation_loss) {
    if (unfrozen()) {
      set_lr_scale(model, step);
      return false;
    }
    if (std::isfinite(validation_loss)) losses_.push_back(validation_loss);
    bool release = options_.after_steps > 0 && step >= options_.after_steps;
    const auto window = static_cast<std::size_t>(options_.patience);
    if (options_.patience > 0 && losses_.size() > window) {
      const double before = *std::min_element(losses_.begin(), losses_.end() - static_cast<long>(window));
      const double now = *std::min_element(losses_.end() - static_cast<long>(window), losses_.end());
      release = release || (before - now) < options_.min_improvement * std::fabs(before);
    }
    if (!release) return false;
    unfreeze(model, step);
    return true;
  }

  /// Releases the frozen tensors now (at `step`, for the warmup).
  template <class Model>
  void unfreeze(Model& model, long step) {
    unfrozen_at_ = step;
    model.for_each_parameter([&](const std::string& name, auto& p) {
      if (std::find(names_.begin(), names_.end(), name) == names_.end()) return;
      p.frozen = false;
      p.frozen_rows = 0;
    });
    set_lr_scale(model, step);
  }

 private:
  template <class Model>
  void set_lr_scale(Model& model, long step) {
    const double scale =
        options_.warmup_steps <= 0
            ? 1.0
            : std::min(1.0, static_cast<double>(step - unfrozen_at_ + 1) / static_cast<double>(options_.warmup_steps));
    model.for_each_parameter([&](const std::string& name, auto& p) {
      if (std::find(ramped_.begin(), ramped_.end(), name) != ramped_.end()) p.lr_scale = scale;
    });
  }

  UnfreezeOptions options_;
  std::vector<std::string> names_;   // every frozen tensor
  std::vector<std::string> ramped_;  // those frozen whole: their learning rate ramps after release
  std::vector<double> losses_;
  long unfrozen_at_ = -1;
};

}  // namespace tokenformer

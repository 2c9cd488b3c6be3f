// tokenformer/layers/fit_body.hpp: the FIT body (arXiv 2305.12689) with Pattention projections, as
// the body of LanguageModel<Config, Device, FitBody>.
//
// The tokens [B, T, C] are cut into G = ceil(T/n) groups of n consecutive tokens (the last group is
// padded with zero rows that affect nothing); a latent stream [B, G*m, Cl] starts from the learned
// parameter `fit.latents` [max_groups, m, Cl] (groups 0..G-1). The units of config.fit.layers run in
// order (core/fit_config.hpp):
//   local   a TokenFormer layer on the tokens, attention within each group (causal within the group
//           for the decoder, full for the encoder), rotary at each token's place in the sequence
//   read    each group's latents attend to their group's tokens: CrossAttention, latents <- tokens
//   global  a TokenFormer layer on the latents, width Cl, latent_attention_heads heads, no rotary;
//           the decoder's attention is block-causal (a group's latents see their own and earlier
//           groups' latents), the encoder's full
//   write   each group's tokens attend to latents: CrossAttention, tokens <- latents. The decoder's
//           group g reads group g-1's latents and group 0 reads m zero rows, so no position sees a
//           later one; the encoder's group g reads its own.
// Attention inside a group costs O(n²) per group and the global layers O((G·m)²), so with n ~ T^(1/3)
// … T^(1/2) the body is sub-quadratic in T; with n fixed the local work is linear in T and the global
// work quadratic with a factor (m/n)².
//
// Widths and heads of read and write: each attends at the width of the stream it updates, with that
// stream's heads (read: latent_size and latent_attention_heads; write: hidden_size and
// num_attention_heads), so its output projection maps back to the same width. pix2seq's FIT uses
// min(latent, token) width and heads for both; the two agree when latent_size == hidden_size and
// latent_attention_heads == num_attention_heads (as in example 05 and the scaling benchmark).
//
// Initialization (LanguageModel::initialize): Pattentions as in the TokenFormer LM, with L = the number
// of units in the value std 2/(L·√C); the latents ~ N(0, 0.02). AdamW decays fit.latents like the
// embeddings, so rows of groups that training never reaches shrink toward zero.
//
// Parameter names: "fit.latents", "fit.{j}.{local|global}.attention.query.key_param_tokens", ...,
// "fit.{j}.{local|global}.mlp.*", "fit.{j}.{read|write}.{query|key|value|proj}.*" with j the unit.
#pragma once

#include <string>
#include <vector>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/error.hpp"
#include "tokenformer/core/fit_config.hpp"
#include "tokenformer/core/model_config.hpp"
#include "tokenformer/core/parameter.hpp"
#include "tokenformer/core/rng.hpp"
#include "tokenformer/core/tensor.hpp"
#include "tokenformer/kernels/kernels.hpp"
#include "tokenformer/layers/cross_attention.hpp"
#include "tokenformer/layers/tokenformer_layer.hpp"

namespace tokenformer {

/// The FIT body (tokens in groups, a latent stream, and local, read, global and write units with
/// Pattention projections) as the body of LanguageModel<Config, Device, FitBody>: [B·T, C] in and out.
template <class T, class Device = cpu>
class FitBody {
 public:
  /// LanguageModel builds one body instead of a stack of num_layers blocks, and names its
  /// parameters without a layer prefix.
  static constexpr bool is_body = true;
  static constexpr Architecture architecture = Architecture::fit;  ///< LanguageModel checks the config says "fit"

  FitBody() = default;
  /// The body of a model of `config` (architecture fit). `layer` is ignored (there is one body).
  explicit FitBody(const ModelConfig& config, Device device = {}, index_t /*layer*/ = 0)
      : device_(device), fit_(config.fit), hidden_size_(config.hidden_size) {
    if (config.architecture != Architecture::fit)
      throw config_error(std::string("FitBody needs a config with architecture fit, got ") +
                         to_string(config.architecture));
    config.validate();
    units_ = parse_fit_layers(fit_.layers);
    ModelConfig global = config;
    global.hidden_size = fit_.latent_size;
    global.num_heads = fit_.latent_heads;
    global.rotary_pct = 0.0;
    for (std::size_t j = 0; j < units_.size(); ++j) {
      const auto unit = static_cast<index_t>(j);
      const LayerTokens tokens = config.layer(unit);
      switch (units_[j].kind) {
        case FitUnitKind::local:
          slot_.push_back(static_cast<index_t>(layers_.size()));
          layers_.emplace_back(config, device, unit);
          break;
        case FitUnitKind::global:
          slot_.push_back(static_cast<index_t>(layers_.size()));
          layers_.emplace_back(global, device, unit);
          break;
        case FitUnitKind::read:
        case FitUnitKind::write: {
          const bool read = units_[j].kind == FitUnitKind::read;
          const index_t width = read ? fit_.latent_size : hidden_size_;
          const index_t source = read ? hidden_size_ : fit_.latent_size;
          const index_t heads = read ? fit_.latent_heads : config.num_heads;
          slot_.push_back(static_cast<index_t>(cross_.size()));
          cross_.emplace_back(width, source, heads, tokens.qkv, tokens.proj, config.normalization,
                              config.layernorm_epsilon, device);
          auto& c = cross_.back();
          for (auto* p : {&c.query, &c.key, &c.value}) p->pin_scale_tokens(tokens.qkv_scale);
          c.proj.pin_scale_tokens(tokens.proj_scale);
          break;
        }
      }
    }
    latents = Parameter<T, Device>(Shape{fit_.max_groups, fit_.latents_per_group, fit_.latent_size}, device);
  }

  /// The learned initial latents [max_groups, m, latent_size].
  Parameter<T, Device> latents;

  const FitConfig& fit() const { return fit_; }                               ///< the FIT sizes and layer string
  index_t unit_count() const { return static_cast<index_t>(units_.size()); }  ///< number of units
  const std::vector<FitUnit>& units() const { return units_; }                ///< the units in execution order
  /// The TokenFormer layer of a local or global unit; throws argument_error for another unit.
  TokenFormerLayer<T, Device>& layer(index_t unit) {
    check_unit(unit, true);
    return layers_[static_cast<std::size_t>(slot_[static_cast<std::size_t>(unit)])];
  }
  /// The cross-attention of a read or write unit; throws argument_error for another unit.
  CrossAttention<T, Device>& cross_attention(index_t unit) {
    check_unit(unit, false);
    return cross_[static_cast<std::size_t>(slot_[static_cast<std::size_t>(unit)])];
  }

  /// Visits (name, Parameter&) of every parameter: "fit.latents", then each unit's.
  template <class Visitor>
  void for_each_parameter(Visitor&& visit) {
    visit(std::string("fit.latents"), latents);
    for (index_t j = 0; j < unit_count(); ++j) {
      const std::string prefix = unit_prefix(j);
      const auto named = [&visit, &prefix](const std::string& name, Parameter<T, Device>& p) {
        visit(prefix + name, p);
      };
      if (is_layer(j))
        layer(j).for_each_parameter(named);
      else
        cross_attention(j).for_each_parameter(named);
    }
  }

  /// Visits (path, role, Pattention&) of every Pattention, unit by unit.
  template <class Visitor>
  void for_each_pattention(Visitor&& visit) {
    for (index_t j = 0; j < unit_count(); ++j) for_each_pattention_of_unit(j, visit);
  }
  /// The same for unit `j` alone ("fit.1.read.query", ...).
  template <class Visitor>
  void for_each_pattention_of_unit(index_t j, Visitor&& visit) {
    const std::string prefix = unit_prefix(j);
    const auto named = [&visit, &prefix](const std::string& path, PattentionRole role, Pattention<T, Device>& p) {
      visit(prefix + path, role, p);
    };
    if (is_layer(j))
      layer(j).for_each_pattention(named);
    else
      cross_attention(j).for_each_pattention(named);
  }

  /// Initializes what is not a Pattention: the latents ~ N(0, 0.02).
  void initialize_extra(Rng& rng) {
    std::vector<T> host(static_cast<std::size_t>(latents.size()));
    for (auto& v : host) v = static_cast<T>(rng.normal(0.0, 0.02));
    latents.value.copy_from_host(host.data());
  }

  /// out = body(x) for B sequences of T tokens. position_offset must be 0 (no KV cache yet).
  void forward(TensorView<T, Device> out,      // (B*T, C)
               TensorView<const T, Device> x,  // (B*T, C)
               index_t B, index_t T_len, index_t position_offset = 0) {
    const index_t C = hidden_size_, n = fit_.group_size, m = fit_.latents_per_group, Cl = fit_.latent_size;
    if (position_offset != 0) throw argument_error("FitBody runs whole sequences: position_offset must be 0");
    if (B <= 0 || T_len <= 0) throw shape_error("FitBody needs B > 0 and T > 0");
    expect_shape(Shape{x.rows(), x.cols()}, Shape{B * T_len, C}, "FitBody input");
    expect_shape(Shape{out.rows(), out.cols()}, Shape{B * T_len, C}, "FitBody output");
    const index_t G = (T_len + n - 1) / n;
    if (G > fit_.max_groups)
      throw shape_error("a sequence of " + std::to_string(T_len) + " tokens needs " + std::to_string(G) +
                        " groups of " + std::to_string(n) +
                        ", more than max_groups = " + std::to_string(fit_.max_groups));
    B_ = B;
    T_ = T_len;
    G_ = G;
    const index_t Tp = G * n, Mt = B * Tp, Ml = B * G * m;
    const bool padded = Tp != T_len;
    // Layouts of this length: local layers within groups, global layers over all latents.
    AttentionLayout local{fit_.causal ? kernels::AttentionMask::causal : kernels::AttentionMask::none, n, 1,
                          !fit_.causal && padded ? T_len : 0};
    AttentionLayout global{fit_.causal ? kernels::AttentionMask::block_causal : kernels::AttentionMask::none, 0, m, 0};
    const index_t read_last_keys = !fit_.causal && padded ? T_len - (G - 1) * n : 0;

    std::size_t token_states = 1, latent_states = 1, writes = 0;
    for (const FitUnit& u : units_) {
      token_states += u.kind == FitUnitKind::local || u.kind == FitUnitKind::write;
      latent_states += u.kind == FitUnitKind::read || u.kind == FitUnitKind::global;
      writes += u.kind == FitUnitKind::write;
    }
    tokens_.resize(token_states);
    latents_.resize(latent_states);
    sources_.resize(writes);
    for (auto& t : tokens_) t.resize(Shape{Mt, C});
    for (auto& t : latents_) t.resize(Shape{Ml, Cl});
    // The tokens, padded to G groups of n.
    for (index_t b = 0; b < B; ++b) {
      kernels::copy(device_, tokens_[0].data() + b * Tp * C, x.data() + b * T_len * C, T_len * C);
      if (padded) zero(tokens_[0].data() + (b * Tp + T_len) * C, (Tp - T_len) * C);
    }
    // The latents: row (b, g, i) is latents[g, i], gathered like an embedding lookup.
    latent_rows_.resize(Shape{Ml});
    {
      std::vector<std::int32_t> rows(static_cast<std::size_t>(Ml));
      for (index_t i = 0; i < Ml; ++i) rows[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % (G * m));
      latent_rows_.copy_from_host(rows.data());
    }
    kernels::embedding_forward(device_, latents_[0].data(), latent_rows_.data(), latents.value.data(), Ml, Cl);

    std::size_t t = 0, l = 0, w = 0;
    for (index_t j = 0; j < unit_count(); ++j) {
      switch (units_[static_cast<std::size_t>(j)].kind) {
        case FitUnitKind::local:
          layer(j).attention.set_layout(local);
          layer(j).forward(tokens_[t + 1], tokens_[t], B, Tp, 0);
          ++t;
          break;
        case FitUnitKind::read:
          cross_attention(j).forward(latents_[l + 1], latents_[l], tokens_[t], B * G, m, n, G, read_last_keys);
          ++l;
          break;
        case FitUnitKind::global:
          layer(j).attention.set_layout(global);
          layer(j).forward(latents_[l + 1], latents_[l], B, G * m, 0);
          ++l;
          break;
        case FitUnitKind::write: {
          const T* source = latents_[l].data();
          if (fit_.causal) {  // group g reads group g-1's latents, group 0 zeros
            sources_[w].resize(Shape{Ml, Cl});
            for (index_t b = 0; b < B; ++b) {
              zero(sources_[w].data() + b * G * m * Cl, m * Cl);
              kernels::copy(device_, sources_[w].data() + (b * G + 1) * m * Cl, latents_[l].data() + b * G * m * Cl,
                            (G - 1) * m * Cl);
            }
            source = sources_[w].data();
          }
          cross_attention(j).forward(tokens_[t + 1], tokens_[t], TensorView<const T, Device>(source, Shape{Ml, Cl}),
                                     B * G, n, m);
          ++t;
          ++w;
          break;
        }
      }
    }
    for (index_t b = 0; b < B; ++b)
      kernels::copy(device_, out.data() + b * T_len * C, tokens_[t].data() + b * Tp * C, T_len * C);
  }

  /// Backward of the last forward: adds parameter gradients (the latents' too) and writes dL/dx;
  /// d_x may alias d_out.
  void backward(TensorView<T, Device> d_x,          // (B*T, C)
                TensorView<const T, Device> d_out,  // (B*T, C)
                TensorView<const T, Device> x) {    // (B*T, C)
    const index_t B = B_, T_len = T_, G = G_, C = hidden_size_, n = fit_.group_size, m = fit_.latents_per_group,
                  Cl = fit_.latent_size;
    const index_t Tp = G * n, Mt = B * Tp, Ml = B * G * m;
    expect_shape(Shape{x.rows(), x.cols()}, Shape{B * T_len, C}, "FitBody backward input");
    expect_shape(Shape{d_out.rows(), d_out.cols()}, Shape{B * T_len, C}, "FitBody output gradient");
    d_tokens_.resize(Shape{Mt, C});
    d_latents_.resize(Shape{Ml, Cl});
    d_latents_.set_zero();
    for (index_t b = 0; b < B; ++b) {
      kernels::copy(device_, d_tokens_.data() + b * Tp * C, d_out.data() + b * T_len * C, T_len * C);
      if (Tp != T_len) zero(d_tokens_.data() + (b * Tp + T_len) * C, (Tp - T_len) * C);
    }
    std::size_t t = tokens_.size() - 1, l = latents_.size() - 1, w = sources_.size();
    for (index_t j = unit_count(); j-- > 0;) {
      switch (units_[static_cast<std::size_t>(j)].kind) {
        case FitUnitKind::local:
          --t;
          layer(j).backward(d_tokens_, d_tokens_, tokens_[t]);
          break;
        case FitUnitKind::global:
          --l;
          layer(j).backward(d_latents_, d_latents_, latents_[l]);
          break;
        case FitUnitKind::read:
          --l;
          cross_attention(j).backward(d_latents_, d_tokens_, d_latents_, latents_[l], tokens_[t]);
          break;
        case FitUnitKind::write:
          --t;
          --w;
          if (fit_.causal) {
            d_source_.resize(Shape{Ml, Cl});
            d_source_.set_zero();
            cross_attention(j).backward(d_tokens_, d_source_, d_tokens_, tokens_[t], sources_[w]);
            for (index_t b = 0; b < B; ++b)  // undo the shift: group g's source was group g-1's latents
              kernels::add(device_, d_latents_.data() + b * G * m * Cl, d_source_.data() + (b * G + 1) * m * Cl,
                           (G - 1) * m * Cl);
          } else {
            cross_attention(j).backward(d_tokens_, d_latents_, d_tokens_, tokens_[t], latents_[l]);
          }
          break;
      }
    }
    if (latents.training_enabled() && !latents.frozen)
      kernels::embedding_backward(device_, latents.grad.data(), d_latents_.data(), latent_rows_.data(), Ml, Cl);
    for (index_t b = 0; b < B; ++b)
      kernels::copy(device_, d_x.data() + b * T_len * C, d_tokens_.data() + b * Tp * C, T_len * C);
  }

 private:
  /// "fit.{j}.{kind}.": the unit's place and kind.
  std::string unit_prefix(index_t j) const { return "fit." + std::to_string(j) + "." + unit_name(j) + "."; }
  std::string unit_name(index_t j) const { return to_string(units_[static_cast<std::size_t>(j)].kind); }
  bool is_layer(index_t j) const {
    const FitUnitKind k = units_.at(static_cast<std::size_t>(j)).kind;
    return k == FitUnitKind::local || k == FitUnitKind::global;
  }
  void check_unit(index_t j, bool want_layer) const {
    if (j < 0 || j >= unit_count())
      throw argument_error("FIT unit " + std::to_string(j) + " does not exist (the body has " +
                           std::to_string(unit_count()) + ")");
    if (is_layer(j) != want_layer)
      throw argument_error("FIT unit " + std::to_string(j) + " is a " + unit_name(j) + " unit, not " +
                           (want_layer ? "a local or global layer" : "a read or write"));
  }
  void zero(T* p, index_t count) {
    device_memory<Device>::zero(device_, p, static_cast<std::size_t>(count) * sizeof(T));
  }

  Device device_{};
  FitConfig fit_;
  index_t hidden_size_ = 0;
  std::vector<FitUnit> units_;
  std::vector<index_t> slot_;                        // unit -> index into layers_ or cross_
  std::vector<TokenFormerLayer<T, Device>> layers_;  // local and global layers
  std::vector<CrossAttention<T, Device>> cross_;     // reads and writes
  index_t B_ = 0, T_ = 0, G_ = 0;
  // Activation cache of the last forward.
  std::vector<Tensor<T, Device>> tokens_;     // (B*G*n, C): the input, then each local or write unit's output
  std::vector<Tensor<T, Device>> latents_;    // (B*G*m, Cl): the initial latents, then each read or global output
  std::vector<Tensor<T, Device>> sources_;    // (B*G*m, Cl): each decoder write's shifted latents
  Tensor<std::int32_t, Device> latent_rows_;  // (B*G*m): row of fit.latents each latent starts from
  // Backward scratch.
  Tensor<T, Device> d_tokens_, d_latents_, d_source_;
};

}  // namespace tokenformer

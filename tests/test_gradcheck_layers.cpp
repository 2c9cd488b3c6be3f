// Finite-difference gradient checks in float64 of every layer and of the whole model, through the
// same harness as the kernels (tests/gradcheck.hpp).
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "tokenformer/core/presets.hpp"
#include "tokenformer/layers/cross_attention.hpp"
#include "tokenformer/layers/fit_body.hpp"
#include "tokenformer/layers/pattention.hpp"
#include "tokenformer/layers/self_attention.hpp"
#include "tokenformer/layers/tokenformer_layer.hpp"
#include "tokenformer/layers/transformer_layer.hpp"
#include "tokenformer/model/language_model.hpp"

// The file's own namespace: the test programs compile several test files as one translation unit
// (tests/CMakeLists.txt, TOKENFORMER_UNITY_TESTS), where helpers of the same name must not collide.
namespace test_gradcheck_layers {

using namespace tokenformer;
using gradcheck::GradCase;
using gradcheck::Inputs;
using gradcheck::Vector;
using test_util::random_vector;

namespace {

constexpr double tolerance = 1e-6;

void require_gradients_match(const GradCase& c, std::size_t max_entries = 400) {
  const auto r = gradcheck::check(c, 1, 1e-6, max_entries);
  INFO(c.name << ": " << r.where);
  CHECK(r.checked > 0);
  CHECK(r.max_error <= tolerance);
}

/// Copies inputs[first..] into the layer's parameters, in for_each_parameter order.
template <class Layer>
void set_parameters(Layer& layer, const Inputs& in, std::size_t first) {
  std::size_t k = first;
  layer.for_each_parameter([&](const std::string&, Parameter<double>& p) { p.value.copy_from_host(in[k++].data()); });
}
/// The layer's parameter values (or gradients) as inputs, in for_each_parameter order.
template <class Layer>
Inputs parameters_of(Layer& layer, bool gradients) {
  Inputs out;
  layer.for_each_parameter([&](const std::string&, Parameter<double>& p) {
    const auto& t = gradients ? p.grad : p.value;
    out.emplace_back(t.data(), t.data() + t.size());
  });
  return out;
}
template <class Layer>
void randomize_and_enable(Layer& layer, std::uint64_t seed) {
  Rng rng(seed);
  layer.for_each_parameter([&](const std::string&, Parameter<double>& p) {
    std::vector<double> v(static_cast<std::size_t>(p.size()));
    for (auto& x : v) x = rng.normal(0.0, 0.4);
    p.value.copy_from_host(v.data());
    p.enable_training();
  });
}

Tensor<double> tensor_of(const Vector& v, index_t rows, index_t cols) {
  Tensor<double> t(Shape{rows, cols});
  t.copy_from_host(v.data());
  return t;
}
Vector vector_of(const Tensor<double>& t) { return Vector(t.data(), t.data() + t.size()); }

/// The gradient check of a whole model's mean next-token loss over every parameter (randomized).
template <class Model>
void require_model_gradients_match(std::shared_ptr<Model> model, const std::string& name,
                                   const std::vector<std::int32_t>& tokens, const std::vector<std::int32_t>& targets,
                                   index_t B, index_t T, std::size_t max_entries, std::uint64_t seed = 9) {
  randomize_and_enable(*model, seed);
  GradCase c;
  c.name = name;
  c.inputs = parameters_of(*model, false);
  c.forward = [=](const Inputs& in) {
    set_parameters(*model, in, 0);
    model->zero_grad();
    return Vector{model->forward_backward(tokens, targets, B, T)};
  };
  c.backward = [=](const Inputs& in, const Vector& dy) {
    set_parameters(*model, in, 0);
    model->zero_grad();
    model->forward_backward(tokens, targets, B, T, dy[0]);
    return parameters_of(*model, true);
  };
  require_gradients_match(c, max_entries);
}

}  // namespace

TEST_CASE("gradcheck: Pattention (input, key tokens, value tokens), every normalization", "[gradcheck][layers]") {
  const index_t M = 6, din = 5, dout = 4, P = 7;
  for (auto kind : all_normalizations) {
    for (bool pinned : {false, true}) {
      auto layer = std::make_shared<Pattention<double>>(din, dout, P, kind);
      randomize_and_enable(*layer, 3);
      if (pinned) layer->pin_scale_tokens(4);
      GradCase c;
      c.name = std::string("Pattention ") + to_string(kind) + (pinned ? " pinned" : "");
      c.inputs = {random_vector<double>(M * din, 4)};
      for (auto& p : parameters_of(*layer, false)) c.inputs.push_back(p);
      c.forward = [=](const Inputs& in) {
        set_parameters(*layer, in, 1);
        Tensor<double> out(Shape{M, dout});
        layer->forward(out, tensor_of(in[0], M, din));
        return vector_of(out);
      };
      c.backward = [=](const Inputs& in, const Vector& dy) {
        set_parameters(*layer, in, 1);
        layer->for_each_parameter([](const std::string&, Parameter<double>& p) { p.zero_grad(); });
        const auto x = tensor_of(in[0], M, din);
        Tensor<double> out(Shape{M, dout}), dx(Shape{M, din});
        layer->forward(out, x);
        layer->backward(dx, tensor_of(dy, M, dout), x);
        Inputs grads{vector_of(dx)};
        for (auto& g : parameters_of(*layer, true)) grads.push_back(g);
        return grads;
      };
      require_gradients_match(c);
    }
  }
}

TEST_CASE("gradcheck: SelfAttention (input and all four Pattentions), causal and FIT's layouts",
          "[gradcheck][layers][fit]") {
  const index_t B = 2, T = 8, C = 8, H = 2;
  struct Case {
    const char* name;
    AttentionLayout layout;
  };
  const Case cases[] = {
      {"causal (the default layout)", {}},
      {"causal within groups of 4", {kernels::AttentionMask::causal, 4, 1, 0}},
      {"full within groups of 4, 2 padding rows", {kernels::AttentionMask::none, 4, 1, 6}},
      {"block-causal, blocks of 2", {kernels::AttentionMask::block_causal, 0, 2, 0}},
  };
  for (const Case& k : cases) {
    auto layer = std::make_shared<SelfAttention<double>>(C, H, 6, 3, 0.5, Normalization::l2_norm_gelu);
    layer->set_layout(k.layout);
    randomize_and_enable(*layer, 5);
    GradCase c;
    c.name = std::string("SelfAttention, ") + k.name;
    c.inputs = {random_vector<double>(B * T * C, 6)};
    for (auto& p : parameters_of(*layer, false)) c.inputs.push_back(p);
    c.forward = [=](const Inputs& in) {
      set_parameters(*layer, in, 1);
      Tensor<double> out(Shape{B * T, C});
      layer->forward(out, tensor_of(in[0], B * T, C), B, T);
      return vector_of(out);
    };
    c.backward = [=](const Inputs& in, const Vector& dy) {
      set_parameters(*layer, in, 1);
      layer->for_each_parameter([](const std::string&, Parameter<double>& p) { p.zero_grad(); });
      const auto x = tensor_of(in[0], B * T, C);
      Tensor<double> out(Shape{B * T, C}), dx(Shape{B * T, C});
      layer->forward(out, x, B, T);
      layer->backward(dx, tensor_of(dy, B * T, C), x);
      Inputs grads{vector_of(dx)};
      for (auto& g : parameters_of(*layer, true)) grads.push_back(g);
      return grads;
    };
    require_gradients_match(c);
  }
}

TEST_CASE("gradcheck: CrossAttention (queries, source, all four Pattentions), padded groups too",
          "[gradcheck][layers][fit]") {
  // 2 sequences of 3 groups: 2 queries of width 8 per group read 4 source rows of width 6 per group.
  const index_t sequences = 2, groups = 3, queries = 2, keys = 4, Cq = 8, Cs = 6;
  const index_t Mq = sequences * groups * queries, Mk = sequences * groups * keys;
  for (index_t last_keys : {index_t(0), index_t(3)}) {
    for (auto kind : {Normalization::l2_norm_gelu, Normalization::softmax}) {
      auto layer = std::make_shared<CrossAttention<double>>(Cq, Cs, 2, 5, 4, kind, 1e-5);
      randomize_and_enable(*layer, 12);
      GradCase c;
      c.name = std::string("CrossAttention ") + to_string(kind) + ", last group keys " + std::to_string(last_keys);
      c.inputs = {random_vector<double>(Mq * Cq, 13), random_vector<double>(Mk * Cs, 14)};
      for (auto& p : parameters_of(*layer, false)) c.inputs.push_back(p);
      const auto run = [=](const Inputs& in, Tensor<double>& out) {
        set_parameters(*layer, in, 2);
        layer->forward(out, tensor_of(in[0], Mq, Cq), tensor_of(in[1], Mk, Cs), sequences * groups, queries, keys,
                       groups, last_keys);
      };
      c.forward = [=](const Inputs& in) {
        Tensor<double> out(Shape{Mq, Cq});
        run(in, out);
        return vector_of(out);
      };
      c.backward = [=](const Inputs& in, const Vector& dy) {
        Tensor<double> out(Shape{Mq, Cq});
        run(in, out);
        layer->for_each_parameter([](const std::string&, Parameter<double>& p) { p.zero_grad(); });
        Tensor<double> d(Shape{Mq, Cq}), d_source(Shape{Mk, Cs});
        d.copy_from_host(dy.data());
        d_source.set_zero();
        layer->backward(d, d_source, d, tensor_of(in[0], Mq, Cq), tensor_of(in[1], Mk, Cs));  // d_x aliases d_out
        Inputs grads{vector_of(d), vector_of(d_source)};
        for (auto& g : parameters_of(*layer, true)) grads.push_back(g);
        return grads;
      };
      require_gradients_match(c);
    }
  }
}

TEST_CASE("gradcheck: TokenFormerLayer (input and all five Pattentions), every normalization", "[gradcheck][layers]") {
  const index_t B = 2, T = 4, C = 8;
  for (auto kind : all_normalizations) {
    ModelConfig config;
    config.num_layers = 1;
    config.hidden_size = C;
    config.num_heads = 2;
    config.qkv_tokens = 5;
    config.proj_tokens = 3;
    config.ffn_tokens = 9;
    config.vocab_size = 10;
    config.rotary_pct = 0.5;
    config.normalization = kind;
    auto layer = std::make_shared<TokenFormerLayer<double>>(config);
    randomize_and_enable(*layer, 7);
    GradCase c;
    c.name = std::string("TokenFormerLayer ") + to_string(kind);
    c.inputs = {random_vector<double>(B * T * C, 8, 2.0)};
    for (auto& p : parameters_of(*layer, false)) c.inputs.push_back(p);
    c.forward = [=](const Inputs& in) {
      set_parameters(*layer, in, 1);
      Tensor<double> out(Shape{B * T, C});
      layer->forward(out, tensor_of(in[0], B * T, C), B, T);
      return vector_of(out);
    };
    c.backward = [=](const Inputs& in, const Vector& dy) {
      set_parameters(*layer, in, 1);
      layer->for_each_parameter([](const std::string&, Parameter<double>& p) { p.zero_grad(); });
      const auto x = tensor_of(in[0], B * T, C);
      Tensor<double> out(Shape{B * T, C});
      layer->forward(out, x, B, T);
      Tensor<double> d(Shape{B * T, C});
      d.copy_from_host(dy.data());
      layer->backward(d, d, x);  // d_x aliases d_out
      Inputs grads{vector_of(d)};
      for (auto& g : parameters_of(*layer, true)) grads.push_back(g);
      return grads;
    };
    require_gradients_match(c);
  }
}

TEST_CASE("gradcheck: the whole language model's mean next-token loss, every parameter", "[gradcheck][model]") {
  struct Small : presets::Dynamic<double> {};
  ModelConfig config;
  config.num_layers = 2;
  config.hidden_size = 8;
  config.num_heads = 2;
  config.qkv_tokens = 4;
  config.proj_tokens = 3;
  config.ffn_tokens = 6;
  config.vocab_size = 11;
  config.rotary_pct = 0.5;
  const std::vector<std::int32_t> tokens{1, 4, 2, 9, 0, 3, 3, 7, 10, 5};
  const std::vector<std::int32_t> targets{4, 2, 9, 0, -1, 3, 7, 10, 5, 1};
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::softmax}) {
    config.normalization = kind;
    require_model_gradients_match(std::make_shared<LanguageModel<Small>>(config),
                                  std::string("LanguageModel ") + to_string(kind), tokens, targets, 2, 5, 200);
  }
}

TEST_CASE("gradcheck: the plain Transformer language model (Linear layers, GeLU MLP, affine norms), every parameter",
          "[gradcheck][model][transformer]") {
  ModelConfig config;
  config.architecture = Architecture::transformer;
  config.num_layers = 2;
  config.hidden_size = 8;
  config.num_heads = 2;
  config.intermediate_size = 12;
  config.vocab_size = 11;
  config.rotary_pct = 0.5;
  const std::vector<std::int32_t> tokens{1, 4, 2, 9, 0, 3, 3, 7, 10, 5};
  const std::vector<std::int32_t> targets{4, 2, 9, 0, -1, 3, 7, 10, 5, 1};
  require_model_gradients_match(
      std::make_shared<LanguageModel<presets::Dynamic<double>, cpu, TransformerLayer>>(config), "Transformer", tokens,
      targets, 2, 5, 200);
}

TEST_CASE("gradcheck: the whole FIT language model (decoder and encoder, padded), every parameter",
          "[gradcheck][model][fit]") {
  ModelConfig config;
  config.architecture = Architecture::fit;
  config.fit.group_size = 3;
  config.fit.latents_per_group = 2;
  config.fit.latent_size = 6;
  config.fit.latent_heads = 2;
  config.fit.max_groups = 3;
  config.hidden_size = 8;
  config.num_heads = 2;
  config.qkv_tokens = 4;
  config.proj_tokens = 3;
  config.ffn_tokens = 5;
  config.vocab_size = 11;
  config.rotary_pct = 0.5;
  const index_t B = 2, T = 7;  // 3 groups of 3, the last one holding 1 token
  const std::vector<std::int32_t> tokens{1, 4, 2, 9, 0, 3, 3, 7, 10, 5, 6, 8, 2, 1};
  const std::vector<std::int32_t> targets{4, 2, 9, 0, 3, 3, -1, 10, 5, 6, 8, 2, 1, 0};
  // Two blocks (a read consuming the previous block's latents) for the decoder, one for the encoder.
  for (bool causal : {true, false}) {
    config.fit.causal = causal;
    config.fit.layers = causal ? "(1)1(1)1(1)" : "(0)1(1)";
    config.num_layers = static_cast<index_t>(parse_fit_layers(config.fit.layers).size());
    config.normalization = causal ? Normalization::l2_norm_gelu : Normalization::softmax;
    require_model_gradients_match(std::make_shared<LanguageModel<presets::Dynamic<double>, cpu, FitBody>>(config),
                                  causal ? "FIT decoder" : "FIT encoder", tokens, targets, B, T, 120, 21);
  }
}

TEST_CASE("forward_backward accumulates gradients and rejects bad targets", "[model][training]") {
  LanguageModel<presets::Dynamic<double>> model(ModelConfig::from<presets::Tiny>());
  Rng rng(1);
  model.initialize(rng);
  const std::vector<std::int32_t> tokens{1, 2, 3, 4}, targets{2, 3, 4, 5};
  const double loss = model.forward_backward(tokens, targets, 1, 4);
  // Near-uniform predictions at init: logits have std ≈ 0.02·√64 ≈ 0.16 plus residual-stream noise.
  CHECK(loss > std::log(257.0) - 0.1);
  CHECK(loss < std::log(257.0) + 0.3);
  const double g1 = model.word_embeddings.grad[2 * 64 + 5];
  model.forward_backward(tokens, targets, 1, 4, 0.5);
  CHECK(model.word_embeddings.grad[2 * 64 + 5] == Approx(1.5 * g1).epsilon(1e-12));
  const std::vector<std::int32_t> bad{2, 3, 4, 257};
  CHECK_THROWS_WITH(model.forward_backward(tokens, bad, 1, 4), Catch::Contains("target id 257 at position 3"));
  const std::vector<std::int32_t> none{-1, -1, -1, -1};
  CHECK_THROWS_AS(model.forward_backward(tokens, none, 1, 4), argument_error);
}

}  // namespace test_gradcheck_layers

// The CUDA device against the CPU: every kernel on random inputs in float and double, the layers
// and the whole language model (forward, backward, AdamW, growth), and finite-difference gradient
// checks of the GPU backward kernels and model in float64 through tests/gradcheck.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "../attention_cases.hpp"
#include "../device_cases.hpp"
#include "../device_gradcheck.hpp"
#include "../gradcheck.hpp"
#include "tokenformer/tokenformer.hpp"

using namespace tokenformer;
using Gpu = tokenformer::cuda;  // `cuda` alone is ambiguous with CCCL's ::cuda namespace
using gradcheck::GradCase;
using gradcheck::Inputs;
using gradcheck::Vector;
using test_util::max_scaled_diff;
using test_util::random_vector;

int tokenformer_test_cuda_device_count() { return cuda_device_count(); }

namespace {

/// GPU against CPU: float sums run in another order, double agrees to rounding.
template <class T>
constexpr double tolerance = sizeof(T) == 8 ? 1e-10 : 2e-5;

template <class T>
Tensor<T, Gpu> to_gpu(const std::vector<T>& v) {
  Tensor<T, Gpu> t(Shape{static_cast<index_t>(v.size())});
  t.copy_from_host(v.data());
  return t;
}
template <class T>
std::vector<T> to_host(const Tensor<T, Gpu>& t) {
  std::vector<T> v(static_cast<std::size_t>(t.size()));
  t.copy_to_host(v.data());
  return v;
}
template <class T, class Device>
std::vector<T> host_values(const Tensor<T, Device>& t) {
  std::vector<T> v(static_cast<std::size_t>(t.size()));
  t.copy_to_host(v.data());
  return v;
}

/// Largest |a - b| / (1 + max |b|): relative to the tensor's scale.
template <class T>
double scaled_to_max(const std::vector<T>& a, const std::vector<T>& b) {
  double top = 0.0;
  for (const T x : b) top = std::fmax(top, std::fabs(static_cast<double>(x)));
  return test_util::max_abs_diff(a, b) / (1.0 + top);
}

}  // namespace

// ---- memory ---------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda tensors: zero-filled growth, reserve, copies and moves", "[cuda][tensor]", float, double) {
  using T = TestType;
  Tensor<T, Gpu> t(Shape{3, 4});
  CHECK(to_host(t) == std::vector<T>(12, T(0)));
  const std::vector<T> values = random_vector<T>(12, 1);
  t.copy_from_host(values.data());
  t.reserve(100);
  CHECK(t.capacity() == 100);
  CHECK(to_host(t) == values);
  t.resize(Shape{5, 4});  // new rows are zero, old rows keep their values
  std::vector<T> expected = values;
  expected.resize(20, T(0));
  CHECK(to_host(t) == expected);
  Tensor<T, Gpu> copy(t);
  t.set_zero();
  CHECK(to_host(copy) == expected);
  Tensor<T, Gpu> moved(std::move(copy));
  CHECK(to_host(moved) == expected);
  CHECK(copy.size() == 0);
}

TEST_CASE("cuda errors name the call", "[cuda][errors]") {
  CHECK_THROWS_WITH(Gpu::create(1 << 20), Catch::Contains("GPU 1048576 was asked for"));
  Tensor<float, Gpu> x(Shape{1, 300});
  CHECK_THROWS_AS(kernels::attention_forward(Gpu{}, x.data(), nullptr, x.data(), x.data(), x.data(),
                                             kernels::AttentionShape::causal(1, 1, 1, 300)),
                  config_error);
  CHECK_THROWS_AS(
      kernels::pattention_norm_forward(Gpu{}, x.data(), x.data(), 1, 300, static_cast<Normalization>(7), 300),
      config_error);
}

// ---- kernels ------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda gemm and batched gemm match the cpu, every transpose, alpha, beta and K = 0", "[cuda][gemm]",
                   float, double) {
  using T = TestType;
  const index_t M = 37, N = 53, K = 29, pad = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const index_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
      const index_t a_rows = ta ? K : M, b_rows = tb ? N : K;
      const auto a = random_vector<T>(static_cast<std::size_t>(a_rows * lda), 2);
      const auto b = random_vector<T>(static_cast<std::size_t>(b_rows * ldb), 3);
      for (const T beta : {T(0), T(0.75)}) {
        auto c = random_vector<T>(static_cast<std::size_t>(M * ldc), 4);
        auto ga = to_gpu(a), gb = to_gpu(b), gc = to_gpu(c);
        kernels::gemm(Gpu{}, gc.data(), ldc, ga.data(), lda, ta, gb.data(), ldb, tb, M, N, K, T(0.5), beta);
        kernels::gemm(cpu{}, c.data(), ldc, a.data(), lda, ta, b.data(), ldb, tb, M, N, K, T(0.5), beta);
        INFO("ta " << ta << " tb " << tb << " beta " << beta);
        CHECK(max_scaled_diff(to_host(gc), c) <= tolerance<T>);
      }
    }
  // K = 0: C = beta · C.
  auto c = random_vector<T>(12, 5);
  auto gc = to_gpu(c);
  kernels::gemm(Gpu{}, gc.data(), 4, static_cast<const T*>(nullptr), 1, false, static_cast<const T*>(nullptr), 4, false,
                3, 4, 0, T(1), T(2));
  for (auto& x : c) x *= 2;
  CHECK(max_scaled_diff(to_host(gc), c) <= tolerance<T>);
  // Batched: three independent products.
  const index_t batch = 3;
  const auto a = random_vector<T>(static_cast<std::size_t>(batch * M * K), 6);
  const auto b = random_vector<T>(static_cast<std::size_t>(batch * N * K), 7);
  std::vector<T> out(static_cast<std::size_t>(batch * M * N), T(0));
  auto ga = to_gpu(a), gb = to_gpu(b), gout = to_gpu(out);
  kernels::gemm_strided_batched(Gpu{}, gout.data(), N, M * N, ga.data(), K, M * K, false, gb.data(), K, N * K, true,
                                batch, M, N, K);
  kernels::gemm_strided_batched(cpu{}, out.data(), N, M * N, a.data(), K, M * K, false, b.data(), K, N * K, true, batch,
                                M, N, K);
  CHECK(max_scaled_diff(to_host(gout), out) <= tolerance<T>);
}

TEST_CASE("cuda gemm precisions: TF32 and BF16 round the inputs, accumulate in FP32", "[cuda][gemm]") {
  const index_t n = 256;
  const auto a = random_vector<float>(static_cast<std::size_t>(n * n), 8);
  const auto b = random_vector<float>(static_cast<std::size_t>(n * n), 9);
  std::vector<float> exact(static_cast<std::size_t>(n * n));
  kernels::gemm(cpu{}, exact.data(), n, a.data(), n, false, b.data(), n, false, n, n, n);
  const auto error_with = [&](GemmPrecision precision) {
    const Gpu device = Gpu::create(0, precision);
    Tensor<float, Gpu> ga(Shape{n, n}, device), gb(Shape{n, n}, device), gc(Shape{n, n}, device);
    ga.copy_from_host(a.data());
    gb.copy_from_host(b.data());
    kernels::gemm(device, gc.data(), n, ga.data(), n, false, gb.data(), n, false, n, n, n);
    return scaled_to_max(host_values(gc), exact);
  };
  const double fp32 = error_with(GemmPrecision::fp32), tf32 = error_with(GemmPrecision::tf32),
               bf16 = error_with(GemmPrecision::bf16);
  INFO("fp32 " << fp32 << ", tf32 " << tf32 << ", bf16 " << bf16);
  CHECK(fp32 <= 1e-6);
  CHECK(tf32 > fp32);  // the mode took effect
  CHECK(tf32 <= 2e-3);
  CHECK(bf16 <= 2e-2);
}

TEMPLATE_TEST_CASE("cuda pattention_norm forward and backward match the cpu, every kind, with an all-zero row",
                   "[cuda][pattention_norm]", float, double) {
  using T = TestType;
  for (auto kind : all_normalizations)
    for (index_t n : {7, 300, 1100})
      for (index_t scale_tokens : {n, index_t(64)}) {
        const index_t rows = 13;
        auto s = random_vector<T>(static_cast<std::size_t>(rows * n), 10, 1.5);
        std::fill(s.begin() + 2 * n, s.begin() + 3 * n, T(0));  // row 2 is all zero
        const auto dw = random_vector<T>(s.size(), 11);
        std::vector<T> out(s.size()), ds(s.size());
        auto gs = to_gpu(s), gdw = to_gpu(dw), gout = to_gpu(out), gds = to_gpu(ds);
        kernels::pattention_norm_forward(Gpu{}, gout.data(), gs.data(), rows, n, kind, scale_tokens);
        kernels::pattention_norm_forward(cpu{}, out.data(), s.data(), rows, n, kind, scale_tokens);
        kernels::pattention_norm_backward(Gpu{}, gds.data(), gdw.data(), gs.data(), rows, n, kind, scale_tokens);
        kernels::pattention_norm_backward(cpu{}, ds.data(), dw.data(), s.data(), rows, n, kind, scale_tokens);
        INFO(to_string(kind) << " n " << n << " scale_tokens " << scale_tokens);
        CHECK(max_scaled_diff(to_host(gout), out) <= tolerance<T>);
        CHECK(max_scaled_diff(to_host(gds), ds) <= tolerance<T>);
      }
}

TEMPLATE_TEST_CASE("cuda layer_norm forward and backward match the cpu, plain and affine", "[cuda][layer_norm]", float,
                   double) {
  using T = TestType;
  for (index_t C : {5, 768, 1000})
    for (bool affine : {false, true})
      for (bool accumulate : {false, true}) {
        const index_t rows = 9;
        const auto x = random_vector<T>(static_cast<std::size_t>(rows * C), 12, 2.0);
        const auto w = random_vector<T>(static_cast<std::size_t>(C), 13), bias = random_vector<T>(w.size(), 14);
        const auto dy = random_vector<T>(x.size(), 15);
        std::vector<T> out(x.size()), mean(rows), rstd(rows), dx = random_vector<T>(x.size(), 16);
        std::vector<T> dw = random_vector<T>(w.size(), 17), db = random_vector<T>(w.size(), 18);
        auto gx = to_gpu(x), gw = to_gpu(w), gb = to_gpu(bias), gdy = to_gpu(dy), gout = to_gpu(out),
             gmean = to_gpu(mean), grstd = to_gpu(rstd), gdx = to_gpu(dx), gdw = to_gpu(dw), gdb = to_gpu(db);
        const T* weight = affine ? w.data() : nullptr;
        const T* b = affine ? bias.data() : nullptr;
        const T* g_weight = affine ? gw.data() : nullptr;
        const T* g_b = affine ? gb.data() : nullptr;
        kernels::layer_norm_forward(Gpu{}, gout.data(), gmean.data(), grstd.data(), gx.data(), g_weight, g_b, rows, C,
                                    1e-5);
        kernels::layer_norm_forward(cpu{}, out.data(), mean.data(), rstd.data(), x.data(), weight, b, rows, C, 1e-5);
        kernels::layer_norm_backward(Gpu{}, gdx.data(), affine ? gdw.data() : nullptr, affine ? gdb.data() : nullptr,
                                     gdy.data(), gx.data(), g_weight, gmean.data(), grstd.data(), rows, C, accumulate);
        kernels::layer_norm_backward(cpu{}, dx.data(), affine ? dw.data() : nullptr, affine ? db.data() : nullptr,
                                     dy.data(), x.data(), weight, mean.data(), rstd.data(), rows, C, accumulate);
        INFO("C " << C << " affine " << affine << " accumulate " << accumulate);
        CHECK(max_scaled_diff(to_host(gout), out) <= tolerance<T>);
        CHECK(max_scaled_diff(to_host(gmean), mean) <= tolerance<T>);
        CHECK(max_scaled_diff(to_host(grstd), rstd) <= tolerance<T>);
        CHECK(max_scaled_diff(to_host(gdx), dx) <= tolerance<T>);
        CHECK(max_scaled_diff(to_host(gdw), dw) <= tolerance<T>);
        CHECK(max_scaled_diff(to_host(gdb), db) <= tolerance<T>);
      }
}

TEMPLATE_TEST_CASE("cuda rotary forward and backward match the cpu, partial rotation and offset", "[cuda][rotary]",
                   float, double) {
  using T = TestType;
  const index_t B = 2, T_len = 7, H = 3, D = 8;
  for (index_t rotary_dims : {0, 4, 8}) {
    auto x = random_vector<T>(static_cast<std::size_t>(B * T_len * H * D), 19);
    auto gx = to_gpu(x);
    kernels::rotary_forward(Gpu{}, gx.data(), B, T_len, H, D, rotary_dims, 10000.0, 5);
    kernels::rotary_forward(cpu{}, x.data(), B, T_len, H, D, rotary_dims, 10000.0, 5);
    CHECK(max_scaled_diff(to_host(gx), x) <= tolerance<T>);
    kernels::rotary_backward(Gpu{}, gx.data(), B, T_len, H, D, rotary_dims, 10000.0, 5);
    kernels::rotary_backward(cpu{}, x.data(), B, T_len, H, D, rotary_dims, 10000.0, 5);
    CHECK(max_scaled_diff(to_host(gx), x) <= tolerance<T>);
  }
}

TEMPLATE_TEST_CASE(
    "cuda attention forward and backward match the reference device: every mask, partial tiles, "
    "head sizes to 256",
    "[cuda][attention]", float, double) {
  using T = TestType;
  std::vector<kernels::AttentionShape> extra;
  for (index_t D : {64, 96, 128, 200}) {  // the wider heads of each kernel instantiation
    extra.push_back(kernels::AttentionShape::causal(1, 70, 2, D));
    extra.push_back(test_util::attention_case(2, 33, 47, 1, D, kernels::AttentionMask::none));
    extra.push_back(test_util::attention_case(1, 40, 40, 1, D, kernels::AttentionMask::block_causal, 8, 8));
  }
  device_cases::attention_matches_reference<T>(tolerance<T>, tolerance<T>, extra, Gpu{});
}

TEMPLATE_TEST_CASE(
    "cuda kernels match the reference device: gemm, Θ, LayerNorm, rotary, embedding, "
    "cross-entropy, AdamW",
    "[cuda][devices]", float, double) {
  device_cases::kernels_match_reference<TestType>(tolerance<TestType>, tolerance<TestType>, Gpu{});
}

TEST_CASE("cuda language model matches the reference device: logits, loss, gradients, AdamW steps", "[cuda][model]") {
  device_cases::model_matches_reference(1e-10, Gpu{});
}

TEST_CASE("cuda FIT language model matches the reference device (decoder, encoder, padded groups)",
          "[cuda][model][fit]") {
  device_cases::fit_model_matches_reference(1e-10, Gpu{});
}

TEST_CASE("cuda plain Transformer language model matches the reference device", "[cuda][model][transformer]") {
  device_cases::transformer_model_matches_reference(1e-10, Gpu{});
}

TEMPLATE_TEST_CASE("cuda attention_decode matches the reference attention of one query", "[cuda][generation]", float,
                   double) {
  device_cases::attention_decode_matches_reference<TestType>(tolerance<TestType>, Gpu{});
}

TEST_CASE("cuda KV-cache logits equal the full recompute at every step (double)", "[cuda][generation]") {
  device_cases::kv_cache_generation_matches_recompute(1e-10, Gpu{});
}

TEMPLATE_TEST_CASE("cuda embedding and fused cross-entropy match the cpu, repeated ids and ignored rows",
                   "[cuda][embedding][loss]", float, double) {
  using T = TestType;
  const index_t V = 50, C = 12, N = 6;
  const std::vector<std::int32_t> ids{3, 7, 3, 49, 0, 3}, targets{1, -1, 49, 0, 7, 3};
  const auto table = random_vector<T>(static_cast<std::size_t>(V * C), 24);
  const auto dout = random_vector<T>(static_cast<std::size_t>(N * C), 25);
  std::vector<T> out(static_cast<std::size_t>(N * C)), d_table = random_vector<T>(table.size(), 26);
  auto gids = to_gpu(ids), gtargets = to_gpu(targets);
  auto gtable = to_gpu(table), gdout = to_gpu(dout), gout = to_gpu(out), gd_table = to_gpu(d_table);
  kernels::embedding_forward(Gpu{}, gout.data(), gids.data(), gtable.data(), N, C);
  kernels::embedding_forward(cpu{}, out.data(), ids.data(), table.data(), N, C);
  CHECK(to_host(gout) == out);
  kernels::embedding_backward(Gpu{}, gd_table.data(), gdout.data(), gids.data(), N, C);
  kernels::embedding_backward(cpu{}, d_table.data(), dout.data(), ids.data(), N, C);
  CHECK(max_scaled_diff(to_host(gd_table), d_table) <= tolerance<T>);

  auto logits = random_vector<T>(static_cast<std::size_t>(N * V), 27, 3.0);
  std::vector<T> losses(static_cast<std::size_t>(N), T(9));
  auto glogits = to_gpu(logits), glosses = to_gpu(losses);
  const double gpu_total =
      kernels::cross_entropy_forward_backward(Gpu{}, glogits.data(), glosses.data(), gtargets.data(), N, V, 0.2);
  const double cpu_total =
      kernels::cross_entropy_forward_backward(cpu{}, logits.data(), losses.data(), targets.data(), N, V, 0.2);
  CHECK(std::fabs(gpu_total - cpu_total) <= tolerance<T> * (1 + std::fabs(cpu_total)));
  CHECK(max_scaled_diff(to_host(glosses), losses) <= tolerance<T>);
  CHECK(max_scaled_diff(to_host(glogits), logits) <= tolerance<T>);
}

TEMPLATE_TEST_CASE("cuda AdamW (single and fused over many parameters) and the gradient reductions match the cpu",
                   "[cuda][adamw]", float, double) {
  using T = TestType;
  const std::vector<index_t> sizes{1000, 1, 70000};
  std::vector<std::vector<T>> p, m, v, g;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const auto n = static_cast<std::size_t>(sizes[i]);
    p.push_back(random_vector<T>(n, 30 + i));
    m.push_back(random_vector<T>(n, 40 + i, 0.1));
    std::vector<T> squares = random_vector<T>(n, 50 + i, 0.1);
    for (auto& x : squares) x = x * x;
    v.push_back(squares);
    g.push_back(random_vector<T>(n, 60 + i));
  }
  std::vector<Tensor<T, Gpu>> gp, gm, gv, gg;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    gp.push_back(to_gpu(p[i]));
    gm.push_back(to_gpu(m[i]));
    gv.push_back(to_gpu(v[i]));
    gg.push_back(to_gpu(g[i]));
  }
  for (long step = 1; step <= 3; ++step) {
    // Parameter 0 alone, then all three fused (parameter 0 twice per step, on both devices).
    kernels::adamw_step(Gpu{}, gp[0].data(), gm[0].data(), gv[0].data(), gg[0].data(), sizes[0], 1e-2, 0.9, 0.95, 1e-8,
                        0.1, step);
    kernels::adamw_step(cpu{}, p[0].data(), m[0].data(), v[0].data(), g[0].data(), sizes[0], 1e-2, 0.9, 0.95, 1e-8, 0.1,
                        step);
    std::vector<kernels::AdamWSegment<T>> on_gpu, on_cpu;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const double decay = i == 1 ? 0.0 : 0.1;
      on_gpu.push_back({gp[i].data(), gm[i].data(), gv[i].data(), gg[i].data(), sizes[i], decay});
      on_cpu.push_back({p[i].data(), m[i].data(), v[i].data(), g[i].data(), sizes[i], decay});
    }
    kernels::adamw_step_many(Gpu{}, on_gpu.data(), on_gpu.size(), 1e-2, 0.9, 0.95, 1e-8, step);
    kernels::adamw_step_many(cpu{}, on_cpu.data(), on_cpu.size(), 1e-2, 0.9, 0.95, 1e-8, step);
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    INFO("parameter " << i);
    CHECK(max_scaled_diff(to_host(gp[i]), p[i]) <= tolerance<T>);
    CHECK(max_scaled_diff(to_host(gm[i]), m[i]) <= tolerance<T>);
    CHECK(max_scaled_diff(to_host(gv[i]), v[i]) <= tolerance<T>);
  }
  const double ss_gpu = kernels::sum_of_squares(Gpu{}, gg[2].data(), sizes[2]);
  const double ss_cpu = kernels::sum_of_squares(cpu{}, g[2].data(), sizes[2]);
  CHECK(std::fabs(ss_gpu - ss_cpu) <= 1e-6 * ss_cpu);
  kernels::scale(Gpu{}, gg[2].data(), T(0.5), sizes[2]);
  kernels::scale(cpu{}, g[2].data(), T(0.5), sizes[2]);
  CHECK(to_host(gg[2]) == g[2]);
  CHECK(kernels::first_non_finite(Gpu{}, gg[2].data(), sizes[2]) == -1);
  for (const T bad : {T(NAN), T(INFINITY), T(-INFINITY)}) {
    g[2][777] = bad;
    g[2][900] = bad;
    gg[2].copy_from_host(g[2].data());
    CHECK(kernels::first_non_finite(Gpu{}, gg[2].data(), sizes[2]) == 777);
  }
  Tensor<T, Gpu> copy(Shape{sizes[0]});
  kernels::copy(Gpu{}, copy.data(), gp[0].data(), sizes[0]);
  CHECK(to_host(copy) == to_host(gp[0]));
}

// ---- layers and the model -------------------------------------------------------------------------

namespace {

ModelConfig small_config(Normalization kind) {
  ModelConfig config;
  config.num_layers = 2;
  config.hidden_size = 32;
  config.num_heads = 2;
  config.qkv_tokens = 24;
  config.proj_tokens = 20;
  config.ffn_tokens = 48;
  config.vocab_size = 40;
  config.rotary_pct = 0.5;
  config.normalization = kind;
  return config;
}

template <class T>
struct SmallDynamic : presets::Dynamic<T> {};

template <class Model>
std::vector<std::vector<double>> gradients_of(Model& model) {
  std::vector<std::vector<double>> out;
  model.for_each_parameter([&](const std::string&, auto& p) {
    const auto host = host_values(p.grad);
    out.emplace_back(host.begin(), host.end());
  });
  return out;
}
template <class Model>
std::vector<std::vector<double>> values_of(Model& model) {
  std::vector<std::vector<double>> out;
  model.for_each_parameter([&](const std::string&, auto& p) {
    const auto host = host_values(p.value);
    out.emplace_back(host.begin(), host.end());
  });
  return out;
}
double worst(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  if (a.size() != b.size()) return INFINITY;
  double w = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) w = std::fmax(w, scaled_to_max(a[i], b[i]));
  return w;
}

}  // namespace

TEMPLATE_TEST_CASE("cuda Pattention and TokenFormerLayer forward and backward match the cpu", "[cuda][layers]", float,
                   double) {
  using T = TestType;
  const double tol = sizeof(T) == 8 ? 1e-9 : 1e-4;
  for (auto kind : all_normalizations) {
    const ModelConfig config = small_config(kind);
    TokenFormerLayer<T, cpu> host_layer(config);
    TokenFormerLayer<T, Gpu> gpu_layer(config);
    Rng rng(70);
    host_layer.for_each_parameter([&](const std::string&, Parameter<T, cpu>& p) {
      std::vector<T> v(static_cast<std::size_t>(p.size()));
      for (auto& x : v) x = static_cast<T>(rng.normal(0.0, 0.3));
      p.value.copy_from_host(v.data());
      p.enable_training();
    });
    copy_parameters(gpu_layer, host_layer);
    gpu_layer.for_each_parameter([](const std::string&, Parameter<T, Gpu>& p) { p.enable_training(); });
    const index_t B = 2, T_len = 19, C = config.hidden_size;
    const auto x = random_vector<T>(static_cast<std::size_t>(B * T_len * C), 71);
    const auto dy = random_vector<T>(x.size(), 72);
    Tensor<T, cpu> hx(Shape{B * T_len, C}), hy(Shape{B * T_len, C}), hd(Shape{B * T_len, C});
    Tensor<T, Gpu> gx(Shape{B * T_len, C}), gy(Shape{B * T_len, C}), gd(Shape{B * T_len, C});
    hx.copy_from_host(x.data());
    gx.copy_from_host(x.data());
    host_layer.forward(hy, hx, B, T_len);
    gpu_layer.forward(gy, gx, B, T_len);
    INFO(to_string(kind));
    CHECK(scaled_to_max(host_values(gy), host_values(hy)) <= tol);
    hd.copy_from_host(dy.data());
    gd.copy_from_host(dy.data());
    host_layer.backward(hd, hd, hx);
    gpu_layer.backward(gd, gd, gx);
    CHECK(scaled_to_max(host_values(gd), host_values(hd)) <= tol);
    CHECK(worst(gradients_of(gpu_layer), gradients_of(host_layer)) <= tol);
  }
}

TEMPLATE_TEST_CASE("cuda language model: logits, loss, gradients, AdamW steps and growth match the cpu",
                   "[cuda][model]", float, double) {
  using T = TestType;
  const double tol = sizeof(T) == 8 ? 1e-9 : 2e-4;
  const ModelConfig config = small_config(Normalization::l2_norm_gelu);
  LanguageModel<SmallDynamic<T>, cpu> host_model(config);
  LanguageModel<SmallDynamic<T>, Gpu> gpu_model(config);
  Rng rng(80);
  host_model.initialize(rng);
  copy_parameters(gpu_model, host_model);
  const index_t B = 2, T_len = 24;
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(B * T_len)), targets(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<std::int32_t>((i * 7 + 3) % 40);
    targets[i] = i % 11 == 5 ? -1 : static_cast<std::int32_t>((i * 5 + 1) % 40);
  }
  CHECK(scaled_to_max(host_values(gpu_model.forward(tokens, B, T_len)),
                      host_values(host_model.forward(tokens, B, T_len))) <= tol);
  CHECK(std::fabs(gpu_model.loss(tokens, targets, B, T_len) - host_model.loss(tokens, targets, B, T_len)) <= tol);
  // Training steps. In double the two devices follow the same trajectory (to rounding). In float they
  // cannot: AdamW's first update is lr·sign(g), so a gradient that is zero up to float rounding moves
  // its parameter by ±lr depending on the device. So float compares the gradients and loss of every
  // step from the same parameters (the GPU model is re-synchronized after each step), double also
  // the parameters after each AdamW step.
  constexpr bool exact = sizeof(T) == 8;
  AdamW host_adamw, gpu_adamw;
  for (int step = 0; step < 3; ++step) {
    host_model.zero_grad();
    gpu_model.zero_grad();
    const double host_loss = host_model.forward_backward(tokens, targets, B, T_len);
    const double gpu_loss = gpu_model.forward_backward(tokens, targets, B, T_len);
    INFO("step " << step);
    CHECK(std::fabs(gpu_loss - host_loss) <= tol);
    CHECK(worst(gradients_of(gpu_model), gradients_of(host_model)) <= tol);
    CHECK(std::fabs(global_gradient_norm(gpu_model) - global_gradient_norm(host_model)) <=
          tol * global_gradient_norm(host_model));
    clip_gradient_norm(host_model, 0.5);
    clip_gradient_norm(gpu_model, 0.5);
    check_finite(gpu_model, step, gpu_loss);
    host_adamw.step(host_model, 1e-2);
    gpu_adamw.step(gpu_model, 1e-2);
    if (exact)
      CHECK(worst(values_of(gpu_model), values_of(host_model)) <= tol);
    else
      copy_parameters(gpu_model, host_model);
  }
  // Growth in place on the GPU: zero-initialized new tokens leave the function unchanged, and random
  // growth with the same seed gives the same model on both devices.
  const auto before = host_values(gpu_model.forward(tokens, B, T_len));
  GrowthSpec zero;
  zero.qkv = 4;
  zero.proj = 4;
  zero.ffn = 8;
  zero.init = TokenInit::zero;
  zero.pin_scale = true;  // keeps Θ's √n: with zero keys the grown model computes the same function
  grow(gpu_model, zero);
  CHECK(gpu_model.layers[0].ffn.tokens() == config.ffn_tokens + 8);
  CHECK(scaled_to_max(host_values(gpu_model.forward(tokens, B, T_len)), before) <= tol);
  grow(host_model, zero);
  GrowthSpec random = zero;
  random.init = TokenInit::random;
  random.seed = 5;
  grow(gpu_model, random);
  grow(host_model, random);
  CHECK(worst(values_of(gpu_model), values_of(host_model)) <= tol);  // the same new tokens on both
  host_model.zero_grad();
  gpu_model.zero_grad();
  CHECK(std::fabs(gpu_model.forward_backward(tokens, targets, B, T_len) -
                  host_model.forward_backward(tokens, targets, B, T_len)) <= tol);
  CHECK(worst(gradients_of(gpu_model), gradients_of(host_model)) <= tol);
  // A NaN in a GPU gradient is found and named.
  std::vector<T> bad(static_cast<std::size_t>(gpu_model.final_norm_bias.size()), T(0));
  bad[3] = T(NAN);
  gpu_model.final_norm_bias.grad.copy_from_host(bad.data());
  CHECK_THROWS_WITH(check_finite(gpu_model, 7, 1.0), Catch::Contains("norm.bias") && Catch::Contains("index 3"));
}

// ---- finite-difference gradient checks on the GPU, float64 ---------------------------------------

namespace {

void require_gradients_match(const GradCase& c, std::size_t max_entries = 400) {
  const auto r = gradcheck::check(c, 1, 1e-6, max_entries);
  INFO(c.name << ": " << r.where);
  CHECK(r.checked > 0);
  CHECK(r.max_error <= 1e-6);
}

}  // namespace

TEST_CASE(
    "gradcheck on the GPU: every backward kernel (pattention_norm, layer_norm, rotary, attention with every "
    "mask, embedding, cross-entropy)",
    "[cuda][gradcheck]") {
  // The cases of tests/device_gradcheck.hpp, which the host tests run on the reference and cpu devices.
  for (const GradCase& c : device_gradcheck::kernel_cases(Gpu{})) require_gradients_match(c, 200);
}

TEST_CASE("gradcheck on the GPU: the whole language model's loss, every parameter", "[cuda][gradcheck][model]") {
  ModelConfig config = small_config(Normalization::softmax);
  config.hidden_size = 8;
  config.qkv_tokens = 4;
  config.proj_tokens = 3;
  config.ffn_tokens = 6;
  config.vocab_size = 11;
  auto model = std::make_shared<LanguageModel<SmallDynamic<double>, Gpu>>(config);
  Rng rng(99);
  model->initialize(rng);
  model->enable_training();
  const index_t B = 2, T_len = 5;
  const std::vector<std::int32_t> tokens{1, 4, 2, 9, 0, 3, 3, 7, 10, 5};
  const std::vector<std::int32_t> targets{4, 2, 9, 0, -1, 3, 7, 10, 5, 1};
  const auto set = [model](const Inputs& in) {
    std::size_t k = 0;
    model->for_each_parameter(
        [&](const std::string&, Parameter<double, Gpu>& p) { p.value.copy_from_host(in[k++].data()); });
  };
  GradCase c;
  c.name = "cuda LanguageModel";
  for (auto& v : values_of(*model)) c.inputs.push_back(v);
  c.forward = [=](const Inputs& in) {
    set(in);
    return Vector{model->loss(tokens, targets, B, T_len)};
  };
  c.backward = [=](const Inputs& in, const Vector& dy) {
    set(in);
    model->zero_grad();
    model->forward_backward(tokens, targets, B, T_len, dy[0]);
    return gradients_of(*model);
  };
  require_gradients_match(c, 60);
}

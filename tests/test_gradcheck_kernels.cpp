// Finite-difference gradient checks in float64 of every backward kernel, fast and reference.
#include <catch2/catch.hpp>

#include <algorithm>

#include "attention_cases.hpp"
#include "gradcheck.hpp"
#include "tokenformer/kernels/cpu.hpp"
#include "tokenformer/kernels/reference.hpp"

using namespace tokenformer;
using gradcheck::GradCase;
using gradcheck::Inputs;
using gradcheck::Vector;
using test_util::random_vector;

namespace {

constexpr double tolerance = 1e-6;

void require_gradients_match(const GradCase& c) {
  const auto r = gradcheck::check(c);
  INFO(c.name << ": " << r.where);
  CHECK(r.checked > 0);
  CHECK(r.max_error <= tolerance);
}

template <bool fast>
GradCase pattention_norm_case(Normalization kind, index_t rows, index_t n, index_t scale_tokens) {
  GradCase c;
  c.name = std::string(fast ? "cpu " : "reference ") + "pattention_norm " + to_string(kind);
  c.inputs = {random_vector<double>(static_cast<std::size_t>(rows * n), 11, 1.5)};
  c.forward = [=](const Inputs& in) {
    Vector out(in[0].size());
    kernels::reference::pattention_norm_forward(out.data(), in[0].data(), rows, n, kind, scale_tokens);
    return out;
  };
  c.backward = [=](const Inputs& in, const Vector& dy) {
    Vector dx(in[0].size());
    if (fast)
      kernels::pattention_norm_backward(cpu{}, dx.data(), dy.data(), in[0].data(), rows, n, kind, scale_tokens);
    else
      kernels::reference::pattention_norm_backward(dx.data(), dy.data(), in[0].data(), rows, n, kind, scale_tokens);
    return Inputs{dx};
  };
  return c;
}

}  // namespace

TEST_CASE("gradcheck: pattention_norm, every normalization, cpu and reference", "[gradcheck][pattention_norm]") {
  for (auto kind : all_normalizations) {
    for (auto [rows, n] : {std::array<index_t, 2>{1, 1}, {3, 5}, {4, 19}, {2, 37}}) {
      require_gradients_match(pattention_norm_case<true>(kind, rows, n, n));
      require_gradients_match(pattention_norm_case<false>(kind, rows, n, n));
      require_gradients_match(pattention_norm_case<true>(kind, rows, n, 3 * n + 2));  // pinned scale
    }
  }
}

TEST_CASE("gradcheck: pattention_norm gives zero gradient on an all-zero row", "[gradcheck][pattention_norm]") {
  for (auto kind : {Normalization::l2_norm_gelu, Normalization::gelu_l2_norm}) {
    Vector s(8, 0.0), dy = random_vector<double>(8, 3), ds(8, 1.0);
    kernels::pattention_norm_backward(cpu{}, ds.data(), dy.data(), s.data(), 1, 8, kind, 8);
    CHECK(std::all_of(ds.begin(), ds.end(), [](double v) { return v == 0.0; }));
  }
}

TEST_CASE("gradcheck: layer_norm, non-parametric and affine, cpu and reference", "[gradcheck][layer_norm]") {
  const index_t rows = 5, C = 13;
  for (bool affine : {false, true})
    for (bool fast : {false, true}) {
      GradCase c;
      c.name = std::string(fast ? "cpu" : "reference") + " layer_norm affine=" + (affine ? "1" : "0");
      c.inputs = {random_vector<double>(rows * C, 21, 2.0), random_vector<double>(C, 22), random_vector<double>(C, 23)};
      c.forward = [=](const Inputs& in) {
        Vector out(in[0].size());
        kernels::reference::layer_norm_forward<double>(out.data(), nullptr, nullptr, in[0].data(),
                                                       affine ? in[1].data() : nullptr, affine ? in[2].data() : nullptr,
                                                       rows, C, 1e-5);
        return out;
      };
      c.backward = [=](const Inputs& in, const Vector& dy) {
        Vector mean(rows), rstd(rows), y(in[0].size()), dx(in[0].size(), 7.0), dw(C, 0.0), db(C, 0.0);
        const double* w = affine ? in[1].data() : nullptr;
        kernels::reference::layer_norm_forward(y.data(), mean.data(), rstd.data(), in[0].data(), w,
                                               affine ? in[2].data() : nullptr, rows, C, 1e-5);
        double* dwp = affine ? dw.data() : nullptr;
        double* dbp = affine ? db.data() : nullptr;
        if (fast)
          kernels::layer_norm_backward(cpu{}, dx.data(), dwp, dbp, dy.data(), in[0].data(), w, mean.data(), rstd.data(),
                                       rows, C);
        else
          kernels::reference::layer_norm_backward(dx.data(), dwp, dbp, dy.data(), in[0].data(), w, mean.data(),
                                                  rstd.data(), rows, C);
        return Inputs{dx, dw, db};
      };
      if (!affine) c.skip = {1, 2};
      require_gradients_match(c);
    }
}

TEST_CASE("gradcheck: rotary, cpu and reference", "[gradcheck][rotary]") {
  const index_t B = 2, T = 6, H = 2, D = 8;
  for (index_t rot : {index_t{4}, index_t{8}})
    for (bool fast : {false, true}) {
      GradCase c;
      c.name = std::string(fast ? "cpu" : "reference") + " rotary dims " + std::to_string(rot);
      c.inputs = {random_vector<double>(B * T * H * D, 31)};
      c.forward = [=](const Inputs& in) {
        Vector x = in[0];
        kernels::reference::rotary_forward(x.data(), B, T, H, D, rot, 10000.0, 3);
        return x;
      };
      c.backward = [=](const Inputs&, const Vector& dy) {
        Vector dx = dy;
        if (fast)
          kernels::rotary_backward(cpu{}, dx.data(), B, T, H, D, rot, 10000.0, 3);
        else
          kernels::reference::rotary_backward(dx.data(), B, T, H, D, rot, 10000.0, 3);
        return Inputs{dx};
      };
      require_gradients_match(c);
    }
}

TEST_CASE("gradcheck: attention with every mask and cross lengths, cpu and reference", "[gradcheck][attention]") {
  std::uint64_t seed = 41;
  for (const auto& s : test_util::attention_gradcheck_cases())
    for (bool fast : {false, true}) {
      GradCase c;
      c.name = std::string(fast ? "cpu" : "reference") + " attention " + s.describe();
      const auto nq = static_cast<std::size_t>(s.query_rows() * s.width()),
                 nk = static_cast<std::size_t>(s.key_rows() * s.width());
      c.inputs = {random_vector<double>(nq, seed), random_vector<double>(nk, seed + 1),
                  random_vector<double>(nk, seed + 2)};
      seed += 3;
      c.forward = [=](const Inputs& in) {
        Vector out(nq);
        kernels::reference::attention_forward(out.data(), nullptr, in[0].data(), in[1].data(), in[2].data(), s);
        return out;
      };
      c.backward = [=](const Inputs& in, const Vector& dy) {
        Vector dq(nq, 5.0), dk(nk, 5.0), dv(nk, 5.0);  // stale values must be overwritten
        if (fast) {  // the CPU backward takes the CPU forward's output and log-sum-exp
          Vector out(nq), lse(static_cast<std::size_t>(s.lse_size()));
          kernels::attention_forward(cpu{}, out.data(), lse.data(), in[0].data(), in[1].data(), in[2].data(), s);
          kernels::attention_backward(cpu{}, dq.data(), dk.data(), dv.data(), dy.data(), in[0].data(), in[1].data(),
                                      in[2].data(), out.data(), lse.data(), s);
        } else {
          kernels::reference::attention_backward(dq.data(), dk.data(), dv.data(), dy.data(), in[0].data(), in[1].data(),
                                                 in[2].data(), s);
        }
        return Inputs{dq, dk, dv};
      };
      require_gradients_match(c);
    }
}

TEST_CASE("gradcheck: embedding, cpu and reference", "[gradcheck][embedding]") {
  const index_t V = 6, C = 5, N = 9;
  std::vector<std::int32_t> tokens{0, 3, 3, 5, 1, 0, 3, 2, 5};
  for (bool fast : {false, true}) {
    GradCase c;
    c.name = fast ? "cpu embedding" : "reference embedding";
    c.inputs = {random_vector<double>(V * C, 51)};
    c.forward = [=](const Inputs& in) {
      Vector out(N * C);
      kernels::reference::embedding_forward(out.data(), tokens.data(), in[0].data(), N, C);
      return out;
    };
    c.backward = [=](const Inputs&, const Vector& dy) {
      Vector d_table(V * C, 0.0);
      if (fast)
        kernels::embedding_backward(cpu{}, d_table.data(), dy.data(), tokens.data(), N, C);
      else
        kernels::reference::embedding_backward(d_table.data(), dy.data(), tokens.data(), N, C);
      return Inputs{d_table};
    };
    require_gradients_match(c);
  }
}

TEST_CASE("gradcheck: fused softmax cross-entropy, cpu and reference, with ignored rows", "[gradcheck][loss]") {
  const index_t N = 7, V = 19;
  std::vector<std::int32_t> targets{3, 0, 18, -1, 7, 7, 1};
  for (bool fast : {false, true}) {
    GradCase c;
    c.name = fast ? "cpu cross_entropy" : "reference cross_entropy";
    c.inputs = {random_vector<double>(N * V, 61, 3.0)};
    c.forward = [=](const Inputs& in) {
      Vector logits = in[0], losses(N);
      kernels::reference::cross_entropy_forward_backward(logits.data(), losses.data(), targets.data(), N, V, 1.0);
      return losses;
    };
    c.backward = [=](const Inputs& in, const Vector& dy) {
      // d loss_i / d logits_i = softmax − onehot; weight row i by dy[i].
      Vector grad = in[0], losses(N);
      if (fast)
        kernels::cross_entropy_forward_backward(cpu{}, grad.data(), losses.data(), targets.data(), N, V, 1.0);
      else
        kernels::reference::cross_entropy_forward_backward(grad.data(), losses.data(), targets.data(), N, V, 1.0);
      for (index_t i = 0; i < N; ++i)
        for (index_t j = 0; j < V; ++j) grad[static_cast<std::size_t>(i * V + j)] *= dy[static_cast<std::size_t>(i)];
      return Inputs{grad};
    };
    require_gradients_match(c);
  }
}

TEST_CASE("cross-entropy values by hand", "[kernels][loss]") {
  // Logits [0, ln 3] with target 1: p = [1/4, 3/4], loss = ln(4/3), gradient [1/4, −1/4].
  std::vector<double> logits{0.0, std::log(3.0)};
  std::vector<std::int32_t> target{1};
  const double loss = kernels::cross_entropy_forward_backward(cpu{}, logits.data(), static_cast<double*>(nullptr),
                                                              target.data(), 1, 2, 1.0);
  CHECK(loss == Approx(std::log(4.0 / 3.0)).epsilon(1e-14));
  CHECK(logits[0] == Approx(0.25).epsilon(1e-14));
  CHECK(logits[1] == Approx(-0.25).epsilon(1e-14));
}

TEMPLATE_TEST_CASE("backward kernels: cpu matches reference in float on larger shapes", "[kernels][backward]", float,
                   double) {
  const double tol = std::is_same<TestType, float>::value ? 1e-4 : 1e-10;
  {  // attention
    const index_t B = 2, T = 97, H = 2, D = 16;
    const std::size_t n = static_cast<std::size_t>(B * T * H * D);
    const auto q = random_vector<TestType>(n, 1), k = random_vector<TestType>(n, 2), v = random_vector<TestType>(n, 3),
               dout = random_vector<TestType>(n, 4);
    std::vector<TestType> a(n), b(n), c(n), ra(n), rb(n), rc(n), out(n), lse(static_cast<std::size_t>(B * H * T));
    const auto shape = kernels::AttentionShape::causal(B, T, H, D);
    kernels::attention_forward(cpu{}, out.data(), lse.data(), q.data(), k.data(), v.data(), shape);
    kernels::attention_backward(cpu{}, a.data(), b.data(), c.data(), dout.data(), q.data(), k.data(), v.data(),
                                out.data(), lse.data(), shape);
    kernels::reference::attention_backward(ra.data(), rb.data(), rc.data(), dout.data(), q.data(), k.data(), v.data(),
                                           shape);
    CHECK(test_util::max_scaled_diff(a, ra) <= tol);
    CHECK(test_util::max_scaled_diff(b, rb) <= tol);
    CHECK(test_util::max_scaled_diff(c, rc) <= tol);
  }
  for (auto kind : all_normalizations) {
    const index_t rows = 50, n = 300;
    const auto s = random_vector<TestType>(rows * n, 5, 2.0), dw = random_vector<TestType>(rows * n, 6);
    std::vector<TestType> fast(s.size()), ref(s.size());
    kernels::pattention_norm_backward(cpu{}, fast.data(), dw.data(), s.data(), rows, n, kind, n);
    kernels::reference::pattention_norm_backward(ref.data(), dw.data(), s.data(), rows, n, kind, n);
    INFO(to_string(kind));
    CHECK(test_util::max_scaled_diff(fast, ref) <= tol);
  }
}

// tokenformer/kernels/device_contract.hpp: the kernels a device must provide, checked at compile time.
//
// A device is a tag type (core/device.hpp) with a device_memory<Device> specialization and, in
// namespace tokenformer::kernels, one overload of each entry point below taking `const Device&` first.
// The layers, the model and the trainer call exactly these. check_device<Device, T>() stops the
// compilation with one message naming the first missing kernel and its signature, instead of an
// overload error deep inside a layer template. A new device's kernels must be declared before this
// header is included.
//
//   gemm(d, C, ldc, A, lda, transpose_a, B, ldb, transpose_b, M, N, K, alpha, beta)
//   pattention_norm_forward(d, out, scores, rows, n, kind, scale_tokens)
//   pattention_norm_backward(d, d_scores, d_weights, scores, rows, n, kind, scale_tokens)
//   layer_norm_forward(d, out, mean, rstd, x, weight, bias, rows, C, eps)
//   layer_norm_backward(d, dx, d_weight, d_bias, dy, x, weight, mean, rstd, rows, C, accumulate)
//   rotary_forward / rotary_backward(d, x, B, T, H, D, rotary_dims, base, position_offset)
//   attention_forward(d, out, lse, q, k, v, AttentionShape)
//   attention_backward(d, dq, dk, dv, dout, q, k, v, out, lse, AttentionShape)
//   attention_decode(d, out, q, k, v, scratch, keys, H, D) (one query row against a KV cache)
//   embedding_forward(d, out, tokens, table, N, C); embedding_backward(d, d_table, dout, tokens, N, C)
//   cross_entropy_forward_backward(d, logits_then_grad, losses, targets, N, V, grad_scale) -> double
//   adamw_step_many(d, segments, count, lr, beta1, beta2, eps, step)
//   gelu_forward(d, out, x, n); gelu_backward(d, dx, dy, x, n) (dx = dy · gelu'(x))
//   copy(d, out, in, n); scale(d, x, factor, n); add(d, y, x, n) (y += x); sum_of_squares(d, x, n) -> double;
//   first_non_finite(d, x, n) -> index_t
#pragma once

#include <cstdint>
#include <type_traits>

#include "tokenformer/core/config.hpp"
#include "tokenformer/core/device.hpp"
#include "tokenformer/core/normalization.hpp"
#include "tokenformer/kernels/adamw_segment.hpp"
#include "tokenformer/kernels/attention_shape.hpp"
// The devices' kernels come first: the probes below bind to the overloads declared before them.
#include "tokenformer/kernels/cpu.hpp"
#include "tokenformer/kernels/reference/device.hpp"
#if TOKENFORMER_CUDA_COMPILER
#include "tokenformer/kernels/cuda.cuh"
#endif

namespace tokenformer::kernels {

/// The probes behind check_device(): one per entry point, named after the kernel it probes.
namespace contract {

/// The placeholder for the probes' index_t arguments.
constexpr index_t i0 = 0;
///@{
/// Each probe is invocable with (device, T*) exactly when the kernel call inside its return type
/// compiles; the value arguments are placeholders of the kernel's parameter types.
constexpr auto gemm = [](const auto& d, auto* p) -> decltype(void(kernels::gemm(d, p, i0, p, i0, false, p, i0, false,
                                                                                i0, i0, i0, *p, *p))) {};
constexpr auto pattention_norm_forward =
    [](const auto& d,
       auto* p) -> decltype(void(kernels::pattention_norm_forward(d, p, p, i0, i0, Normalization::softmax, i0))) {};
constexpr auto pattention_norm_backward =
    [](const auto& d,
       auto* p) -> decltype(void(kernels::pattention_norm_backward(d, p, p, p, i0, i0, Normalization::softmax, i0))) {};
constexpr auto layer_norm_forward =
    [](const auto& d, auto* p) -> decltype(void(kernels::layer_norm_forward(d, p, p, p, p, p, p, i0, i0, 1e-5))) {};
constexpr auto layer_norm_backward = [](const auto& d, auto* p) -> decltype(void(kernels::layer_norm_backward(
                                                                    d, p, p, p, p, p, p, p, p, i0, i0, false))) {};
constexpr auto rotary_forward =
    [](const auto& d, auto* p) -> decltype(void(kernels::rotary_forward(d, p, i0, i0, i0, i0, i0, 1.0, i0))) {};
constexpr auto rotary_backward =
    [](const auto& d, auto* p) -> decltype(void(kernels::rotary_backward(d, p, i0, i0, i0, i0, i0, 1.0, i0))) {};
constexpr auto attention_forward =
    [](const auto& d, auto* p) -> decltype(void(kernels::attention_forward(d, p, p, p, p, p, AttentionShape{}))) {};
constexpr auto attention_backward = [](const auto& d, auto* p) -> decltype(void(kernels::attention_backward(
                                                                   d, p, p, p, p, p, p, p, p, p, AttentionShape{}))) {};
constexpr auto attention_decode =
    [](const auto& d, auto* p) -> decltype(void(kernels::attention_decode(d, p, p, p, p, p, i0, i0, i0))) {};
constexpr auto embedding_forward = [](const auto& d, auto* p)
    -> decltype(void(kernels::embedding_forward(d, p, static_cast<const std::int32_t*>(nullptr), p, i0, i0))) {};
constexpr auto embedding_backward = [](const auto& d, auto* p)
    -> decltype(void(kernels::embedding_backward(d, p, p, static_cast<const std::int32_t*>(nullptr), i0, i0))) {};
constexpr auto cross_entropy_forward_backward =
    [](const auto& d, auto* p) -> decltype(void(double(kernels::cross_entropy_forward_backward(
                                   d, p, p, static_cast<const std::int32_t*>(nullptr), i0, i0, 1.0)))) {};
constexpr auto adamw_step_many =
    [](const auto& d, auto* p) -> decltype(void(kernels::adamw_step_many(
                                   d, static_cast<const AdamWSegment<std::remove_pointer_t<decltype(p)>>*>(nullptr),
                                   std::size_t{0}, 1.0, 0.9, 0.95, 1e-8, 1L))) {};
constexpr auto gelu_forward = [](const auto& d, auto* p) -> decltype(void(kernels::gelu_forward(d, p, p, i0))) {};
constexpr auto gelu_backward = [](const auto& d, auto* p) -> decltype(void(kernels::gelu_backward(d, p, p, p, i0))) {};
constexpr auto copy = [](const auto& d, auto* p) -> decltype(void(kernels::copy(d, p, p, i0))) {};
constexpr auto scale = [](const auto& d, auto* p) -> decltype(void(kernels::scale(d, p, *p, i0))) {};
constexpr auto add =
    [](const auto& d,
       auto* p) -> decltype(void(kernels::add(d, p, static_cast<const std::remove_pointer_t<decltype(p)>*>(p), i0))) {};
constexpr auto sum_of_squares = [](const auto& d,
                                   auto* p) -> decltype(void(double(kernels::sum_of_squares(d, p, i0)))) {};
constexpr auto first_non_finite = [](const auto& d,
                                     auto* p) -> decltype(void(index_t(kernels::first_non_finite(d, p, i0)))) {};
///@}

/// True when Probe is invocable with (const Device&, T*): Device provides the probed kernel for T.
template <class Probe, class Device, class T>
constexpr bool provides = std::is_invocable<const Probe&, const Device&, T*>::value;

}  // namespace contract

/// True when Device provides every kernel of the contract for scalar T; otherwise a static_assert
/// names the first missing kernel.
template <class Device, class T>
constexpr bool check_device() {
  static_assert(is_device<Device>::value, "not a device: specialize tokenformer::is_device (core/device.hpp)");
  static_assert(std::is_floating_point<T>::value, "kernels take float or double");
  static_assert(contract::provides<decltype(contract::gemm), Device, T>,
                "the device lacks kernels::gemm(const Device&, T* C, index_t ldc, const T* A, index_t lda, bool, "
                "const T* B, index_t ldb, bool, index_t M, index_t N, index_t K, T alpha, T beta)");
  static_assert(contract::provides<decltype(contract::pattention_norm_forward), Device, T>,
                "the device lacks kernels::pattention_norm_forward(const Device&, T* out, const T* scores, index_t "
                "rows, index_t n, Normalization, index_t scale_tokens)");
  static_assert(contract::provides<decltype(contract::pattention_norm_backward), Device, T>,
                "the device lacks kernels::pattention_norm_backward(const Device&, T* d_scores, const T* d_weights, "
                "const T* scores, index_t rows, index_t n, Normalization, index_t scale_tokens)");
  static_assert(contract::provides<decltype(contract::layer_norm_forward), Device, T>,
                "the device lacks kernels::layer_norm_forward(const Device&, T* out, T* mean, T* rstd, const T* x, "
                "const T* weight, const T* bias, index_t rows, index_t C, double eps)");
  static_assert(contract::provides<decltype(contract::layer_norm_backward), Device, T>,
                "the device lacks kernels::layer_norm_backward(const Device&, T* dx, T* d_weight, T* d_bias, const T* "
                "dy, const T* x, const T* weight, const T* mean, const T* rstd, index_t rows, index_t C, bool)");
  static_assert(contract::provides<decltype(contract::rotary_forward), Device, T>,
                "the device lacks kernels::rotary_forward(const Device&, T* x, index_t B, index_t T, index_t H, "
                "index_t D, index_t rotary_dims, double base, index_t position_offset)");
  static_assert(contract::provides<decltype(contract::rotary_backward), Device, T>,
                "the device lacks kernels::rotary_backward(const Device&, T* dx, index_t B, index_t T, index_t H, "
                "index_t D, index_t rotary_dims, double base, index_t position_offset)");
  static_assert(contract::provides<decltype(contract::attention_forward), Device, T>,
                "the device lacks kernels::attention_forward(const Device&, T* out, T* lse, const T* q, const T* k, "
                "const T* v, const AttentionShape&)");
  static_assert(contract::provides<decltype(contract::attention_backward), Device, T>,
                "the device lacks kernels::attention_backward(const Device&, T* dq, T* dk, T* dv, const T* dout, "
                "const T* q, const T* k, const T* v, const T* out, const T* lse, const AttentionShape&)");
  static_assert(contract::provides<decltype(contract::attention_decode), Device, T>,
                "the device lacks kernels::attention_decode(const Device&, T* out, const T* q, const T* k, const T* "
                "v, T* scratch, index_t keys, index_t H, index_t D)");
  static_assert(contract::provides<decltype(contract::embedding_forward), Device, T>,
                "the device lacks kernels::embedding_forward(const Device&, T* out, const std::int32_t* tokens, "
                "const T* table, index_t N, index_t C)");
  static_assert(contract::provides<decltype(contract::embedding_backward), Device, T>,
                "the device lacks kernels::embedding_backward(const Device&, T* d_table, const T* dout, const "
                "std::int32_t* tokens, index_t N, index_t C)");
  static_assert(contract::provides<decltype(contract::cross_entropy_forward_backward), Device, T>,
                "the device lacks double kernels::cross_entropy_forward_backward(const Device&, T* logits_then_grad, "
                "T* losses, const std::int32_t* targets, index_t N, index_t V, double grad_scale)");
  static_assert(contract::provides<decltype(contract::adamw_step_many), Device, T>,
                "the device lacks kernels::adamw_step_many(const Device&, const AdamWSegment<T>*, std::size_t count, "
                "double lr, double beta1, double beta2, double eps, long step)");
  static_assert(contract::provides<decltype(contract::gelu_forward), Device, T>,
                "the device lacks kernels::gelu_forward(const Device&, T* out, const T* x, index_t n)");
  static_assert(contract::provides<decltype(contract::gelu_backward), Device, T>,
                "the device lacks kernels::gelu_backward(const Device&, T* dx, const T* dy, const T* x, index_t n)");
  static_assert(contract::provides<decltype(contract::copy), Device, T>,
                "the device lacks kernels::copy(const Device&, T* out, const T* in, index_t n)");
  static_assert(contract::provides<decltype(contract::scale), Device, T>,
                "the device lacks kernels::scale(const Device&, T* x, T factor, index_t n)");
  static_assert(contract::provides<decltype(contract::add), Device, T>,
                "the device lacks kernels::add(const Device&, T* y, const T* x, index_t n)");
  static_assert(contract::provides<decltype(contract::sum_of_squares), Device, T>,
                "the device lacks double kernels::sum_of_squares(const Device&, const T* x, index_t n)");
  static_assert(contract::provides<decltype(contract::first_non_finite), Device, T>,
                "the device lacks index_t kernels::first_non_finite(const Device&, const T* x, index_t n)");
  return true;
}

}  // namespace tokenformer::kernels

// Example 07, the firmware half: greedy text generation with the freestanding StaticModel, the same
// source for a Cortex-M (bare metal, output through semihosting) and for the host.
//
// What you will learn
//   1. What a program on a microcontroller needs from the library: one header
//      (tokenformer/embedded/static_model.hpp), the weights as constexpr arrays in flash (a header
//      written by `tokenformer-cli export-c`), and one static Arena in RAM. No heap, no exceptions,
//      no RTTI, no files, no threads.
//   2. How errors reach you without exceptions: set_error_handler.
// Read first: examples/07_embedded.cpp (trains and exports the model this program runs).
//
// Build: the exported header is included through the macro TOKENFORMER_MODEL_HEADER (a quoted path),
// its namespace is TOKENFORMER_MODEL_NAMESPACE (default tokenformer_model). For a Cortex-M:
//   tests/cross/cortex_m/build_and_run.sh examples/07_embedded_firmware.cpp OUT
//       -DTOKENFORMER_MODEL_HEADER='"model_data.hpp"' -I DIR_OF_MODEL_DATA   (one command line)
// and for the host the same flags with g++ -fno-exceptions -fno-rtti (tests/cross/run_cortex_m.sh does
// both and compares the outputs). Output: the prompt and continuation as text, the ids, and a
// checksum of the bits of the last logits (equal on every target built with
// TOKENFORMER_EMBEDDED_SCALAR and -ffp-contract=off).
#include <cstdint>

#include "tokenformer/embedded/static_model.hpp"

#ifndef TOKENFORMER_MODEL_HEADER
#error "define TOKENFORMER_MODEL_HEADER as the quoted path of a header written by tokenformer-cli export-c"
#endif
#include TOKENFORMER_MODEL_HEADER

#ifndef TOKENFORMER_MODEL_NAMESPACE
#define TOKENFORMER_MODEL_NAMESPACE tokenformer_model
#endif
#ifndef TOKENFORMER_NEW_TOKENS  // how many tokens to generate (fewer when the context fills up)
#define TOKENFORMER_NEW_TOKENS 80
#endif

#if defined(__arm__) && !defined(__linux__)
#include "semihosting.h"  // tests/cross/cortex_m: SYS_WRITE0 and SYS_EXIT
static void write_text(const char* text) { semihost_write(text); }
#else
#include <cstdio>
static void write_text(const char* text) { std::fputs(text, stdout); }
#endif

namespace model = TOKENFORMER_MODEL_NAMESPACE;
using Model = tokenformer::embedded::StaticModel<model::config, model::storage>;

// RAM: the KV cache and activations (.bss); flash: model::weights and the rotary table (.rodata).
static tokenformer::embedded::Arena<model::config> arena;

static void write_number(std::uint32_t value, int base) {
  char digits[12];
  int n = 0;
  do {
    const std::uint32_t d = value % static_cast<std::uint32_t>(base);
    digits[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
    value /= static_cast<std::uint32_t>(base);
  } while (value != 0);
  char text[13];
  for (int i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
  text[n] = '\0';
  write_text(text);
}

static void on_error(const char* message) {
  write_text("error: ");
  write_text(message);
  write_text("\n");
}

int main() {
  tokenformer::embedded::set_error_handler(on_error);
  static Model tiny(model::weights, arena);
  static const char prompt_text[] = "The ";
  std::int32_t prompt[sizeof prompt_text - 1];
  for (unsigned i = 0; i + 1 < sizeof prompt_text; ++i) prompt[i] = static_cast<unsigned char>(prompt_text[i]);
  static std::int32_t generated[TOKENFORMER_NEW_TOKENS];
  const auto count = tiny.generate_greedy(prompt, sizeof prompt_text - 1, generated, TOKENFORMER_NEW_TOKENS);

  write_text("text: ");
  write_text(prompt_text);
  char piece[2] = {0, 0};
  for (long i = 0; i < count; ++i) {
    const std::int32_t id = generated[i];
    if (id == 256) break;  // end of text in byte-level models
    piece[0] = id > 0 && id < 256 ? static_cast<char>(id) : '?';
    write_text(piece);
  }
  write_text("\nids:");
  for (long i = 0; i < count; ++i) {
    write_text(" ");
    write_number(static_cast<std::uint32_t>(generated[i]), 10);
  }
  // FNV-1a over the bits of the last step's logits.
  std::uint32_t hash = 2166136261u;
  for (long v = 0; v < model::config::vocab_size; ++v) {
    const std::uint32_t bits = __builtin_bit_cast(std::uint32_t, tiny.logits()[v]);
    for (int byte = 0; byte < 4; ++byte) hash = (hash ^ ((bits >> (8 * byte)) & 0xffu)) * 16777619u;
  }
  write_text("\nlogits checksum: ");
  write_number(hash, 16);
  write_text("\n");
  return count == TOKENFORMER_NEW_TOKENS ? 0 : 1;
}

// hello.cpp - smoke test for the Cortex-M7 bare-metal harness (build_and_run.sh).
//
// Checks semihosting output, FPU use (sqrt and multiply-add loops in float, no FMA
// contraction), .data copy, .bss zeroing and static constructors. Prints IEEE bit patterns so
// results can be compared with an x86 build of the same arithmetic. Returns 0 when all pass.
#include <stdint.h>
#include <string.h>

#include "semihosting.h"

namespace {

void write_hex(uint32_t value) {
  char text[11] = "0x";
  for (int i = 0; i < 8; ++i) {
    const uint32_t nibble = (value >> (28 - 4 * i)) & 0xFu;
    text[2 + i] = static_cast<char>(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
  }
  text[10] = '\0';
  semihost_write(text);
}

uint32_t bits(float value) {
  uint32_t result;
  memcpy(&result, &value, sizeof result);
  return result;
}

void report(const char* label, float value) {
  semihost_write(label);
  write_hex(bits(value));
  semihost_write("\n");
}

// Dynamically initialised global: its constructor must have run before main.
volatile int constructor_input = 42;  // in .data: also checks the .data copy
struct Initialised {
  int value;
  Initialised() : value(constructor_input + 1) {}
};
Initialised initialised;
int zeroed[64];  // in .bss

// Deterministic pseudo-random floats (including tiny and huge magnitudes).
uint32_t lcg_state = 12345u;
float next_float() {
  lcg_state = lcg_state * 1664525u + 1013904223u;
  const float unit = static_cast<float>(lcg_state >> 8) * (1.0f / 16777216.0f);
  return (unit - 0.5f) * 4.0f;
}

// Hash of the IEEE results of +, -, *, /, sqrt over many inputs (order-sensitive).
uint32_t arithmetic_hash(int count) {
  uint32_t hash = 2166136261u;
  const auto mix = [&hash](float value) { hash = (hash ^ bits(value)) * 16777619u; };
  for (int i = 0; i < count; ++i) {
    const float a = next_float();
    const float b = next_float() * 1e-20f;
    const float c = next_float() * 1e20f;
    mix(a + b);
    mix(a - c);
    mix(a * b);
    mix(c * c);  // overflows to inf for large c
    mix(b * b);  // underflows to subnormal/zero
    mix(a / (b + 1e-30f));
    mix(__builtin_sqrtf(a < 0 ? -a : a));
    mix(a * b + c);  // two roundings with -ffp-contract=off
  }
  return hash;
}

}  // namespace

int main() {
  semihost_write("hello from Cortex-M7 (QEMU mps2-an500)\n");
  int failures = 0;
  if (initialised.value != 43) {
    semihost_write("FAIL: static constructor or .data copy\n");
    ++failures;
  }
  for (int value : zeroed) {
    if (value != 0) {
      semihost_write("FAIL: .bss not zeroed\n");
      ++failures;
      break;
    }
  }

  // Float multiply-add loop: sum of i*0.5 for i < 1000 is exact in float (249750).
  float sum = 0.0f;
  for (int i = 0; i < 1000; ++i) {
    sum = sum + static_cast<float>(i) * 0.5f;
  }
  report("sum            = ", sum);
  if (sum != 249750.0f) {
    semihost_write("FAIL: multiply-add loop\n");
    ++failures;
  }
  volatile float two = 2.0f;  // volatile: computed at run time, not folded
  const float root = __builtin_sqrtf(two);
  report("sqrtf(2)       = ", root);
  if (bits(root) != 0x3fb504f3u) {
    semihost_write("FAIL: sqrtf(2)\n");
    ++failures;
  }
  // x*x - round(x*x) is 0 with separate roundings, 2^-24 if contracted into an FMA.
  volatile float x = 1.0f + 1.0f / 4096.0f;
  volatile float x_squared = x * x;
  const float contraction_error = x * x - x_squared;
  report("x*x - (x*x)    = ", contraction_error);
  if (contraction_error != 0.0f) {
    semihost_write("FAIL: multiply-add was fused (build with -ffp-contract=off)\n");
    ++failures;
  }
  volatile float zero = 0.0f;
  report("0/0 (NaN)      = ", zero / zero);
  report("sqrtf(-1)      = ", __builtin_sqrtf(-two));
  semihost_write("arithmetic hash = ");
  write_hex(arithmetic_hash(100000));
  semihost_write("\n");

  semihost_write(failures == 0 ? "PASS\n" : "FAILED\n");
  return failures;
}

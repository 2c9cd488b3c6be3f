/* semihosting.h - minimal ARM semihosting API for the bare-metal Cortex-M test harness.
 *
 * Output and exit go through the debugger/emulator (QEMU with -semihosting) via `bkpt 0xab`,
 * so no UART driver, no stdio and no heap is involved. Usable from C and C++.
 *
 *   semihost_write("text\n");   // SYS_WRITE0: NUL-terminated string to the host's stdout
 *   semihost_exit(code);        // SYS_EXIT_EXTENDED: QEMU exits with `code` as its status
 */
#ifndef TOKENFORMER_CORTEX_M_SEMIHOSTING_H
#define TOKENFORMER_CORTEX_M_SEMIHOSTING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  SEMIHOST_SYS_WRITE0 = 0x04,
  SEMIHOST_SYS_EXIT = 0x18,
  SEMIHOST_SYS_EXIT_EXTENDED = 0x20,
  SEMIHOST_ADP_STOPPED_RUNTIME_ERROR = 0x20023,
  SEMIHOST_ADP_STOPPED_APPLICATION_EXIT = 0x20026
};

/* One semihosting call: operation in r0, argument in r1, result back in r0. */
static inline uintptr_t semihost_call(uintptr_t op, uintptr_t arg) {
  uintptr_t result;
  __asm__ volatile(
      "mov r0, %1\n\t"
      "mov r1, %2\n\t"
      "bkpt 0xab\n\t"
      "mov %0, r0"
      : "=r"(result)
      : "r"(op), "r"(arg)
      : "r0", "r1", "memory");
  return result;
}

/* Writes a NUL-terminated string to the host's stdout. */
static inline void semihost_write(const char* text) { semihost_call(SEMIHOST_SYS_WRITE0, (uintptr_t)text); }

/* Ends the program; QEMU's exit status becomes `code` (SYS_EXIT_EXTENDED, semihosting v2). */
static inline __attribute__((noreturn)) void semihost_exit(int code) {
  uintptr_t block[2] = {SEMIHOST_ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)code};
  semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, (uintptr_t)block);
  /* Fallback for hosts without SYS_EXIT_EXTENDED: the A32/T32 SYS_EXIT only tells 0 from non-0. */
  semihost_call(SEMIHOST_SYS_EXIT,
                code == 0 ? SEMIHOST_ADP_STOPPED_APPLICATION_EXIT : SEMIHOST_ADP_STOPPED_RUNTIME_ERROR);
  for (;;) {
  }
}

#ifdef __cplusplus
}
#endif

#endif /* TOKENFORMER_CORTEX_M_SEMIHOSTING_H */

/* startup.c - bare-metal startup for the Cortex-M7 test harness (QEMU mps2-an500).
 *
 * Vector table, reset handler (FPU on, .data copy, .bss zero, static constructors, main,
 * semihosting exit with main's return code) and fault handlers that report the fault and
 * exit with status 3. Symbols come from mps2_an500.ld. No heap, no stdio, no newlib crt0.
 */
#include <stdint.h>

#include "semihosting.h"

enum { FAULT_EXIT_CODE = 3 };

int main(void);

/* Linker-script symbols. */
extern char __stack_top[];
extern uint32_t __data_load__[], __data_start__[], __data_end__[];
extern uint32_t __bss_start__[], __bss_end__[];
typedef void (*init_fn)(void);
extern init_fn __preinit_array_start[], __preinit_array_end[];
extern init_fn __init_array_start[], __init_array_end[];

/* C++ support without the C library's atexit machinery (which can allocate): destructors of
 * static objects are never run, the program ends through semihost_exit. */
void* __dso_handle = 0;
int __aeabi_atexit(void* object, void (*destructor)(void*), void* dso) {
    (void)object;
    (void)destructor;
    (void)dso;
    return 0;
}
int __cxa_atexit(void (*destructor)(void*), void* object, void* dso) {
    (void)object;
    (void)destructor;
    (void)dso;
    return 0;
}
void __cxa_pure_virtual(void) {
    semihost_write("FATAL: pure virtual call\n");
    semihost_exit(FAULT_EXIT_CODE);
}
/* operator delete (plain, sized, aligned): referenced by every virtual destructor's deleting
 * variant, but unreachable since operator new is forbidden. Defined here so that the library
 * versions, which call free(), are not linked. */
static void no_heap_delete(void) {
    semihost_write("FATAL: operator delete called, but there is no heap\n");
    semihost_exit(FAULT_EXIT_CODE);
}
void _ZdlPv(void* pointer) {
    (void)pointer;
    no_heap_delete();
}
void _ZdlPvj(void* pointer, unsigned size) {
    (void)pointer;
    (void)size;
    no_heap_delete();
}
void _ZdlPvSt11align_val_t(void* pointer, unsigned align) {
    (void)pointer;
    (void)align;
    no_heap_delete();
}
void _ZdlPvjSt11align_val_t(void* pointer, unsigned size, unsigned align) {
    (void)pointer;
    (void)size;
    (void)align;
    no_heap_delete();
}

static void write_hex(uint32_t value) {
    char text[11] = "0x";
    for (int i = 0; i < 8; ++i) {
        uint32_t nibble = (value >> (28 - 4 * i)) & 0xFu;
        text[2 + i] = (char)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
    }
    text[10] = '\0';
    semihost_write(text);
}

/* Called by the fault trampolines with the exception stack frame and the fault's name. */
__attribute__((noreturn, used)) void fault_report(const uint32_t* frame, const char* name) {
    semihost_write("FAULT: ");
    semihost_write(name);
    semihost_write(" pc=");
    write_hex(frame[6]);
    semihost_write(" lr=");
    write_hex(frame[5]);
    semihost_write(" CFSR=");
    write_hex(*(volatile uint32_t*)0xE000ED28u);
    semihost_write(" HFSR=");
    write_hex(*(volatile uint32_t*)0xE000ED2Cu);
    semihost_write("\n");
    semihost_exit(FAULT_EXIT_CODE);
}

/* Each trampoline passes the active stack pointer (MSP or PSP, from EXC_RETURN bit 2). */
#define FAULT_HANDLER(handler, label)                                  \
    __attribute__((used)) static const char handler##_name[] = label;  \
    __attribute__((naked)) void handler(void) {                        \
        __asm__ volatile("tst lr, #4\n\t"                              \
                         "ite eq\n\t"                                  \
                         "mrseq r0, msp\n\t"                           \
                         "mrsne r0, psp\n\t"                           \
                         "ldr r1, =" #handler "_name\n\t"              \
                         "b fault_report\n\t"                          \
                         ".ltorg");                                    \
    }
FAULT_HANDLER(NMI_Handler, "NMI")
FAULT_HANDLER(HardFault_Handler, "HardFault")
FAULT_HANDLER(MemManage_Handler, "MemManage")
FAULT_HANDLER(BusFault_Handler, "BusFault")
FAULT_HANDLER(UsageFault_Handler, "UsageFault")
FAULT_HANDLER(Unexpected_Handler, "unexpected exception/interrupt")

/* Everything after the FPU is on; kept out of line so no FP instruction can precede it. */
__attribute__((noreturn, noinline)) static void reset_continue(void) {
    for (uint32_t *src = __data_load__, *dst = __data_start__; dst < __data_end__;) {
        *dst++ = *src++;
    }
    for (uint32_t* dst = __bss_start__; dst < __bss_end__;) {
        *dst++ = 0;
    }
    for (init_fn* fn = __preinit_array_start; fn < __preinit_array_end; ++fn) {
        (*fn)();
    }
    for (init_fn* fn = __init_array_start; fn < __init_array_end; ++fn) {
        (*fn)();
    }
    semihost_exit(main());
}

__attribute__((noreturn)) void Reset_Handler(void) {
    /* CPACR: full access to CP10/CP11 (the FPU). */
    *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    reset_continue();
}

/* ARMv7-M vector table: initial SP, then the 15 system exceptions, then 16 external IRQs
 * (none are enabled; any that fires is reported as a fault). */
struct vector_table {
    void* initial_sp;
    void (*handlers[15 + 16])(void);
};

#define U Unexpected_Handler
__attribute__((section(".isr_vector"), used)) const struct vector_table vectors = {
    __stack_top,
    {
        Reset_Handler, NMI_Handler, HardFault_Handler, MemManage_Handler, BusFault_Handler,
        UsageFault_Handler, 0, 0, 0, 0, U /* SVCall */, U /* DebugMonitor */, 0, U /* PendSV */,
        U /* SysTick */, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U /* IRQ0..15 */
    },
};
#undef U

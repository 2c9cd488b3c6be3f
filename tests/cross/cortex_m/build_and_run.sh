#!/usr/bin/env bash
# build_and_run.sh - build one C++17 program for a bare-metal Cortex-M7 and run it under QEMU.
#
#   build_and_run.sh SOURCE.cpp OUT_DIR [-I dir | -Idir | -DNAME[=VALUE] | other g++ flag]...
#
# Compiles SOURCE with startup.c and mps2_an500.ld (512K flash / 256K RAM budgets, see there),
# with the repository's include/ directory on the include path. Heap use is a build error.
# Prints the section sizes and the flash/RAM budget use, then runs the program on QEMU's
# mps2-an500 board with semihosting and exits with the program's return code
# (3 on a CPU fault, 124 on timeout, other non-zero codes on build errors).
#
# Environment: CORTEX_M_TIMEOUT (seconds, default 120),
#              CORTEX_M_FPU (default fpv5-sp-d16, the single-precision M7 FPU: runtime double
#              math becomes visible __aeabi_d* library calls; fpv5-d16 for double-precision parts).
# Extra flags are passed to the compile-and-link step, e.g. -Wl,--defsym=RAM_SIZE=512K.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi
source_file=$1
out_dir=$2
shift 2
extra_flags=("$@")

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../../.." && pwd)
timeout_s=${CORTEX_M_TIMEOUT:-120}
fpu=${CORTEX_M_FPU:-fpv5-sp-d16}

# --- Toolchain: install the Debian packages when missing (as root), else say how. ---
"$repo_root/install_deps.sh" --with-cortex-m >&2

# --- Build. ---
mkdir -p "$out_dir"
name=$(basename "${source_file%.*}")
elf="$out_dir/$name.elf"
target_flags=(-mcpu=cortex-m7 -mthumb -mfloat-abi=hard "-mfpu=$fpu")
warning_flags=(-Wall -Wextra -Wpedantic -Werror)
common_flags=(-O2 -g -ffunction-sections -fdata-sections -ffp-contract=off)

# The allocator entry points. Every reference to one is redirected (--wrap) to an undefined
# __wrap_ symbol, so using the heap (malloc, operator new, ...) fails the link; the nm check
# after the link catches what --wrap cannot: such a symbol defined in the image itself (e.g. a
# program's own malloc, whose calls from its own object file are not redirected).
heap_symbols=(malloc free calloc realloc reallocarray memalign aligned_alloc posix_memalign
              valloc pvalloc _malloc_r _free_r _calloc_r _realloc_r _memalign_r
              _sbrk _sbrk_r sbrk)
wrap_flags=()
for symbol in "${heap_symbols[@]}"; do
    wrap_flags+=("-Wl,--wrap=$symbol")
done

arm-none-eabi-gcc -std=c11 "${target_flags[@]}" "${common_flags[@]}" "${warning_flags[@]}" \
    -c "$here/startup.c" -o "$out_dir/startup.o"

if ! arm-none-eabi-g++ -std=c++17 "${target_flags[@]}" "${common_flags[@]}" "${warning_flags[@]}" \
    -fno-exceptions -fno-rtti -fno-threadsafe-statics \
    -I "$here" -I "$repo_root/include" "${extra_flags[@]}" \
    "$source_file" "$out_dir/startup.o" \
    -nostartfiles -T "$here/mps2_an500.ld" -Wl,--gc-sections -Wl,--fatal-warnings \
    -Wl,-Map="$out_dir/$name.map" "${wrap_flags[@]}" -o "$elf"; then
    echo "build_and_run.sh: build of $source_file FAILED (an undefined reference to" \
         "__wrap_<name> means the program uses the heap; 'budget exceeded' that it does not fit)" >&2
    exit 1
fi

heap_pattern=$(IFS='|'; echo "${heap_symbols[*]}")
if heap_uses=$(arm-none-eabi-nm "$elf" | grep -E " (__wrap_)?($heap_pattern)$"); then
    echo "build_and_run.sh: $elf uses the heap:" >&2
    echo "$heap_uses" >&2
    exit 1
fi

# --- Sizes. ---
arm-none-eabi-size "$elf"
symbol_value() { echo $((16#$(arm-none-eabi-nm "$elf" | awk -v s="$1" '$3 == s { print $1 }'))); }
echo "$name: flash $(symbol_value __flash_used__) bytes (text+rodata+data)," \
     "RAM $(symbol_value __ram_used__) bytes (data+bss+stack)"

# --- Run. ---
# Semihosting output is routed to stdout (QEMU's default for it is stderr); the UART is unused.
status=0
timeout -k 5 "$timeout_s" qemu-system-arm -M mps2-an500 -nographic -monitor none -serial null \
    -chardev stdio,id=semihost -semihosting-config enable=on,target=native,chardev=semihost \
    -kernel "$elf" </dev/null || status=$?
if [[ $status -eq 124 || $status -eq 137 ]]; then
    echo "build_and_run.sh: $name TIMED OUT after ${timeout_s}s" >&2
    exit 124
fi
exit "$status"

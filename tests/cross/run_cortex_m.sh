#!/usr/bin/env bash
# tests/cross/run_cortex_m.sh CLI OUT_DIR [CONFIG.json WEIGHTS.safetensors]: the embedded generator
# (examples/07_embedded_firmware.cpp) on an emulated Cortex-M7 against the same program on this x86.
#  1. Without CONFIG and WEIGHTS: a model of tests/cross/tiny_byte_model.json with random weights
#     (tokenformer-cli init, seed 7): 4 layers, hidden 64, 279k parameters.
#  2. tokenformer-cli export-c --int8 --context 96: OUT_DIR/model_data.hpp.
#  3. The firmware built for the host (g++, -fno-exceptions -fno-rtti, no OpenMP, scalar kernels,
#     -ffp-contract=off) and for a Cortex-M7 (tests/cross/cortex_m/build_and_run.sh: no heap linked,
#     512 KB flash and 256 KB RAM budgets), run natively and under qemu-system-arm.
#  4. Their outputs (text, ids, a checksum of the last logits' bits) must be identical.
# Also the harness's own checks: hello.cpp (float arithmetic bit-identical to x86, no fused
# multiply-adds) runs, and uses_malloc.cpp (malloc and new) fails to link.
# Prints the Cortex-M image's flash and RAM. CLI is a built tokenformer-cli.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cli=$1
out=$(mkdir -p "$2" && cd "$2" && pwd)
start=$(date +%s)
if [ $# -ge 4 ]; then
  config=$3 weights=$4
else
  config=$repo/tests/cross/tiny_byte_model.json weights=$out/random.safetensors
  "$cli" init --config "$config" --seed 7 --out "$weights"
fi
"$cli" export-c --config "$config" --weights "$weights" --int8 --context 96 --out "$out/model_data.hpp"

flags=(-std=c++17 -O2 -fno-exceptions -fno-rtti -ffp-contract=off -fno-math-errno -DTOKENFORMER_EMBEDDED_SCALAR
       "-DTOKENFORMER_MODEL_HEADER=\"model_data.hpp\"" -I "$repo/include" -I "$out")
g++ "${flags[@]}" -Wall -Wextra -Wpedantic -Werror "$repo/examples/07_embedded_firmware.cpp" -o "$out/firmware_host"
"$out/firmware_host" > "$out/host.txt"

"$repo/tests/cross/cortex_m/build_and_run.sh" "$repo/examples/07_embedded_firmware.cpp" "$out/cortex_m" \
  -fno-math-errno -DTOKENFORMER_EMBEDDED_SCALAR "-DTOKENFORMER_MODEL_HEADER=\"model_data.hpp\"" -I "$out" \
  > "$out/cortex_m.log" 2>&1 || { cat "$out/cortex_m.log"; echo "run_cortex_m.sh: the Cortex-M run failed" >&2; exit 1; }
grep -E '^(text|ids|logits checksum): ' "$out/cortex_m.log" > "$out/cortex_m.txt" || true
grep -E 'flash .* RAM ' "$out/cortex_m.log" || true
# The harness's own checks: float arithmetic as on x86 (tests/cross/cortex_m/hello.cpp), and a
# program that uses the heap must not link (uses_malloc.cpp).
"$repo/tests/cross/cortex_m/build_and_run.sh" "$repo/tests/cross/cortex_m/hello.cpp" "$out/hello" > "$out/hello.log" 2>&1 ||
  { cat "$out/hello.log"; echo "run_cortex_m.sh: hello.cpp failed on the Cortex-M" >&2; exit 1; }
if "$repo/tests/cross/cortex_m/build_and_run.sh" "$repo/tests/cross/cortex_m/uses_malloc.cpp" "$out/uses_malloc" \
  > "$out/uses_malloc.log" 2>&1 || ! grep -q "__wrap_malloc" "$out/uses_malloc.log"; then
  cat "$out/uses_malloc.log"
  echo "run_cortex_m.sh: a program calling malloc was not refused at link time" >&2
  exit 1
fi
echo "---- host (x86):"
cat "$out/host.txt"
if ! cmp -s "$out/host.txt" "$out/cortex_m.txt"; then
  echo "---- Cortex-M7 (qemu):"
  cat "$out/cortex_m.log"
  echo "run_cortex_m.sh: the Cortex-M output differs from the host's" >&2
  exit 1
fi
echo "run_cortex_m.sh: Cortex-M7 (qemu-system-arm mps2-an500) output equals the host's ($(( $(date +%s) - start )) s)"

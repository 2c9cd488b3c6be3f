#!/usr/bin/env bash
# tests/embedded/check_export.sh CLI OUT_DIR: tokenformer-cli export-c writes headers that firmware
# compiles freestanding, and the static model generates what the heap model generates.
#  1. a model of tests/cross/tiny_byte_model.json with random weights (init, seed 7);
#  2. export-c (float): examples/07_embedded_firmware.cpp compiled with g++ -fno-exceptions -fno-rtti,
#     without OpenMP and with -Wall -Wextra -Wpedantic -Werror; its greedy ids must equal
#     `tokenformer-cli generate --temperature 0 --ids` (LanguageModel with its KV cache) on the same
#     prompt (on this random model the top logit leads the second by at least 0.1 at every step, so
#     float rounding differences of ~1e-6 cannot flip a choice);
#  3. export-c --int8: the same program compiles and runs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cli=$1
out=$(mkdir -p "$2" && cd "$2" && pwd)
config=$repo/tests/cross/tiny_byte_model.json
"$cli" init --config "$config" --seed 7 --out "$out/model.safetensors" 2>/dev/null
flags=(-std=c++17 -O2 -fno-exceptions -fno-rtti -Wall -Wextra -Wpedantic -Werror -I "$repo/include")
for kind in float int8; do
  mkdir -p "$out/$kind"
  extra=()
  [ "$kind" = int8 ] && extra=(--int8)
  "$cli" export-c --config "$config" --weights "$out/model.safetensors" --context 96 "${extra[@]}" \
    --out "$out/$kind/model_data.hpp" 2>/dev/null
  g++ "${flags[@]}" -I "$out/$kind" "-DTOKENFORMER_MODEL_HEADER=\"model_data.hpp\"" \
    "$repo/examples/07_embedded_firmware.cpp" -o "$out/$kind/firmware"
  "$out/$kind/firmware" > "$out/$kind/output.txt"
done
static_ids=$(sed -n 's/^ids: //p' "$out/float/output.txt" | tr ' ' ',')
heap_ids=$("$cli" generate --config "$config" --weights "$out/model.safetensors" --tokens 84,104,101,32 \
  --max-new-tokens 80 --temperature 0 --ids 2>/dev/null)
if [ "$static_ids" != "$heap_ids" ]; then
  echo "static model: $static_ids"
  echo "heap model:   $heap_ids"
  echo "check_export.sh: the static model's greedy ids differ from LanguageModel's" >&2
  exit 1
fi
echo "export-c headers compile freestanding; greedy ids equal the heap model's: $static_ids"

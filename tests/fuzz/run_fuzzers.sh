#!/usr/bin/env bash
# Builds the libFuzzer targets of the file parsers with clang-14 (ASan + UBSan) and runs each for
# SECONDS, or (`ci`) for a fixed number of executions per fuzzer (the table below: about a minute each on
# a 2-core AMD EPYC), from corpora seeded with the committed test fixtures and mutated copies of them
# (in a temporary directory: nothing is written into the source tree). Exits non-zero when a fuzzer finds a crash,
# a sanitizer report, a leak, a timeout or an out-of-memory input; the reproducer is kept and named.
#
# Usage: tests/fuzz/run_fuzzers.sh SECONDS|ci|build [FUZZER...]
#   build: builds the fuzzers and runs none (CI builds them early, at a low priority, and runs them later)
#   FUZZER: fuzz_torch_checkpoint fuzz_safetensors fuzz_json fuzz_config fuzz_training_checkpoint
#           fuzz_tokenizer (default: all)
#   TOKENFORMER_NEOX_TOKENIZER (environment): the GPT-NeoX tokenizer.json that fuzz_tokenizer encodes
#     with (default: ../shared/data beside the source; without it only tokenizer.json parsing is fuzzed)
#   BUILD_DIR (environment): the build directory (default: <source>/build-fuzz)
#   CC, CXX (environment): the compilers (default: clang-14, clang++-14)
#   JOBS (environment): build jobs, and fuzzers run at once (default: 2; each fuzzer is one process)
set -euo pipefail

all=(fuzz_torch_checkpoint fuzz_safetensors fuzz_json fuzz_config fuzz_training_checkpoint fuzz_tokenizer)
if [[ $# -lt 1 || ! $1 =~ ^([0-9]+|ci|build)$ ]]; then
  echo "usage: $0 SECONDS|ci|build [${all[*]} ...]" >&2
  exit 2
fi
seconds=$1
shift
fuzzers=("$@")
[[ ${#fuzzers[@]} -gt 0 ]] || fuzzers=("${all[@]}")
# Executions per fuzzer for `ci` (measured: 46-68 s each on the 2-core AMD EPYC, two at a time, one core each).
declare -A ci_runs=([fuzz_torch_checkpoint]=200000 [fuzz_safetensors]=120000 [fuzz_json]=1000000
                    [fuzz_config]=500000 [fuzz_training_checkpoint]=80000 [fuzz_tokenizer]=60000)

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z ${TOKENFORMER_NEOX_TOKENIZER:-} && -f $src/../shared/data/gpt-neox-20b-tokenizer.json ]]; then
  export TOKENFORMER_NEOX_TOKENIZER=$src/../shared/data/gpt-neox-20b-tokenizer.json
fi
build=${BUILD_DIR:-$src/build-fuzz}
[[ $build == /* ]] || build=$PWD/$build  # the fuzzers run from their own directories
export CC=${CC:-clang-14} CXX=${CXX:-clang++-14}

# Ninja where it is installed (for a new build directory): Make builds the named targets one at a time.
generator=()
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S "$src" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug -DTOKENFORMER_FUZZ=ON -DTOKENFORMER_BUILD_TESTS=OFF \
  -DTOKENFORMER_BUILD_EXAMPLES=OFF -DTOKENFORMER_BUILD_BENCHMARKS=OFF -DTOKENFORMER_ENABLE_CUDA=OFF \
  -DTOKENFORMER_GEMM=eigen >/dev/null
jobs=${JOBS:-2}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "JOBS must be a positive integer, not '$jobs'" >&2; exit 2; }
cmake --build "$build" --target "${fuzzers[@]}" -j "$jobs"
[[ $seconds == build ]] && exit 0

work=$(mktemp -d "${TMPDIR:-/tmp}/tokenformer_fuzz_XXXXXX")
keep=0
cleanup() { if [[ $keep == 0 ]]; then rm -rf "$work"; fi; }
trap cleanup EXIT

# seed DIR FILE...: each file, and mutated copies (truncated; one byte set to 0xff, 0x00, '"' or '{').
seed() {
  local dir=$1 f base n pos i
  shift
  mkdir -p "$dir"
  for f in "$@"; do
    base=$(basename "$(dirname "$f")")_$(basename "$f")
    n=$(stat -c %s "$f")
    cp "$f" "$dir/$base"
    head -c $((n / 2)) "$f" >"$dir/$base.half"
    head -c $((n > 0 ? n - 1 : 0)) "$f" >"$dir/$base.short"
    i=0
    for byte in '\xff' '\x00' '"' '{'; do
      pos=$(((n * (2 * i + 1)) / 9))
      cp "$f" "$dir/$base.m$i"
      [[ $n -gt 0 ]] && printf "$byte" | dd of="$dir/$base.m$i" bs=1 seek="$pos" conv=notrunc status=none
      i=$((i + 1))
    done
  done
}

ref=$src/tests/reference
configs=("$ref"/torch/config.json "$ref"/golden/*/config.json)
# run_fuzzer FUZZER: seeds its corpus and runs it in $work/FUZZER; its report goes to
# $work/FUZZER/report and its exit status to $work/FUZZER/status (the fuzzers run JOBS at a time).
run_fuzzer() {
  local fuzzer=$1 corpus dict= max_len limit
  corpus=$work/$fuzzer/corpus
  case $fuzzer in
    fuzz_torch_checkpoint)
      seed "$corpus" "$ref"/torch/*.bin "$ref"/torch/model_f16.safetensors
      dict=torch_checkpoint.dict
      max_len=32768 ;;
    fuzz_safetensors)
      seed "$corpus" "$ref"/torch/*.safetensors "$ref"/golden/adamw/adamw.safetensors \
        "$ref"/golden/transformer_norope_f32/model.safetensors
      max_len=32768 ;;
    fuzz_json)
      seed "$corpus" "${configs[@]}" "$ref"/golden/adamw/adamw.json "$ref"/golden/*/grads_losses.json
      dict=json.dict
      max_len=4096 ;;
    fuzz_config)
      seed "$corpus" "${configs[@]}"
      dict=json.dict
      max_len=4096 ;;
    fuzz_training_checkpoint)
      mkdir -p "$work/training_seed"
      "$build/tests/fuzz/fuzz_training_checkpoint" --write-seed "$work/training_seed/training.safetensors"
      seed "$corpus" "$work/training_seed/training.safetensors"
      max_len=32768 ;;
    fuzz_tokenizer)
      # First byte odd: text for the real tokenizer (lines of the README and the tokenizer's test
      # cases); even: a small tokenizer.json.
      mkdir -p "$work/seeds"
      { printf '\x01'; head -c 3000 "$src/README.md"; } >"$work/seeds/readme.txt"
      { printf '\x01'; head -c 3000 "$ref/tokenizer/cases.json"; } >"$work/seeds/cases.txt"
      { printf '\x00'; printf '%s' '{"version":"1.0","added_tokens":[{"id":3,"content":"<|e|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":{"type":"NFC"},"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"decoder":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}'; } >"$work/seeds/tokenizer.json"
      seed "$corpus" "$work"/seeds/*
      dict=json.dict
      max_len=4096 ;;
    *)
      echo "unknown fuzzer $fuzzer" >&2
      exit 2 ;;
  esac
  mkdir -p "$work/$fuzzer/artifacts"
  if [[ $seconds == ci ]]; then
    limit=-runs=${ci_runs[$fuzzer]}
  else
    limit=-max_total_time=$seconds
  fi
  local status=0
  {
    echo "== $fuzzer: ${limit#-}, $(ls "$corpus" | wc -l) seeds, max_len $max_len"
    if (cd "$work/$fuzzer" && "$build/tests/fuzz/$fuzzer" corpus "$limit" -max_len="$max_len" \
          ${dict:+-dict="$src/tests/fuzz/$dict"} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$fuzzer/artifacts/" \
          >"$work/$fuzzer/log.txt" 2>&1); then
      grep -E "^(Dictionary|Done|stat::number_of_executed_units|stat::peak_rss_mb)|DONE" "$work/$fuzzer/log.txt" || true
    else
      status=1
      tail -n 60 "$work/$fuzzer/log.txt"
      echo "!! $fuzzer failed; log and reproducer in $work/$fuzzer"
    fi
  } >"$work/$fuzzer/report" 2>&1
  echo "$status" >"$work/$fuzzer/status"
}

for fuzzer in "${fuzzers[@]}"; do
  mkdir -p "$work/$fuzzer"
  while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n || true; done
  run_fuzzer "$fuzzer" &
done
wait
failed=()
for fuzzer in "${fuzzers[@]}"; do
  cat "$work/$fuzzer/report" 2>/dev/null || echo "!! $fuzzer: no report (its run was cut short)"
  if [[ $(cat "$work/$fuzzer/status" 2>/dev/null) != 0 ]]; then
    keep=1
    failed+=("$fuzzer")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzers with findings: ${failed[*]}" >&2
  exit 1
fi
echo "no findings"

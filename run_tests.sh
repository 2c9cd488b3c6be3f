#!/usr/bin/env bash
# run_tests.sh [--sanitize]: install missing packages, build everything (Release, -O3 -march=native)
# and run the whole test suite with CTest. --sanitize builds in build-asan with
# -fsanitize=address,undefined instead.
set -euo pipefail
cd "$(dirname "$0")"

build=build
flags=(-DCMAKE_BUILD_TYPE=Release)
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  flags=(-DCMAKE_BUILD_TYPE=Release -DTOKENFORMER_SANITIZE=ON -DTOKENFORMER_BUILD_BENCHMARKS=OFF)
fi

./install_deps.sh --with-bench --with-clang
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$build" "${flags[@]}"
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"

#!/usr/bin/env bash
# run_demo.sh: install missing packages, build the examples and run the main demo.
set -euo pipefail
cd "$(dirname "$0")"

./install_deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs" --target 01_pattention
./build/examples/01_pattention

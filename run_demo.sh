#!/usr/bin/env bash
# run_demo.sh [01|02|03|04|05|06|07]: install missing packages, build the examples and run one (default: 03, the
# main demo: a small TokenFormer trained, grown in place and trained on, against the large model
# trained from scratch, on Debian's fortunes). 04 trains one model on the CPU and on a CUDA GPU side
# by side (needs nvcc at /usr/local/cuda/bin/nvcc, and a GPU to run). 05 compares FIT with full
# attention on 2048-byte contexts. 06 warm-starts FIT from a TokenFormer LM and a TokenFormer LM from
# a plain Transformer (cross-architecture transfer) against training from scratch. 07 trains the
# embedded model, measures int8 against float and exports the firmware header.
set -euo pipefail
cd "$(dirname "$0")"

example=${1:-03}
case "$example" in
  01) target=01_pattention ;;
  02) target=02_train_char_lm ;;
  03) target=03_incremental_scaling ;;
  04) target=04_gpu ;;
  05) target=05_fit ;;
  06) target=06_transfer ;;
  07) target=07_embedded ;;
  *) echo "usage: $0 [01|02|03|04|05|06|07]" >&2; exit 2 ;;
esac

# The demo needs only the library's packages and the corpus; the tests and benchmarks, whose packages
# run_tests.sh installs, are configured only where their packages are there (each skipped part is
# named in a warning), so that a missing optional package never stops the demo.
./install_deps.sh --with-corpus
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs" --target "$target"
./build/examples/"$target"

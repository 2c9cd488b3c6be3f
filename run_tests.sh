#!/usr/bin/env bash
# run_tests.sh [--sanitize] [--build-only]: install missing packages, build everything (Release, -O3 -march=native;
# the C++ test programs -O2 -march=native) and run the whole test suite with CTest. --sanitize builds
# in build-asan with -fsanitize=address,undefined instead (without the nvcc-compiled programs and MPI; the Thrust
# host-backend tests do run under the sanitizers), with Eigen's GEMM alone (TOKENFORMER_GEMM=eigen:
# our own code, all instrumented, instead of oneDNN's or OpenBLAS's uninstrumented kernels). The MPI tests are built where MPI is installed
# (install_deps.sh --with-mpi; CI does it in a stage of its own).
# Where nvcc is found (/usr/local/cuda/bin/nvcc), the CUDA tests, example and benchmark are compiled
# too; the GPU tests run where there is a GPU and are reported as skipped where there is none. The
# Thrust host-backend tests use the CUDA toolkit's Thrust, or Debian's libthrust-dev without it.
# --build-only stops after the build (CI builds the sanitized tests early, at a low priority, and runs
# them later). Every package the tests and benchmarks use is installed first and required
# (TOKENFORMER_REQUIRE_ALL), so that nothing is skipped silently.
set -euo pipefail
cd "$(dirname "$0")"

build=build
flags=(-DCMAKE_BUILD_TYPE=Release -DTOKENFORMER_REQUIRE_ALL=ON)
sanitize=0
build_only=0
for argument in "$@"; do
  case "$argument" in
    --sanitize) sanitize=1 ;;
    --build-only) build_only=1 ;;
    *) echo "usage: $0 [--sanitize] [--build-only]" >&2; exit 2 ;;
  esac
done
if [ "$sanitize" = 1 ]; then
  build=build-asan
  flags=(-DCMAKE_BUILD_TYPE=Release -DTOKENFORMER_REQUIRE_ALL=ON -DTOKENFORMER_SANITIZE=ON -DTOKENFORMER_BUILD_BENCHMARKS=OFF
         -DTOKENFORMER_ENABLE_CUDA=OFF -DTOKENFORMER_ENABLE_MPI=OFF -DTOKENFORMER_GEMM=eigen)
fi

./install_deps.sh --with-tests --with-bench --with-clang
# The sanitized build links Eigen's GEMM alone: a TOKENFORMER_GEMM naming another backend would fail it.
[ "$build" = build-asan ] && unset TOKENFORMER_GEMM
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$build" "${flags[@]}"
cmake --build "$build" -j "$jobs"
[ "$build_only" = 1 ] && exit 0
ctest --test-dir "$build" --output-on-failure -j "$jobs"

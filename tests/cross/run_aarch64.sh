#!/usr/bin/env bash
# tests/cross/run_aarch64.sh [--build-only] [BUILD_DIR]: cross-compile the kernel and golden-model tests (and
# test_embedded where tests/CMakeLists.txt has it) for aarch64 Linux with Debian's g++-aarch64-linux-gnu,
# and run them under qemu-user (cmake/toolchains/aarch64-linux-gnu.cmake sets qemu-aarch64 as
# CMAKE_CROSSCOMPILING_EMULATOR; catch_discover_tests lists the tests through it at build time).
# BUILD_DIR defaults to build-aarch64 in the repository root. As root, installs the missing Debian
# packages with apt-get; otherwise prints the command and exits 1. Exits non-zero on any failure.
# --build-only stops after the build (CI builds early, at a low priority, and tests later).
# Environment: JOBS (build and ctest jobs, default 2), OMP_NUM_THREADS (default 2).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
fi
if [ $# -gt 1 ] || [[ ${1:-} == -* ]]; then
  echo "usage: $0 [--build-only] [BUILD_DIR]" >&2
  exit 2
fi
build="${1:-$root/build-aarch64}"
jobs="${JOBS:-2}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
triple=aarch64-linux-gnu
qemu=(qemu-aarch64 -L "/usr/$triple")

# ---- packages (g++-aarch64-linux-gnu brings the arm64 libstdc++ and libgomp) ----------------------
# Ninja: the Makefile generator builds the test programs one after the other (its top-level Makefile
# is .NOTPARALLEL), so -j2 would compile one file at a time.
"$root/install_deps.sh" --with-aarch64

mkdir -p "$build"
build="$(cd "$build" && pwd)"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

# ---- configure ------------------------------------------------------------------------------------
# Off for the cross build: -march=native (the cross g++ rejects it), CUDA, benchmarks, docs, fuzzing,
# sanitizers, OpenBLAS (no arm64 OpenBLAS), and the examples: test_model_golden runs tokenformer-cli
# with std::system, and qemu-user cannot start an aarch64 child process without binfmt_misc (without
# the examples, the CLI test case is not compiled). REQUIRE_ALL off: utf8proc is not installed for
# arm64, so the tokenizer and its test are skipped with a warning. The unit tests are built one
# program per file (TOKENFORMER_UNITY_TESTS off), so that only the three below are compiled.
generator=()
[ -f "$build/CMakeCache.txt" ] || generator=(-G Ninja)  # an existing build directory keeps its generator
echo "== configure ($build)"
cmake -S "$root" -B "$build" "${generator[@]}" \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/$triple.cmake" \
  -DCMAKE_BUILD_TYPE=Release \
  -DTOKENFORMER_NATIVE=OFF \
  -DTOKENFORMER_BUILD_TESTS=ON \
  -DTOKENFORMER_UNITY_TESTS=OFF \
  -DTOKENFORMER_BUILD_EXAMPLES=OFF \
  -DTOKENFORMER_BUILD_BENCHMARKS=OFF \
  -DTOKENFORMER_BUILD_DOCS=OFF \
  -DTOKENFORMER_ENABLE_CUDA=OFF \
  -DTOKENFORMER_ENABLE_MPI=OFF \
  -DTOKENFORMER_FUZZ=OFF \
  -DTOKENFORMER_SANITIZE=OFF \
  -DTOKENFORMER_GEMM=eigen \
  -DTOKENFORMER_REQUIRE_ALL=OFF
t_configured=$(now)

# ---- xsimd's architecture and OpenMP on the target -------------------------------------------------
# A tiny program, compiled like the tests (-O2 -fopenmp, no -march): xsimd must pick NEON (neon64) and
# OpenMP must start OMP_NUM_THREADS threads under qemu.
echo "== xsimd and OpenMP under qemu-aarch64 (OMP_NUM_THREADS=$OMP_NUM_THREADS)"
check_dir="$build/cross_check"
mkdir -p "$check_dir"
cat >"$check_dir/arch_check.cpp" <<'EOF'
#include <omp.h>

#include <cstdio>
#include <cstring>
#include <xsimd/xsimd.hpp>

int main() {
  int threads = 0;
#pragma omp parallel
  {
#pragma omp atomic
    ++threads;
  }
  const char* arch = xsimd::default_arch::name();
  std::printf("xsimd default_arch: %s (batch<float>: %d lanes, batch<double>: %d); OpenMP threads: %d\n", arch,
              static_cast<int>(xsimd::batch<float>::size), static_cast<int>(xsimd::batch<double>::size), threads);
  return std::strstr(arch, "neon") != nullptr && threads == omp_get_max_threads() ? 0 : 1;
}
EOF
"$triple-g++" -std=c++17 -O2 -fopenmp -Wall -Wextra -Werror "$check_dir/arch_check.cpp" -o "$check_dir/arch_check"
if ! "${qemu[@]}" "$check_dir/arch_check"; then
  echo "run_aarch64.sh: xsimd does not use NEON or OpenMP does not start its threads on aarch64" >&2
  exit 1
fi
t_checked=$(now)

# ---- build ----------------------------------------------------------------------------------------
targets=(test_kernels test_model_golden)
# (The listing is read whole before grep: grep -q closing the pipe early would fail the pipeline.)
build_targets="$(cmake --build "$build" --target help)"
if grep -Eq '^(\.\.\. )?test_embedded(:.*)?$' <<<"$build_targets"; then
  targets+=(test_embedded)
fi
echo "== build ${targets[*]} (-j$jobs)"
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
t_built=$(now)
if [ "$build_only" = 1 ]; then
  echo "== times: build $(elapsed "$t_checked" "$t_built") s (--build-only: no tests run)"
  exit 0
fi

# ---- test -----------------------------------------------------------------------------------------
# catch_discover_tests names each test "<program>:<test case>" (tests/CMakeLists.txt, TEST_PREFIX).
names="$(IFS='|'; echo "${targets[*]}")"
regex="^($names):"
for t in "${targets[@]}"; do
  count=$(cd "$build" && ctest -N -R "^$t:" | sed -n 's/^Total Tests: //p')
  if [ "${count:-0}" -eq 0 ]; then
    echo "run_aarch64.sh: no CTest test named '$t:...': update the regex in this script" >&2
    exit 1
  fi
done
echo "== ctest -R '$regex' (-j$jobs, OMP_NUM_THREADS=$OMP_NUM_THREADS)"
(cd "$build" && ctest -R "$regex" -j "$jobs" --output-on-failure --no-tests=error --timeout 900)
t_tested=$(now)

echo "== times: configure $(elapsed "$t_start" "$t_configured") s, xsimd/OpenMP check" \
     "$(elapsed "$t_configured" "$t_checked") s, build $(elapsed "$t_checked" "$t_built") s," \
     "test $(elapsed "$t_built" "$t_tested") s; total $(elapsed "$t_start" "$t_tested") s"

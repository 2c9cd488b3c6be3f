#!/usr/bin/env bash
# install_deps.sh [--with-tests] [--with-bench] [--with-clang] [--with-corpus] [--with-mpi]
# [--with-aarch64] [--with-cortex-m] [--with-ninja]: make sure the Debian packages tokenformer builds with are
# installed: the library's (a compiler, CMake, Eigen, xsimd, oneDNN for the GEMMs) and those of the parts named (MPI: Open
# MPI for tokenformer::mpi; the cross targets: their compilers and QEMU). As root, installs what is missing with apt-get; otherwise prints the
# exact command.
set -euo pipefail

packages=(g++ cmake make libeigen3-dev libxsimd-dev libdnnl-dev)  # oneDNN: the fastest CPU GEMM (optional for consumers)
for arg in "$@"; do
  case "$arg" in
    --with-tests) packages+=(catch2 libthrust-dev libutf8proc-dev doxygen) ;;
    --with-bench) packages+=(libbenchmark-dev libopenblas0-openmp) ;;
    --with-clang) packages+=(clang libomp-dev) ;;
    --with-corpus) packages+=(fortunes) ;;
    --with-mpi) packages+=(libopenmpi-dev openmpi-bin) ;;  # tokenformer::mpi, tests/mpi
    --with-aarch64) packages+=(g++-aarch64-linux-gnu qemu-user ninja-build catch2) ;;  # tests/cross/run_aarch64.sh
    --with-cortex-m) packages+=(gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm) ;;  # tests/cross/cortex_m
    --with-ninja) packages+=(ninja-build) ;;  # CI's builds of several named targets (Make builds them one at a time)
    *) echo "install_deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Missing Debian packages. Install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

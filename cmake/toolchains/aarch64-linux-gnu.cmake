# CMake toolchain file: cross-compile for aarch64 Linux with Debian's g++-aarch64-linux-gnu and run the
# programs (tests, catch_discover_tests' listing at build time) under qemu-user.
#   cmake -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake -DTOKENFORMER_NATIVE=OFF
# tests/cross/run_aarch64.sh configures, builds and tests with it.
# Debian packages: g++-aarch64-linux-gnu (brings libgomp1-arm64-cross for OpenMP) and qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(TOKENFORMER_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${TOKENFORMER_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${TOKENFORMER_CROSS_TRIPLE}-g++)

# The target's libraries (libc, libstdc++, libgomp) are in /usr/aarch64-linux-gnu; qemu-aarch64 loads
# the dynamic linker and the shared libraries from there (-L).
set(TOKENFORMER_CROSS_ROOT /usr/${TOKENFORMER_CROSS_TRIPLE})
find_program(TOKENFORMER_QEMU_AARCH64 qemu-aarch64 NO_CMAKE_FIND_ROOT_PATH)
if(NOT TOKENFORMER_QEMU_AARCH64)
  set(TOKENFORMER_QEMU_AARCH64 qemu-aarch64)  # not installed: a clear "not found" when a test runs
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR ${TOKENFORMER_QEMU_AARCH64} -L ${TOKENFORMER_CROSS_ROOT})

# Libraries only from the target root; programs (doxygen, clang++, ...) only from the host. Headers and
# CMake packages from both: Eigen3, xsimd and Catch2 2 are header-only host packages in /usr/include.
set(CMAKE_FIND_ROOT_PATH ${TOKENFORMER_CROSS_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# Debian installs xsimd's CMake package under the host's multiarch directory
# (/usr/lib/x86_64-linux-gnu/cmake/xsimd), which find_package does not search for aarch64.
if(NOT xsimd_DIR)
  file(GLOB _tokenformer_xsimd_dirs /usr/lib/cmake/xsimd /usr/share/cmake/xsimd /usr/lib/*-linux-gnu*/cmake/xsimd)
  if(_tokenformer_xsimd_dirs)
    list(GET _tokenformer_xsimd_dirs 0 _tokenformer_xsimd_dir)
    set(xsimd_DIR ${_tokenformer_xsimd_dir} CACHE PATH "xsimd's CMake package (header-only, from the host)")
  endif()
  unset(_tokenformer_xsimd_dirs)
  unset(_tokenformer_xsimd_dir)
endif()

# -march=native means the build machine's processor: the cross g++ rejects it ("unknown value 'native'
# for '-march'"). Default TOKENFORMER_NATIVE (CMakeLists.txt) to off: portable -O2 for armv8-a, whose
# Advanced SIMD (NEON) xsimd uses (xsimd::default_arch is neon64).
set(TOKENFORMER_NATIVE OFF CACHE BOOL "Build our own binaries with -O3 -march=native (off: portable -O2)")

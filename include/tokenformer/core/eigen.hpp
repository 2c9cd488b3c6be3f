// tokenformer/core/eigen.hpp: the library's one include of Eigen (and of the x86 intrinsic headers).
//
// GCC 12's AVX-512 intrinsic headers initialize "undefined" vectors from themselves
// (`__m512 __Y = __Y;`). Once Eigen's or xsimd's packet code is inlined at -O2 and above with
// AVX-512 enabled, this gives false -Wmaybe-uninitialized and -Wuninitialized warnings located in
// <avx512fintrin.h> (GCC bug 105593, fixed in GCC 13). GCC checks diagnostic pragmas at the
// warning's location, so the intrinsic headers are first included here, with those warnings
// ignored; every later inclusion (by Eigen, xsimd or the user) is then a no-op. The same holds for
// -Warray-bounds: when a vectorized loop is inlined into a caller whose array is shorter than one
// vector (the gelu kernel on 3 values, say), GCC 12 flags the loads of the loop that never runs.
// Include this header before <xsimd/xsimd.hpp>.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Warray-bounds"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include <Eigen/Core>

# tokenformer_require(<package> <debian-package>): find_package(<package>) or stop with a message
# naming the Debian package that provides it. For what the library itself needs.
macro(tokenformer_require package debian_package)
  find_package(${package} ${ARGN} QUIET)
  if(NOT ${package}_FOUND)
    message(FATAL_ERROR "tokenformer needs ${package}. On Debian: sudo apt-get install ${debian_package}")
  endif()
endmacro()

# tokenformer_optional_missing(<what is missing> <debian-package> <what is skipped>): an optional
# package (Catch2, Google Benchmark, Thrust, clang++) is missing. What needs it is skipped
# with a warning that names the Debian package, so that a missing optional package never stops the
# build of what does not need it; with TOKENFORMER_REQUIRE_ALL (run_tests.sh sets it, and so CI) the
# configure step stops instead, so that nothing is skipped silently.
function(tokenformer_optional_missing what debian_package skipped)
  set(text "${what} not found: ${skipped}. On Debian: sudo apt-get install ${debian_package}")
  if(TOKENFORMER_REQUIRE_ALL)
    message(FATAL_ERROR "${text} (TOKENFORMER_REQUIRE_ALL is on)")
  else()
    message(WARNING "tokenformer: ${text}")
  endif()
endfunction()

# tokenformer_optional(<package> <debian-package> <what is skipped>): find_package(<package>);
# where it is missing, tokenformer_optional_missing. The caller tests <package>_FOUND.
macro(tokenformer_optional package debian_package skipped)
  find_package(${package} QUIET)
  if(NOT ${package}_FOUND)
    tokenformer_optional_missing(${package} ${debian_package} "${skipped}")
  endif()
endmacro()

include(${CMAKE_CURRENT_LIST_DIR}/TokenformerGemm.cmake)

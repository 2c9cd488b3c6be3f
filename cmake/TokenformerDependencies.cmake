# tokenformer_require(<package> <debian-package>): find_package(<package>) or stop with a message
# naming the Debian package that provides it.
macro(tokenformer_require package debian_package)
  find_package(${package} ${ARGN} QUIET)
  if(NOT ${package}_FOUND)
    message(FATAL_ERROR "tokenformer needs ${package}. On Debian: sudo apt-get install ${debian_package}")
  endif()
endmacro()

include(${CMAKE_CURRENT_LIST_DIR}/TokenformerOpenBLAS.cmake)

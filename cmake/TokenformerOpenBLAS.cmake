# tokenformer_find_openblas(): defines the INTERFACE target tokenformer::openblas that links OpenBLAS
# and defines EIGEN_USE_BLAS, so Eigen's matrix products call OpenBLAS's sgemm/dgemm.
#
# The OpenMP build of OpenBLAS (Debian: libopenblas0-openmp) is preferred. The library's own kernels
# use OpenMP, and the pthread build of OpenBLAS does not know about OpenMP: its threads and the idle
# OpenMP threads (which spin after each parallel region) fight over the cores, and an OpenBLAS call
# made inside an OpenMP parallel region (the attention kernels make them) starts threads of its own.
# Measured on 2 cores: a TokenFormer layer ran 5-15x slower with the pthread build. The OpenMP build
# shares the OpenMP thread pool and runs single-threaded inside parallel regions.
function(tokenformer_find_openblas)
  if(TARGET tokenformer::openblas)
    return()
  endif()
  find_library(TOKENFORMER_OPENBLAS_LIBRARY NAMES openblas libopenblas.so.0
               PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp NO_DEFAULT_PATH)
  if(NOT TOKENFORMER_OPENBLAS_LIBRARY)
    find_library(TOKENFORMER_OPENBLAS_LIBRARY NAMES openblas)
    if(TOKENFORMER_OPENBLAS_LIBRARY)
      message(WARNING "tokenformer: using ${TOKENFORMER_OPENBLAS_LIBRARY}, which may be the pthread build of "
                      "OpenBLAS; it oversubscribes the cores together with OpenMP. Prefer the OpenMP build: "
                      "sudo apt-get install libopenblas0-openmp")
    endif()
  endif()
  if(NOT TOKENFORMER_OPENBLAS_LIBRARY)
    message(FATAL_ERROR "OpenBLAS not found. On Debian: sudo apt-get install libopenblas0-openmp")
  endif()
  add_library(tokenformer_openblas INTERFACE)
  target_link_libraries(tokenformer_openblas INTERFACE ${TOKENFORMER_OPENBLAS_LIBRARY})
  target_compile_definitions(tokenformer_openblas INTERFACE EIGEN_USE_BLAS)
  add_library(tokenformer::openblas ALIAS tokenformer_openblas)
endfunction()

# The GEMM libraries kernels::gemm can call on the CPU (include/tokenformer/kernels/cpu/gemm.hpp).
# Eigen's own product is always there; each library is an INTERFACE target that links it and defines
# TOKENFORMER_HAVE_<NAME>=1:
#   tokenformer::onednn    oneDNN's dnnl_sgemm (Debian: libdnnl-dev)
#   tokenformer::openblas  OpenBLAS's sgemm_ / dgemm_ (Debian: libopenblas0-openmp)
# The program uses the fastest linked one (oneDNN, then OpenBLAS, then Eigen) unless the environment
# variable TOKENFORMER_GEMM or kernels::set_gemm_backend() names another linked one.
#
# OpenBLAS: the OpenMP build is preferred. The library's own kernels use OpenMP, and the pthread build
# of OpenBLAS does not know about OpenMP: its threads and the idle OpenMP threads (which spin after
# each parallel region) fight over the cores, and an OpenBLAS call made inside an OpenMP parallel
# region starts threads of its own. Measured on 2 cores: a TokenFormer layer ran 5-15x slower with the
# pthread build. The OpenMP build shares the OpenMP thread pool and runs single-threaded inside
# parallel regions. Debian's oneDNN is built with the OpenMP runtime (GNU libgomp) and does the same.

# tokenformer_find_openblas_library(): sets TOKENFORMER_OPENBLAS_LIBRARY (cached) where OpenBLAS is.
function(tokenformer_find_openblas_library)
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
endfunction()

# tokenformer_find_onednn_library(): sets TOKENFORMER_ONEDNN_LIBRARY and TOKENFORMER_ONEDNN_INCLUDE_DIR.
function(tokenformer_find_onednn_library)
  find_path(TOKENFORMER_ONEDNN_INCLUDE_DIR dnnl.h)
  find_library(TOKENFORMER_ONEDNN_LIBRARY NAMES dnnl)
endfunction()

# tokenformer_gemm_backends(<choice>): links the GEMM libraries into the target tokenformer and sets
# TOKENFORMER_GEMM_LINKED (a list of backend names, eigen first) and TOKENFORMER_GEMM_LIBRARIES
# (path=Debian package of each library linked) in the caller's scope.
#   auto     every library found (none found: Eigen alone; an error with TOKENFORMER_REQUIRE_ALL)
#   eigen    none: the header-only core with Eigen alone
#   openblas / onednn   that library, which must be found (the configure step stops otherwise)
function(tokenformer_gemm_backends choice)
  set(known auto eigen openblas onednn)
  if(NOT choice IN_LIST known)
    message(FATAL_ERROR "TOKENFORMER_GEMM=${choice}: expected auto, eigen, openblas or onednn")
  endif()
  set(linked eigen)
  set(libraries "")
  if(choice STREQUAL "auto" OR choice STREQUAL "onednn")
    tokenformer_find_onednn_library()
    if(TOKENFORMER_ONEDNN_LIBRARY AND TOKENFORMER_ONEDNN_INCLUDE_DIR)
      add_library(tokenformer_onednn INTERFACE)
      add_library(tokenformer::onednn ALIAS tokenformer_onednn)
      set_target_properties(tokenformer_onednn PROPERTIES EXPORT_NAME onednn)
      target_include_directories(tokenformer_onednn SYSTEM INTERFACE ${TOKENFORMER_ONEDNN_INCLUDE_DIR})
      target_link_libraries(tokenformer_onednn INTERFACE ${TOKENFORMER_ONEDNN_LIBRARY})
      target_compile_definitions(tokenformer_onednn INTERFACE TOKENFORMER_HAVE_ONEDNN=1)
      target_link_libraries(tokenformer INTERFACE tokenformer_onednn)
      install(TARGETS tokenformer_onednn EXPORT tokenformerTargets)
      list(APPEND linked onednn)
      list(APPEND libraries "${TOKENFORMER_ONEDNN_LIBRARY}=libdnnl-dev")
    elseif(choice STREQUAL "onednn")
      message(FATAL_ERROR "TOKENFORMER_GEMM=onednn: oneDNN not found. On Debian: sudo apt-get install libdnnl-dev")
    elseif(TOKENFORMER_REQUIRE_ALL)  # the tests would skip it: an error there, as for every package they use
      tokenformer_optional_missing(oneDNN libdnnl-dev "the oneDNN GEMM backend is not linked")
    endif()
  endif()
  if(choice STREQUAL "auto" OR choice STREQUAL "openblas")
    tokenformer_find_openblas_library()
    if(TOKENFORMER_OPENBLAS_LIBRARY)
      add_library(tokenformer_openblas INTERFACE)
      add_library(tokenformer::openblas ALIAS tokenformer_openblas)
      set_target_properties(tokenformer_openblas PROPERTIES EXPORT_NAME openblas)
      target_link_libraries(tokenformer_openblas INTERFACE ${TOKENFORMER_OPENBLAS_LIBRARY})
      target_compile_definitions(tokenformer_openblas INTERFACE TOKENFORMER_HAVE_OPENBLAS=1)
      target_link_libraries(tokenformer INTERFACE tokenformer_openblas)
      install(TARGETS tokenformer_openblas EXPORT tokenformerTargets)
      list(APPEND linked openblas)
      list(APPEND libraries "${TOKENFORMER_OPENBLAS_LIBRARY}=libopenblas0-openmp")
    elseif(choice STREQUAL "openblas")
      message(FATAL_ERROR "TOKENFORMER_GEMM=openblas: OpenBLAS not found. On Debian: "
                          "sudo apt-get install libopenblas0-openmp")
    elseif(TOKENFORMER_REQUIRE_ALL)
      tokenformer_optional_missing(OpenBLAS libopenblas0-openmp "the OpenBLAS GEMM backend is not linked")
    endif()
  endif()
  set(TOKENFORMER_GEMM_LINKED ${linked} PARENT_SCOPE)
  set(TOKENFORMER_GEMM_LIBRARIES "${libraries}" PARENT_SCOPE)  # path=Debian package, for the package config
endfunction()

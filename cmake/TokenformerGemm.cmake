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

# tokenformer_gemm_target(<backend> <define> <library> [<include dirs>...]): the INTERFACE target
# tokenformer::<backend> that links <library> and defines <define>=1, linked into tokenformer and exported.
function(tokenformer_gemm_target backend define library)
  add_library(tokenformer_${backend} INTERFACE)
  add_library(tokenformer::${backend} ALIAS tokenformer_${backend})
  set_target_properties(tokenformer_${backend} PROPERTIES EXPORT_NAME ${backend})
  if(ARGN)
    target_include_directories(tokenformer_${backend} SYSTEM INTERFACE ${ARGN})
  endif()
  target_link_libraries(tokenformer_${backend} INTERFACE ${library})
  target_compile_definitions(tokenformer_${backend} INTERFACE ${define}=1)
  target_link_libraries(tokenformer INTERFACE tokenformer_${backend})
  install(TARGETS tokenformer_${backend} EXPORT tokenformerTargets)
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
  foreach(backend IN ITEMS onednn openblas)
    if(NOT (choice STREQUAL "auto" OR choice STREQUAL backend))
      continue()
    endif()
    if(backend STREQUAL "onednn")
      tokenformer_find_onednn_library()
      set(label oneDNN)
      set(package libdnnl-dev)
      set(library "${TOKENFORMER_ONEDNN_LIBRARY}")
      set(include_dirs "${TOKENFORMER_ONEDNN_INCLUDE_DIR}")
      set(found FALSE)
      if(TOKENFORMER_ONEDNN_LIBRARY AND TOKENFORMER_ONEDNN_INCLUDE_DIR)
        set(found TRUE)
      endif()
    else()
      tokenformer_find_openblas_library()
      set(label OpenBLAS)
      set(package libopenblas0-openmp)
      set(library "${TOKENFORMER_OPENBLAS_LIBRARY}")
      set(include_dirs "")  # Eigen's declarations of the Fortran BLAS: no header needed
      set(found FALSE)
      if(TOKENFORMER_OPENBLAS_LIBRARY)
        set(found TRUE)
      endif()
    endif()
    string(TOUPPER "TOKENFORMER_HAVE_${backend}" define)
    if(found)
      tokenformer_gemm_target(${backend} ${define} "${library}" ${include_dirs})
      list(APPEND linked ${backend})
      list(APPEND libraries "${library}=${package}")
    elseif(choice STREQUAL backend)
      message(FATAL_ERROR "TOKENFORMER_GEMM=${backend}: ${label} not found. On Debian: sudo apt-get install ${package}")
    elseif(TOKENFORMER_REQUIRE_ALL)  # the tests would skip it: an error there, as for every package they use
      tokenformer_optional_missing(${label} ${package} "the ${label} GEMM backend is not linked")
    endif()
  endforeach()
  set(TOKENFORMER_GEMM_LINKED ${linked} PARENT_SCOPE)
  set(TOKENFORMER_GEMM_LIBRARIES "${libraries}" PARENT_SCOPE)  # path=Debian package, for the package config
endfunction()

# cmake -DCLANGXX=... -DINCLUDE_DIR=... -DEIGEN_DIR=... -DWORK_DIR=... [-DSKIP_HEADERS=a;b]
#       [-DEXTRA_INCLUDE_DIRS=a;b] -P check_headers_clang.cmake
# Every public header, alone, must compile with clang++ at -Wall -Wextra -Wpedantic -Werror (except
# SKIP_HEADERS: the tokenizer's where utf8proc is missing, MPI's where MPI is).
file(GLOB_RECURSE headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/tokenformer/*.hpp")
if(SKIP_HEADERS)
  list(REMOVE_ITEM headers ${SKIP_HEADERS})
endif()
set(extra_includes)
foreach(dir IN LISTS EXTRA_INCLUDE_DIRS)
  list(APPEND extra_includes -isystem ${dir})
endforeach()
foreach(header IN LISTS headers)
  set(source "${WORK_DIR}/clang_header_check.cpp")
  file(WRITE "${source}" "#include \"${header}\"\n")
  execute_process(COMMAND ${CLANGXX} -std=c++17 -fsyntax-only -fopenmp -march=native -Wall -Wextra -Wpedantic -Werror
                          -I${INCLUDE_DIR} -isystem ${EIGEN_DIR} ${extra_includes} ${source}
                  RESULT_VARIABLE result ERROR_VARIABLE errors)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "clang++ cannot compile ${header} on its own:\n${errors}")
  endif()
endforeach()
list(LENGTH headers count)
message(STATUS "clang++ compiled ${count} headers on their own")

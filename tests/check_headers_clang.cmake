# cmake -DCLANGXX=... -DINCLUDE_DIR=... -DEIGEN_DIR=... -DWORK_DIR=... [-DSKIP_HEADERS=a;b]
#       [-DONLY_HEADERS=a;b] [-DEXTRA_INCLUDE_DIRS=a;b] [-DDEFINES=A=1,B=1] -P check_headers_clang.cmake
# Every public header (or ONLY_HEADERS), alone and included twice (its include guard), must compile
# with clang++ at -Wall -Wextra -Wpedantic -Werror, except SKIP_HEADERS (the tokenizer's where utf8proc
# is missing; MPI's, which has a test of its own where MPI is found).
if(ONLY_HEADERS)
  set(headers ${ONLY_HEADERS})
else()
  file(GLOB_RECURSE headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/tokenformer/*.hpp")
endif()
if(SKIP_HEADERS)
  list(REMOVE_ITEM headers ${SKIP_HEADERS})
endif()
set(extra_includes)
foreach(dir IN LISTS EXTRA_INCLUDE_DIRS)
  list(APPEND extra_includes -isystem ${dir})
endforeach()
set(defines)
string(REPLACE "," ";" DEFINES "${DEFINES}")
foreach(define IN LISTS DEFINES)
  list(APPEND defines -D${define})
endforeach()
foreach(header IN LISTS headers)
  string(MAKE_C_IDENTIFIER "${header}" id)  # a file per header: two of these checks may run at once
  set(source "${WORK_DIR}/clang_header_check_${id}.cpp")
  file(WRITE "${source}" "#include \"${header}\"\n#include \"${header}\"  // include guard\n")
  execute_process(COMMAND ${CLANGXX} -std=c++17 -fsyntax-only -fopenmp -march=native -Wall -Wextra -Wpedantic -Werror
                          ${defines} -I${INCLUDE_DIR} -isystem ${EIGEN_DIR} ${extra_includes} ${source}
                  RESULT_VARIABLE result ERROR_VARIABLE errors)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "clang++ cannot compile ${header} on its own:\n${errors}")
  endif()
endforeach()
list(LENGTH headers count)
message(STATUS "clang++ compiled ${count} headers on their own")

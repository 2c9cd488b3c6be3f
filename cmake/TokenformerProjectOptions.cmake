# Compiler options for the project's own tests, examples and benchmarks (never for consumers).
add_library(tokenformer_project_options INTERFACE)
target_compile_options(tokenformer_project_options INTERFACE "$<$<COMPILE_LANGUAGE:CXX>:-Wall;-Wextra;-Wpedantic;-Werror>")
# nvcc: every nvcc warning is an error, and the host compiler sees -Wall -Wextra -Werror (not
# -Wpedantic: nvcc's generated host code uses GCC extensions such as line markers).
target_compile_options(tokenformer_project_options INTERFACE
                       "$<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings;-Xcompiler=-Wall,-Wextra,-Werror>")
# Sanitized builds use -O1: -O3 with ASan instrumentation takes minutes per test file to compile.
if(TOKENFORMER_SANITIZE)
  set(tokenformer_optimization -O1)
elseif(TOKENFORMER_NATIVE)
  # The unit-test programs (target property TOKENFORMER_UNIT_TEST, set in tests/CMakeLists.txt) use -O2:
  # a third less compile time than -O3 (measured on a test group: 90 s against 139 s), same instruction
  # set (-march=native). The examples, tokenformer-cli and the benchmarks keep -O3; the examples' short
  # runs in the test suite run that code.
  set(tokenformer_optimization "$<IF:$<BOOL:$<TARGET_PROPERTY:TOKENFORMER_UNIT_TEST>>,-O2,-O3>")
else()
  set(tokenformer_optimization -O2)
endif()
if(TOKENFORMER_NATIVE)
  # CUDA translation units get no -march=native: their binaries run on the GPU machine's processor.
  target_compile_options(tokenformer_project_options INTERFACE
                         "$<$<AND:$<COMPILE_LANGUAGE:CXX>,$<NOT:$<CONFIG:Debug>>>:${tokenformer_optimization};-march=native>")
else()
  target_compile_options(tokenformer_project_options INTERFACE
                         "$<$<AND:$<COMPILE_LANGUAGE:CXX>,$<NOT:$<CONFIG:Debug>>>:${tokenformer_optimization}>")
endif()
if(TOKENFORMER_SANITIZE)
  # GCC 12 emits false -Wmaybe-uninitialized warnings from <regex>/std::function under ASan
  # instrumentation (in Catch2's main); they are not errors in our code.
  target_compile_options(tokenformer_project_options INTERFACE "$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined;-fno-omit-frame-pointer;-fno-sanitize-recover=all;-Wno-maybe-uninitialized>")
  target_link_options(tokenformer_project_options INTERFACE -fsanitize=address,undefined)
endif()

# tokenformer_add_program(<name> <sources...>): an executable of ours linked to the library.
function(tokenformer_add_program name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE tokenformer::tokenformer tokenformer_project_options)
endfunction()

# Compiler options for the project's own tests, examples and benchmarks (never for consumers).
add_library(tokenformer_project_options INTERFACE)
target_compile_options(tokenformer_project_options INTERFACE -Wall -Wextra -Wpedantic -Werror)
if(TOKENFORMER_NATIVE)
  target_compile_options(tokenformer_project_options INTERFACE $<$<NOT:$<CONFIG:Debug>>:-O3 -march=native>)
else()
  target_compile_options(tokenformer_project_options INTERFACE $<$<NOT:$<CONFIG:Debug>>:-O2>)
endif()
if(TOKENFORMER_SANITIZE)
  target_compile_options(tokenformer_project_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
                                                               -fno-sanitize-recover=all)
  target_link_options(tokenformer_project_options INTERFACE -fsanitize=address,undefined)
endif()

# tokenformer_add_program(<name> <sources...>): an executable of ours linked to the library.
function(tokenformer_add_program name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE tokenformer::tokenformer tokenformer_project_options)
endfunction()

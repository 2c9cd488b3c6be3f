# cmake -DDOXYGEN=... -DDOXYFILE=... -DWORK_DIR=... -P check_api_docs.cmake
# Runs doxygen with DOXYFILE (cmake/Doxyfile.in configured to write into WORK_DIR and its warnings to
# WORK_DIR/warnings.log) and fails when it warns: a public symbol without a doc comment, or a doc
# comment doxygen cannot read. The message lists every warning as file:line: text.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
execute_process(COMMAND ${DOXYGEN} ${DOXYFILE} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "doxygen failed (exit status ${result}):\n${output}")
endif()
set(log "")
if(EXISTS "${WORK_DIR}/warnings.log")
  file(READ "${WORK_DIR}/warnings.log" log)
endif()
string(STRIP "${log}" log)
if(NOT log STREQUAL "")
  string(REGEX MATCHALL "warning:" warnings "${log}")
  list(LENGTH warnings count)
  message("${log}")  # unformatted: one warning per line, file:line first
  message(FATAL_ERROR "doxygen: ${count} warning(s) above; document each symbol named (a /// comment before "
                      "it, or ///< after a member) or fix the comment")
endif()
message(STATUS "doxygen: every public symbol of include/tokenformer is documented")

# sagitta_write_if_changed(<file> <content>): writes <file> only when its content differs, so
# that what depends on a generated header rebuilds only when the header really changed. Used by
# the build-time generators (cmake -P scripts) in modules/.
function(sagitta_write_if_changed file content)
  if(EXISTS "${file}")
    file(READ "${file}" old)
    if(old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${file}" "${content}")
endfunction()

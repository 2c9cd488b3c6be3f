# Debian 12's xsimd 8.1 CMake package lists "xtl" in the link interface of its header-only `xsimd`
# target although xsimd does not need it, so `-lxtl` breaks the link unless libxtl-dev is installed.
# When no `xtl` target exists, define an empty one: xsimd's headers need nothing from it.
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_tokenformer_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
  if(_tokenformer_xsimd_links MATCHES "xtl")
    add_library(xtl INTERFACE IMPORTED)
  endif()
  unset(_tokenformer_xsimd_links)
endif()

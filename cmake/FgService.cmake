# fg_add_service(<name>): services/<name>/*.c become the executable fg-<name>. main.c only wires
# things together; the logic lives in <name>_<noun>.c beside it. Migrations are found through
# FG_MIGRATIONS_DIR (the source folder by default, overridable with FG_MIGRATIONS_DIR at run time).
function(fg_add_service name)
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  if(NOT sources)
    message(STATUS "fg-${name}: no sources yet")
    return()
  endif()
  add_executable(fg-${name} ${sources})
  target_include_directories(fg-${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(fg-${name} PRIVATE fgproto fgcommon ${ARGN})
  target_compile_definitions(fg-${name} PRIVATE
    FG_DEFAULT_MIGRATIONS_DIR="${CMAKE_CURRENT_SOURCE_DIR}/migrations")
endfunction()

# fg_add_service(<name> [libs...]): services/<name>/*.c except main.c become the static library
# fg-<name>-core (so tests link the service's own modules), and main.c the executable fg-<name>.
# main.c only wires things together; the logic lives in the other files. Migrations are found
# through FG_DEFAULT_MIGRATIONS_DIR (the source folder), overridable with FG_MIGRATIONS_DIR.
function(fg_add_service name)
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/main.c)
  if(sources)
    add_library(fg-${name}-core STATIC ${sources})
  else()
    add_library(fg-${name}-core INTERFACE)
  endif()
  if(sources)
    target_include_directories(fg-${name}-core PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(fg-${name}-core PUBLIC fgproto fgcommon ${ARGN})
  else()
    target_include_directories(fg-${name}-core INTERFACE ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(fg-${name}-core INTERFACE fgproto fgcommon ${ARGN})
  endif()
  add_executable(fg-${name} ${CMAKE_CURRENT_SOURCE_DIR}/main.c)
  target_link_libraries(fg-${name} PRIVATE fg-${name}-core)
  target_compile_definitions(fg-${name} PRIVATE
    FG_DEFAULT_MIGRATIONS_DIR="${CMAKE_CURRENT_SOURCE_DIR}/migrations")
endfunction()

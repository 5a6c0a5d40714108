# event-log library and the scratch-database helpers.
target_sources(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration/el_testdb.c)
target_link_libraries(${target} PRIVATE fg-event-log-core)

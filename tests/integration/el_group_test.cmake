# event-log library and the scratch-database helpers; fg_pg_commit wrapped so that a forked
# consumer can die right before its group's COMMIT.
target_sources(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration/el_testdb.c)
target_link_libraries(${target} PRIVATE fg-event-log-core)
target_link_options(${target} PRIVATE -Wl,--wrap=fg_pg_commit)

# event-log library, the scratch databases and the triples-generator stand-in.
target_sources(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration/el_testdb.c
                                 ${CMAKE_CURRENT_SOURCE_DIR}/integration/el_harness.c)
target_link_libraries(${target} PRIVATE fg-event-log-core PkgConfig::ZLIB Threads::Threads)

# el_api_test moves fixture events with event-log's own el_change_apply.
target_link_libraries(${target} PRIVATE fg-event-log-core)

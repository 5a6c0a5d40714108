# event-log library (dispatch tables, no servers).
target_link_libraries(${target} PRIVATE fg-event-log-core)

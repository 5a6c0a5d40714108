# The status machine lives in the event-log service library.
target_link_libraries(${target} PRIVATE fg-event-log-core)

target_link_libraries(${target} PRIVATE fg-commit-sync-core)

# The mirror module is part of fg-commit-sync-core (services/commit-sync).
target_link_libraries(${target} PRIVATE fg-commit-sync-core)

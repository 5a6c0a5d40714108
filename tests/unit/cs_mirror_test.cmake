# The mirror module is part of fg-commit-sync-core (services/commit-sync).
target_link_libraries(${target} PRIVATE fg-commit-sync-core)
# git as the oracle: the helpers the integration tests run it with.
target_sources(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration/cs_git.c)
target_include_directories(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration)

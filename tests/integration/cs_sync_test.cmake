# cs_sync_test: git as the oracle and the stack's API and logs, shared with e2e/commit_sync_test.
target_sources(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration/cs_git.c
                                 ${CMAKE_CURRENT_SOURCE_DIR}/integration/cs_stack.c)

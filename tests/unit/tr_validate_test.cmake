# token-repository's input checks live in its core library.
target_link_libraries(${target} PRIVATE fg-token-repository-core)

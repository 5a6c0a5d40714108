# the triples-generator modules under test
target_link_libraries(${target} PRIVATE fg-triples-generator-core)

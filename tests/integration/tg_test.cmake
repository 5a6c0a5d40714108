# the triples-generator modules (consumer, store client, vocabulary) under test
target_link_libraries(${target} PRIVATE fg-triples-generator-core)

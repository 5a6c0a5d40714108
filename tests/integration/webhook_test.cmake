# webhook_test: the service's own modules (the body scanner is checked directly, without a
# stack), the client helpers, and the forge / event-log stand-in of the activation tests.
target_sources(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/integration/webhook_client.c
                                 ${CMAKE_CURRENT_SOURCE_DIR}/integration/webhook_fake_forge.c)
target_link_libraries(${target} PRIVATE fg-webhook-core)

# wh_json_test: the webhook's body scanner, linked from the service's own modules.
target_link_libraries(${target} PRIVATE fg-webhook-core)

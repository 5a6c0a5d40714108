# The JSON Schemas of proto/schemas against the golden fixtures of tests/fixtures/messages (the C
# codec's test, unit/proto_test, reads the same fixtures). Debian's python3-jsonschema lives in
# /usr/bin/python3, not in a pyenv python3 on PATH; without the module the test is skipped (77).
add_test(NAME unit/proto_schemas
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/unit/proto_schemas_test.py
                 ${CMAKE_SOURCE_DIR}/proto/schemas ${CMAKE_SOURCE_DIR}/tests/fixtures/messages)
set_tests_properties(unit/proto_schemas PROPERTIES LABELS unit TIMEOUT 120 SKIP_RETURN_CODE 77)

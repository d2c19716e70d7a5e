# tests/logging_test.py: the one log format (docs/logging.md), plugin failure
# events, console lines with their scan, last errors, in scan and serve.
add_test(NAME logging COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/logging_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(logging PROPERTIES TIMEOUT 300 LABELS integration)
txs_isolation_tests(logging)

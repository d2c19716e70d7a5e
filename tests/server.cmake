# tests/server_test.py: `txscan serve` end to end (HTTP API, reload, drain,
# overload, promtool, headless Chromium). Python 3 standard library only.
add_test(NAME server COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/server_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(server PROPERTIES TIMEOUT 300 LABELS integration)
txs_isolation_tests(server)

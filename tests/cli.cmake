add_test(NAME cli COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/cli_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(cli PROPERTIES TIMEOUT 600 LABELS integration)
txs_isolation_tests(cli)

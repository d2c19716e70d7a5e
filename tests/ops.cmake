# tests/ops_test.py: what operators see (issue 18): findings, verdict and
# process metrics on serve and on `txscan worker --metrics-listen` (a real
# redis-server) through promtool, usage errors and environment variables,
# the progress line under a pseudo-terminal, plugin folders added and
# removed on reload. Python 3 standard library only.
add_test(NAME ops COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/ops_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(ops PROPERTIES TIMEOUT 300 LABELS integration FIXTURES_REQUIRED plugin_deps)
txs_isolation_tests(ops)

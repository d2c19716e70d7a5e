# txscan worker / publish against a real redis-server (tests/worker_test.py):
# exactly one report per entry through 3 workers, kill -9 recovery, SIGTERM
# drain, dead letters and redelivery, one write batch mixing reports, duplicates
# and dead letters, deleted pending entries, once-only keys
# per stream and group, SIGHUP plugin reload, publish from a slow pipe, the
# in-flight window paced to a slow plugin (every scan ok),
# TXSCAN_REDIS_URL, and a Redis restart mid-run.
find_package(Python3 COMPONENTS Interpreter)
find_program(TXS_REDIS_SERVER redis-server)
if(Python3_Interpreter_FOUND AND TXS_REDIS_SERVER)
  add_test(NAME worker
           COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/worker_test.py
                   $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
  set_tests_properties(worker PROPERTIES TIMEOUT 600 LABELS integration SKIP_RETURN_CODE 77)
  txs_isolation_tests(worker)
else()
  message(STATUS "python3 or redis-server not found: the worker test is not registered")
endif()

# txscan follow / scan --rpc against a real Ethereum node (tests/follow_test.py):
# anvil from npm (tests/anvil/package.json, installed by the test on first use),
# transactions, receipts and logs, restarts with a checkpoint, reorgs made with
# evm_snapshot/evm_revert and anvil_reorg, --confirmations, SIGTERM, kill -9, a
# node that stops answering and one that answers garbage. Skipped (77) when
# anvil cannot be installed.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME follow
           COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/follow_test.py
                   $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
  set_tests_properties(follow PROPERTIES TIMEOUT 300 LABELS integration SKIP_RETURN_CODE 77)
endif()

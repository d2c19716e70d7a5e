# Real libraries as plugins (tests/libs/*, and the TypeScript + viem example):
# their npm packages come from the plugin_deps fixture (tests/CMakeLists.txt).
add_test(NAME libs COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/libs_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(libs PROPERTIES TIMEOUT 600 LABELS integration)

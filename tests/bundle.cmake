# Plugins as ES modules and TypeScript, bundled at load by esbuild
# (src/bundle/); tests/bundle_test.py skips what needs esbuild when it is
# not installed (scripts/setup.sh installs it).
add_test(NAME bundle COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/bundle_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(bundle PROPERTIES TIMEOUT 300 LABELS integration)
# The same with engines in child processes: source maps are applied in the
# host (src/isolate/parent.c), where the bundles' maps are registered.
add_test(NAME bundle_process COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/bundle_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(bundle_process PROPERTIES TIMEOUT 300 LABELS integration
                     ENVIRONMENT TXSCAN_ISOLATION=process)

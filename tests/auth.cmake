# tests/auth_test.py: access control of `txscan serve` (tokens per role,
# rotation on SIGHUP, the loopback default, TLS, certificate reload, mutual
# TLS). Needs the openssl and curl programs (scripts/setup.sh).
add_test(NAME auth COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/auth_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(auth PROPERTIES TIMEOUT 300 LABELS integration)

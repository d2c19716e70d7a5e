# tests/auth_test.py: access control of `txscan serve` (tokens per role,
# rotation on SIGHUP, the loopback default, TLS, certificate reload, mutual
# TLS). Needs the openssl and curl programs (scripts/setup.sh).
add_test(NAME auth COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/auth_test.py
         $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
set_tests_properties(auth PROPERTIES TIMEOUT 300 LABELS integration)

# tests/worker_acl_test.py: `txscan worker` under the Redis ACL user that
# docs/scale-out.md gives (read from it), and the check at start naming
# each missing command or key.
find_program(TXS_REDIS_SERVER_ACL redis-server)
if(TXS_REDIS_SERVER_ACL)
  add_test(NAME worker_acl COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/worker_acl_test.py
           $<TARGET_FILE:txscan_cli> ${PROJECT_SOURCE_DIR})
  set_tests_properties(worker_acl PROPERTIES TIMEOUT 300 LABELS integration SKIP_RETURN_CODE 77)
endif()

# cmocka tests for SPIFFE mutual TLS (lib/tls.c, the TLS side of lib/rpc.c):
# a real server on 127.0.0.1:0 with SVIDs from deploy/dev-ca.sh.
airlock_cmocka_test(test_tls unit/test_tls.c)
target_link_libraries(test_tls PRIVATE airlock_lib)
target_compile_definitions(test_tls PRIVATE
  AIRLOCK_DEV_CA="${PROJECT_SOURCE_DIR}/deploy/dev-ca.sh")
set_tests_properties(test_tls PROPERTIES TIMEOUT 120)

# cmocka tests for lib/rpc.c's handler threads (reuse, the call limit,
# shutdown): a real server on a Unix socket, its client in the same process.
airlock_cmocka_test(test_rpc unit/test_rpc.c)
target_link_libraries(test_rpc PRIVATE airlock_lib)
set_tests_properties(test_rpc PROPERTIES TIMEOUT 120)

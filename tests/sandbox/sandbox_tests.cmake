# Sandbox containment tests: real hostile code through sandbox_run (root).
airlock_cmocka_test(test_sandbox sandbox/test_sandbox.c)
target_link_libraries(test_sandbox PRIVATE airlock_sandbox)
set_tests_properties(test_sandbox PROPERTIES TIMEOUT 300)

# Sandbox containment tests: real hostile code through sandbox_run (root).
airlock_cmocka_test(test_sandbox sandbox/test_sandbox.c)
target_link_libraries(test_sandbox PRIVATE airlock_sandbox)
set_tests_properties(test_sandbox PROPERTIES TIMEOUT 300)

# Per-task cgroups (worker/cgroup.c): real v1/v2 where usable, a fake v2 tree
# (mkdirat is wrapped to give new fake directories their interface files).
airlock_cmocka_test(test_cgroup sandbox/test_cgroup.c)
target_link_libraries(test_cgroup PRIVATE airlock_sandbox)
target_link_options(test_cgroup PRIVATE -Wl,--wrap=mkdirat)
set_tests_properties(test_cgroup PROPERTIES TIMEOUT 120)

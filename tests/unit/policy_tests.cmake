# cmocka tests for the YAML configuration walker (lib/yamlconf.c) and the
# broker's policy engine (broker/policy.c).
if(TARGET airlock_yamlconf)
  airlock_cmocka_test(test_yamlconf unit/test_yamlconf.c)
  target_link_libraries(test_yamlconf PRIVATE airlock_yamlconf)
endif()
if(TARGET broker_policy)
  airlock_cmocka_test(test_policy unit/test_policy.c)
  target_link_libraries(test_policy PRIVATE broker_policy)
endif()

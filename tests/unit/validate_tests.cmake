# cmocka tests for an Execute request's own checks (broker/validate.c) and
# the max_code_bytes / max_stdin_bytes settings (broker/config.c).
if(TARGET broker_validate AND TARGET broker_conf)
  airlock_cmocka_test(test_validate unit/test_validate.c)
  target_link_libraries(test_validate PRIVATE broker_validate broker_conf)
endif()

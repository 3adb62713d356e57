# cmocka tests for the broker's settings (broker/config.c): the wait queue
# and the warm pool, from the file and from --pool.
if(TARGET broker_conf)
  airlock_cmocka_test(test_broker_config unit/test_broker_config.c)
  target_link_libraries(test_broker_config PRIVATE broker_conf)
endif()

# cmocka tests for the broker's task slots and their wait queue
# (broker/admission.c), with real threads.
if(TARGET broker_admission)
  airlock_cmocka_test(test_admission unit/test_admission.c)
  target_link_libraries(test_admission PRIVATE broker_admission)
  set_tests_properties(test_admission PROPERTIES TIMEOUT 120)
endif()

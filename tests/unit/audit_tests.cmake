# cmocka tests for the audit chain (lib/audit.c audit_verify.c audit_query.c):
# writer, group commit, checkpoints, every tampering the verifier names, queries.
if(TARGET airlock_audit)
  airlock_cmocka_test(test_audit unit/test_audit.c)
  target_link_libraries(test_audit PRIVATE airlock_audit)
  set_tests_properties(test_audit PROPERTIES TIMEOUT 300)
endif()

# cmocka tests for credd's token core (credd/keys.c jwt.c jwks.c token_table.c).
if(TARGET credd_token)
  airlock_cmocka_test(test_token unit/test_token.c)
  target_link_libraries(test_token PRIVATE credd_token)
endif()

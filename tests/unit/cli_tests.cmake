# cmocka tests for the airlock CLI's argument parsing (cli/args.c).
if(TARGET airlock_cli_args)
  airlock_cmocka_test(test_cli_args unit/test_cli_args.c)
  target_link_libraries(test_cli_args PRIVATE airlock_cli_args)
endif()

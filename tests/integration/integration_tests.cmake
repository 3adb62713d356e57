# Integration tests: Python unittest modules that start the real daemons on
# temporary sockets and drive them with the CLI and with grpcio. They run
# under Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf,
# python3-jwt), one ctest test per module, never two at once.
set(AIRLOCK_INTEGRATION_MODULES test_cli test_token test_timeout test_grpc_client test_credd_down
    test_robustness test_limits test_identity test_audit test_pool test_input test_shutdown
    test_disk test_restart test_python_client test_systemd)
foreach(mod IN LISTS AIRLOCK_INTEGRATION_MODULES)
  add_test(NAME integration_${mod}
           COMMAND /usr/bin/python3 -m unittest -v ${mod}
           WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/integration)
  set_tests_properties(integration_${mod} PROPERTIES
    ENVIRONMENT "AIRLOCK_BIN_DIR=${CMAKE_BINARY_DIR}/bin;PYTHONPATH=${CMAKE_BINARY_DIR}/python;PYTHONDONTWRITEBYTECODE=1"
    TIMEOUT 300
    RESOURCE_LOCK airlock_daemons
    LABELS integration)
endforeach()

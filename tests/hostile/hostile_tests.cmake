# Hostile-code tests: programs/ each try one escape or abuse through the real
# broker (must be contained) and unconfined on the host (positive control,
# must escape). Needs root (the daemons and the controls). One ctest test,
# under Debian's /usr/bin/python3, never beside another daemon test.
add_test(NAME hostile_test_hostile
         COMMAND /usr/bin/python3 -m unittest -v test_hostile
         WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/hostile)
set_tests_properties(hostile_test_hostile PROPERTIES
  ENVIRONMENT "AIRLOCK_BIN_DIR=${CMAKE_BINARY_DIR}/bin;PYTHONPATH=${CMAKE_BINARY_DIR}/python;PYTHONDONTWRITEBYTECODE=1"
  TIMEOUT 300
  RESOURCE_LOCK airlock_daemons
  LABELS hostile)

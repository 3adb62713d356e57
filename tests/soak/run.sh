#!/bin/bash
# run.sh [BUILD_DIR] - the soak test (soak.py) against BUILD_DIR's daemons
# (default build/, built already) under Debian's /usr/bin/python3. Not part
# of ctest: SOAK_SECONDS (default 300) of load. Exit status: soak.py's.
#   SOAK_SECONDS=N   how long the callers keep calling
#   SOAK_CALLERS=N   concurrent callers (default 64)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-$HERE/../../build}" && pwd)
export AIRLOCK_BIN_DIR=$BUILD/bin PYTHONPATH=$BUILD/python PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 "$HERE/soak.py"

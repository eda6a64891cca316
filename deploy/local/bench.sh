#!/usr/bin/env bash
# Benchmarks (not tests): start the local broker if needed, run bench/, stop what we started.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO_ROOT"
started=0
if ! bash "$SCRIPT_DIR/kafka.sh" status >/dev/null 2>&1; then
  bash "$SCRIPT_DIR/kafka.sh" fetch
  bash "$SCRIPT_DIR/kafka.sh" start
  started=1
fi
trap 'if ((started)); then bash "$SCRIPT_DIR/kafka.sh" stop; fi' EXIT
.venv/bin/python -m bench.ingest "$@"

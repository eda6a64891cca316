#!/usr/bin/env bash
# Benchmarks (not tests): start the local broker and PostgreSQL if needed, run bench/, stop what we
# started. Each benchmark prints its figure beside the limit it is compared with, from one run.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO_ROOT"
started_kafka=0
started_pg=0
cleanup() {
  if ((started_kafka)); then bash "$SCRIPT_DIR/kafka.sh" stop; fi
  if ((started_pg)); then bash "$SCRIPT_DIR/postgres.sh" stop; fi
}
trap cleanup EXIT
if ! bash "$SCRIPT_DIR/kafka.sh" status >/dev/null 2>&1; then
  bash "$SCRIPT_DIR/kafka.sh" fetch
  bash "$SCRIPT_DIR/kafka.sh" start
  started_kafka=1
fi
if ! bash "$SCRIPT_DIR/postgres.sh" status >/dev/null 2>&1; then
  bash "$SCRIPT_DIR/postgres.sh" start
  started_pg=1
fi
.venv/bin/python -m bench.ingest
.venv/bin/python -m bench.catalog --pg-url "$(bash "$SCRIPT_DIR/postgres.sh" url)"

#!/usr/bin/env bash
# Benchmarks (not tests): start the local broker and PostgreSQL if needed, run bench/, stop what we
# started. Each benchmark prints its figure beside the limit it is compared with, from one run.
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO_ROOT"
# shellcheck source=deploy/local/infra.sh
source "$SCRIPT_DIR/infra.sh"
trap 'infra_down; exit $?' EXIT
infra_up
# Every bench runs even when an earlier one misses its target; the exit status says whether all met theirs.
missed=()
run_bench() {  # name args...
  if ! .venv/bin/python -m "bench.$1" "${@:2}"; then
    missed+=("$1")
  fi
}
run_bench ingest
run_bench http_ingest
run_bench catalog --pg-url "$(bash "$SCRIPT_DIR/postgres.sh" url)"
run_bench publish
run_bench export
run_bench snapshot
run_bench portal
run_bench feeds
run_bench anonymize
run_bench schemas
run_bench freshness
if ((${#missed[@]})); then
  printf '[bench] below target or failed: %s\n' "${missed[*]}" >&2
  exit 1
fi

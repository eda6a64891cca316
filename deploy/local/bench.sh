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
.venv/bin/python -m bench.ingest
.venv/bin/python -m bench.catalog --pg-url "$(bash "$SCRIPT_DIR/postgres.sh" url)"
.venv/bin/python -m bench.publish
.venv/bin/python -m bench.feeds
.venv/bin/python -m bench.anonymize
.venv/bin/python -m bench.schemas

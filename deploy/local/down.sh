#!/usr/bin/env bash
# Stop the local infrastructure started by up.sh (PostgreSQL only if it is running).
#
#   down.sh [--wipe]     --wipe also deletes Kafka's and PostgreSQL's data (the Kafka jars stay cached)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
stop_args=()
for arg in "$@"; do
  case $arg in
    --wipe) stop_args=(--wipe) ;;
    -h | --help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'down.sh: unknown option %s\n' "$arg" >&2; exit 2 ;;
  esac
done

# Stop both even if the first one fails, then report the failure.
status=0
bash "$SCRIPT_DIR/kafka.sh" stop "${stop_args[@]}" || status=$?
bash "$SCRIPT_DIR/postgres.sh" stop "${stop_args[@]}" || status=$?
exit "$status"

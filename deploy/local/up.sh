#!/usr/bin/env bash
# Start the local infrastructure without Docker: Kafka always (fetched on first use), PostgreSQL on request.
#
#   up.sh [--with-postgres]     (or CITYOS_WITH_POSTGRES=1)
#
# Ends by printing the environment the services and integration tests read.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
with_postgres=${CITYOS_WITH_POSTGRES:-0}
for arg in "$@"; do
  case $arg in
    --with-postgres) with_postgres=1 ;;
    -h | --help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'up.sh: unknown option %s\n' "$arg" >&2; exit 2 ;;
  esac
done

bash "$SCRIPT_DIR/kafka.sh" fetch
bash "$SCRIPT_DIR/kafka.sh" start
"$SCRIPT_DIR/../../.venv/bin/cityos" kafka setup
if [[ $with_postgres == 1 ]]; then
  bash "$SCRIPT_DIR/postgres.sh" start
fi

printf '\nexport CITYOS_KAFKA_BOOTSTRAP=127.0.0.1:%s\n' "${KAFKA_PORT:-9092}"
if [[ $with_postgres == 1 ]]; then
  printf 'export CITYOS_DATABASE_URL=%s\n' "$(bash "$SCRIPT_DIR/postgres.sh" url)"
fi

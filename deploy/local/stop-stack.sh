#!/usr/bin/env bash
# Stop the services started by run-stack.sh (clean stop: they flush and commit), then the broker.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO_ROOT"

for name in analysis ingest-http feeds publish ingest catalog; do
  pid_file=var/run/$name.pid
  [[ -f $pid_file ]] || continue
  pid=$(<"$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    printf '[cityos] %s stopped\n' "$name"
  fi
  rm -f "$pid_file"
done
bash "$SCRIPT_DIR/kafka.sh" stop

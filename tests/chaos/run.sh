#!/usr/bin/env bash
# The fault tests (`make chaos`, and CI after `make test`), bounded in time, leaving nothing behind.
#
# Runs tests/chaos on the local three-node cluster (deploy/local/cluster.sh, ports 19192-19194) with a
# PostgreSQL server of their own (port 55533). pytest runs in a process group of its own; at the time
# limit it is interrupted (its fixtures stop the services, the cluster and the server), and whatever
# still runs a grace period later is killed. On any exit -- pass, failure, time limit, Ctrl-C -- every
# service process of the run is killed and the cluster and the server are stopped when this run
# started them.
#
# Environment (defaults in brackets):
#   CHAOS_EVENTS [100000]  events per scenario (the leader kills, the rolling restart, the PostgreSQL
#                          restarts and the scaling; the smoke and dead-letter tests send their own)
#   CHAOS_BUDGET_S [840]   time limit of the whole run in seconds; CHAOS_GRACE_S [90] after it
#   CHAOS_ARGS             extra pytest arguments (e.g. -k scaling)
set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO_ROOT"

EVENTS=${CHAOS_EVENTS:-100000}
BUDGET_S=${CHAOS_BUDGET_S:-840}
GRACE_S=${CHAOS_GRACE_S:-90}
CLUSTER=$REPO_ROOT/deploy/local/cluster.sh
POSTGRES=$REPO_ROOT/deploy/local/postgres.sh
# The fault tests' own PostgreSQL (tests/chaos/conftest.py: CITYOS_CHAOS_PGPORT, .cache/chaos-run).
PG_ENV=(env "PGPORT=${CITYOS_CHAOS_PGPORT:-55533}" "CITYOS_RUN_DIR=$REPO_ROOT/.cache/chaos-run")

log() { printf "[chaos] %s %s\n" "$(date +%H:%M:%S)" "$*"; }

cluster_was_up=0
bash "$CLUSTER" status >/dev/null 2>&1 && cluster_was_up=1
pg_was_up=0
"${PG_ENV[@]}" bash "$POSTGRES" status >/dev/null 2>&1 && pg_was_up=1

started=$(date +%s)
pid=""
timed_out=0

alive() { [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

# Interrupt pytest (its fixtures stop what they started), then kill its whole process group -- the
# service processes it started included -- once the grace period is over or pytest has ended.
stop_pytest() {
  if alive; then
    kill -INT "$pid" 2>/dev/null
    local deadline=$(($(date +%s) + GRACE_S))
    while alive && (($(date +%s) < deadline)); do sleep 1; done
    alive && log "pytest still running ${GRACE_S} s after the interrupt: killing it"
  fi
  [[ -n $pid ]] && kill -KILL -- "-$pid" 2>/dev/null
  return 0
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pytest
  if ((!cluster_was_up)) && bash "$CLUSTER" status >/dev/null 2>&1; then
    log "stopping the cluster this run started"
    bash "$CLUSTER" stop >/dev/null
  fi
  if ((!pg_was_up)) && "${PG_ENV[@]}" bash "$POSTGRES" status >/dev/null 2>&1; then
    log "stopping the PostgreSQL server this run started"
    "${PG_ENV[@]}" bash "$POSTGRES" stop >/dev/null
  fi
  local took=$(($(date +%s) - started))
  if ((timed_out)); then
    log "FAILED: over the ${BUDGET_S} s limit; stopped after $((took / 60)) min $((took % 60)) s"
    rc=124
  else
    log "$( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $((took / 60)) min $((took % 60)) s"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

log "fault tests: $EVENTS events per scenario, at most ${BUDGET_S} s"
# Job control: pytest leads a process group of its own, which the services it starts join, so all of
# them can be stopped together (the brokers and PostgreSQL run apart, stopped by their scripts); and
# it keeps SIGINT, which a script's background commands would otherwise ignore.
set -m
# shellcheck disable=SC2086  # CHAOS_ARGS is a list of words on purpose
CITYOS_CHAOS=1 CITYOS_CHAOS_EVENTS=$EVENTS "$REPO_ROOT/.venv/bin/pytest" tests/chaos \
  -p no:cacheprovider -rA -s --durations=0 ${CHAOS_ARGS:-} &
pid=$!
set +m
deadline=$((started + BUDGET_S))
while alive && (($(date +%s) < deadline)); do sleep 1; done
if alive; then
  timed_out=1
  log "time limit of ${BUDGET_S} s reached: interrupting pytest"
  exit 124
fi
wait "$pid"

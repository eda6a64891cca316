#!/usr/bin/env bash
# The main job: local Kafka + the four services on the embedded SQLite catalog + demo events.
#
#   run-stack.sh                 foreground; Ctrl-C stops the services and the broker it started
#   CITYOS_DETACH=1 run-stack.sh return once everything is up (stop with stop-stack.sh)
#
# Ports (env): KAFKA_PORT 9092, CITYOS_PUBLISH_PORT 8000, CITYOS_CATALOG_PORT 8001,
# CITYOS_INGEST_METRICS_PORT 8002, CITYOS_FEEDS_METRICS_PORT 8003, CITYOS_INGEST_HTTP_PORT 8004,
# CITYOS_ANALYSIS_PORT 8005. Logs and pid files: var/log, var/run.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO_ROOT"

export CITYOS_KAFKA_BOOTSTRAP=${CITYOS_KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}
PUBLISH_PORT=${CITYOS_PUBLISH_PORT:-8000}
CATALOG_PORT=${CITYOS_CATALOG_PORT:-8001}
INGEST_PORT=${CITYOS_INGEST_METRICS_PORT:-8002}
FEEDS_PORT=${CITYOS_FEEDS_METRICS_PORT:-8003}
INGEST_HTTP_PORT=${CITYOS_INGEST_HTTP_PORT:-8004}
ANALYSIS_PORT=${CITYOS_ANALYSIS_PORT:-8005}
CITYOS=$REPO_ROOT/.venv/bin/cityos
mkdir -p var/log var/run

log() { printf '[cityos] %s\n' "$*"; }

wait_http() {  # name url timeout_s
  local deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null "$2" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      log "ERROR: $1 did not answer $2 within $3 s; last log lines:"
      tail -n 30 "var/log/$1.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

start_service() {  # name
  local pid_file=var/run/$1.pid
  if [[ -f $pid_file ]] && kill -0 "$(<"$pid_file")" 2>/dev/null; then
    log "$1 already running (pid $(<"$pid_file"))"
    return
  fi
  nohup "$CITYOS" serve "$1" >"var/log/$1.log" 2>&1 &
  echo $! >"$pid_file"
  log "$1 started (pid $!, log var/log/$1.log)"
}

bash "$SCRIPT_DIR/kafka.sh" fetch
bash "$SCRIPT_DIR/kafka.sh" start
# Principals (passwords into var/secrets, 0600), topics and ACLs: every service authenticates as itself.
"$CITYOS" kafka setup

start_service catalog   # migrates the database and registers the schemas first
wait_http catalog "http://127.0.0.1:$CATALOG_PORT/readyz" 60
# Ward boundaries (after the catalog's migrations): per-ward counts and the site's map need them.
"$CITYOS" geo load-wards || log "WARNING: ward boundaries not loaded (see the error above): no per-ward counts or ward map"
start_service ingest
start_service publish
start_service feeds
start_service ingest-http
wait_http ingest "http://127.0.0.1:$INGEST_PORT/metrics" 60
wait_http publish "http://127.0.0.1:$PUBLISH_PORT/readyz" 60
wait_http feeds "http://127.0.0.1:$FEEDS_PORT/readyz" 60
wait_http ingest-http "http://127.0.0.1:$INGEST_HTTP_PORT/readyz" 60

log "producing demo events"
"$CITYOS" demo
# The DX plan's KPI series (open data, dx-kpi) from the demo's figures, once the catalog applied them.
log "publishing the KPI series"
"$CITYOS" kpi publish --settle 120 || log "WARNING: KPI series not published (see the error above)"
# Parquet snapshots of every dataset into var/snapshots (not public: every classification), now and
# every CITYOS_SNAPSHOT_INTERVAL_S; started after the demo so the first one holds its records.
start_service analysis
wait_http analysis "http://127.0.0.1:$ANALYSIS_PORT/healthz" 60

cat <<URLS

  CityOS Connector is up (catalog: SQLite at var/cityos.db, Kafka at $CITYOS_KAFKA_BOOTSTRAP)

  catalog site      http://127.0.0.1:$PUBLISH_PORT/   (English: /en/)
  open-data API     http://127.0.0.1:$PUBLISH_PORT/api/v1/datasets
  example records   http://127.0.0.1:$PUBLISH_PORT/api/v1/datasets/aed/records
  DX plan KPIs      http://127.0.0.1:$PUBLISH_PORT/api/v1/kpis   (.venv/bin/cityos kpi list; docs/kpi.md)
  API docs          http://127.0.0.1:$PUBLISH_PORT/docs
  map and per ward  http://127.0.0.1:$PUBLISH_PORT/map   .../api/v1/datasets/aed/aggregate?by=ward
  events over HTTP  http://127.0.0.1:$INGEST_HTTP_PORT/api/v1/events   (docs: /docs; README "Sending events over HTTP")
  OGC API Features  http://127.0.0.1:$PUBLISH_PORT/ogc   (GIS: ogrinfo OAPIF:http://127.0.0.1:$PUBLISH_PORT/ogc)
  CKAN action API   http://127.0.0.1:$PUBLISH_PORT/api/3/action/package_list
  DCAT-AP catalog   http://127.0.0.1:$PUBLISH_PORT/catalog.ttl
  catalog admin     http://127.0.0.1:$CATALOG_PORT/api/v1/admin/datasets   (credential: .venv/bin/cityos admins issue NAME)
  metrics           http://127.0.0.1:$PUBLISH_PORT/metrics  :$CATALOG_PORT/metrics  :$INGEST_PORT/metrics  :$FEEDS_PORT/metrics  :$ANALYSIS_PORT/metrics
  Parquet snapshots var/snapshots/dataset=<id>/date=<day>/part-0.parquet   (city-internal; docs/analysis.md)
  feeds             .venv/bin/cityos subscriptions create DATASET DEPARTMENT   (docs/feeds.md)
  import a CSV      .venv/bin/cityos import-csv FILE --dataset aed
  Kafka credential  .venv/bin/cityos kafka credential DEPARTMENT   (docs/security.md)

URLS

if [[ ${CITYOS_DETACH:-0} == 1 ]]; then
  log "detached; stop with: make down"
  exit 0
fi
trap 'bash "$SCRIPT_DIR/stop-stack.sh"; exit 0' INT TERM
log "running; Ctrl-C stops everything"
while true; do sleep 1; done

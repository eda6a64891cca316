#!/usr/bin/env bash
# Local PostgreSQL for development and tests, without Docker.
#
#   postgres.sh start            install PostgreSQL if missing, initdb once, start, create role/databases
#   postgres.sh stop [--wipe]    fast shutdown (pg_ctl stop -m fast); --wipe also deletes the cluster
#   postgres.sh status           exit 0 when running, 3 when not
#   postgres.sh url [database]   print the SQLAlchemy URL (database: cityos [default] or cityos_test)
#
# Environment: PGPORT [55432], CITYOS_RUN_DIR [.cache/run] (relative paths are from the repository root),
#   PG_START_TIMEOUT [60], PG_WIPE [0].
# Role cityos/cityos owns databases cityos and cityos_test. The server listens on 127.0.0.1 only and trusts
# loopback connections: never expose this cluster. Its unix socket lives next to the data directory.
#
# PostgreSQL refuses to run as root. As root, the server runs as the `postgres` system user (created by the
# Debian package); the cluster then lives in $CITYOS_RUN_DIR/postgres when that user can use the path,
# otherwise in /tmp/cityos-pg-<uid>.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

PGPORT=${PGPORT:-55432}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}
HOST=127.0.0.1
DB_USER=cityos
DB_PASSWORD=cityos
DATABASES=(cityos cityos_test)
PG_OS_USER=postgres

case ${CITYOS_RUN_DIR:-.cache/run} in
  /*) RUN_DIR=${CITYOS_RUN_DIR} ;;
  *) RUN_DIR=$REPO_ROOT/${CITYOS_RUN_DIR:-.cache/run} ;;
esac
PRIMARY_HOME=$RUN_DIR/postgres
FALLBACK_HOME=/tmp/cityos-pg-$(id -u)

log() { printf '[postgres] %s\n' "$*"; }
die() { printf '[postgres] ERROR: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01d s' $((ms / 1000)) $(((ms % 1000) / 100)); }

is_root() { [[ $(id -u) -eq 0 ]]; }

# Runs a server-side command as the PostgreSQL OS user. `cd /` because initdb/pg_ctl resolve the current
# directory, which the postgres user may not be allowed to read.
as_pg() {
  if is_root; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

# Newest installed server (Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH).
find_pg_bin() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
  if [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl ]]; then
    printf '%s\n' "$dir"
  elif command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
  else
    return 1
  fi
}

ensure_postgres_installed() {
  if PG_BIN=$(find_pg_bin); then
    return 0
  fi
  is_root || die "PostgreSQL server binaries not found; install them (Debian: apt-get install postgresql)"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL server binaries not found and apt-get is unavailable"
  log "PostgreSQL not found: installing the Debian package (apt-get install postgresql)"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
  PG_BIN=$(find_pg_bin) || die "PostgreSQL still not found after installing it"
}

# Where an existing cluster lives; fails when there is none yet.
existing_home() {
  local home
  for home in "$PRIMARY_HOME" "$FALLBACK_HOME"; do
    if [[ -f $home/data/PG_VERSION ]]; then
      printf '%s\n' "$home"
      return 0
    fi
  done
  return 1
}

# The socket file path must fit in sockaddr_un (107 bytes) or the server cannot create it.
socket_path_fits() { (( ${#1} + ${#PGPORT} + 10 <= 100 )); }

prepare_home() {
  local home=$1
  mkdir -p "$home" || return 1
  if is_root; then
    chown "$PG_OS_USER:$PG_OS_USER" "$home" || return 1
  fi
  chmod 700 "$home"
  as_pg test -w "$home" -a -x "$home"
}

choose_home() {
  if PG_HOME=$(existing_home); then
    return 0
  fi
  if is_root && ! id "$PG_OS_USER" >/dev/null 2>&1; then
    die "running as root but there is no '$PG_OS_USER' system user to run the server"
  fi
  local reason
  if ! socket_path_fits "$PRIMARY_HOME"; then
    reason="$PRIMARY_HOME is too long for a unix socket path"
  elif prepare_home "$PRIMARY_HOME"; then
    PG_HOME=$PRIMARY_HOME
    return 0
  else
    # Typically a run dir under a private home (e.g. /root, mode 700).
    reason="the $PG_OS_USER user cannot use $PRIMARY_HOME"
    rm -rf "$PRIMARY_HOME"
  fi
  if [[ -e $FALLBACK_HOME && ! -O $FALLBACK_HOME ]] && ! is_root; then
    die "$FALLBACK_HOME exists and belongs to someone else"
  fi
  prepare_home "$FALLBACK_HOME" || die "cannot prepare $FALLBACK_HOME for the $PG_OS_USER user"
  PG_HOME=$FALLBACK_HOME
  log "$reason: cluster placed in $PG_HOME"
}

set_paths() {
  DATA_DIR=$PG_HOME/data
  SERVER_LOG=$PG_HOME/postgres.log
}

pg_running() {
  [[ -f ${DATA_DIR:-/nonexistent}/PG_VERSION ]] || return 1
  as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

init_cluster() {
  local locale_args=(--no-locale)
  if grep -qiE '^c\.utf-?8$' <<<"$(locale -a 2>/dev/null)"; then
    locale_args=(--locale=C.UTF-8)
  fi
  log "initdb into $DATA_DIR"
  as_pg "$PG_BIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 "${locale_args[@]}" \
    >"$PG_HOME/initdb.log" 2>&1 || { cat "$PG_HOME/initdb.log" >&2; die "initdb failed"; }
  printf "\n# Local overrides written by deploy/local/postgres.sh on every start.\ninclude_if_exists = 'cityos.conf'\n" \
    | as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

write_local_config() {
  as_pg tee "$DATA_DIR/cityos.conf" >/dev/null <<EOF
# Generated by deploy/local/postgres.sh on every start: edits here are overwritten.
port = $PGPORT
listen_addresses = '$HOST'
unix_socket_directories = '$PG_HOME'
max_connections = 200
# Development/test cluster only: durability is traded for speed. A crash of the machine may corrupt
# this cluster, which is acceptable for throw-away data and never acceptable in production.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

provision() {
  local psql=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PGPORT" -U postgres -d postgres)
  "${psql[@]}" <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  END IF;
END
\$\$;
-- Tests drop their databases WITH (FORCE); an autovacuum worker busy in one (after a bulk insert)
-- may only be terminated by a member of pg_signal_backend. Granting twice is harmless.
GRANT pg_signal_backend TO $DB_USER;
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8'' TEMPLATE template0', d, '$DB_USER')
  FROM unnest(ARRAY['${DATABASES[0]}', '${DATABASES[1]}']) AS d
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec
EOF
}

cmd_start() {
  local started
  started=$(now_ms)
  ensure_postgres_installed
  choose_home
  set_paths
  if pg_running; then
    log "already running on $HOST:$PGPORT (data $DATA_DIR): nothing to do"
    return 0
  fi
  port_open "$PGPORT" && die "port $HOST:$PGPORT is already in use by another process (set PGPORT)"
  [[ -f $DATA_DIR/PG_VERSION ]] || init_cluster
  write_local_config

  log "starting PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on $HOST:$PGPORT"
  if ! as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$SERVER_LOG" -w -t "$PG_START_TIMEOUT" start >/dev/null; then
    printf '[postgres] --- last lines of %s ---\n' "$SERVER_LOG" >&2
    tail -n 30 "$SERVER_LOG" >&2 || true
    die "PostgreSQL did not start"
  fi
  local deadline=$(( $(now_ms) + PG_START_TIMEOUT * 1000 ))
  until "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PGPORT"; do
    (( $(now_ms) < deadline )) || die "pg_isready still failing after ${PG_START_TIMEOUT} s (see $SERVER_LOG)"
    sleep 0.2
  done
  provision
  log "ready after $(elapsed "$started"): $(cmd_url)"
}

cmd_stop() {
  local wipe=${PG_WIPE:-0} arg
  for arg in "$@"; do
    case $arg in
      --wipe) wipe=1 ;;
      *) die "unknown option for stop: $arg" ;;
    esac
  done
  if ! PG_HOME=$(existing_home); then
    log "not running (no cluster initialized)"
    return 0
  fi
  set_paths
  PG_BIN=$(find_pg_bin) || die "PostgreSQL binaries not found"
  if pg_running; then
    local started
    started=$(now_ms)
    as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t 60 stop >/dev/null
    log "stopped after $(elapsed "$started")"
  else
    log "not running"
  fi
  if [[ $wipe == 1 ]]; then
    rm -rf "$PG_HOME"
    log "wiped $PG_HOME"
  fi
}

cmd_status() {
  if PG_HOME=$(existing_home) && PG_BIN=$(find_pg_bin); then
    set_paths
    if pg_running; then
      log "running on $HOST:$PGPORT (data $DATA_DIR)"
      return 0
    fi
  fi
  log "not running"
  return 3
}

cmd_url() {
  printf 'postgresql+psycopg://%s:%s@%s:%s/%s\n' "$DB_USER" "$DB_PASSWORD" "$HOST" "$PGPORT" "${1:-${DATABASES[0]}}"
}

usage() {
  # The header comment of this file is the help text.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

case ${1:-} in
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  status) cmd_status ;;
  url) cmd_url "${2:-}" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac

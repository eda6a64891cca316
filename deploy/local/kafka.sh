#!/usr/bin/env bash
# Local single-node Kafka (KRaft, broker+controller in one JVM) without Docker, secured as production is:
# clients authenticate with SASL/SCRAM-SHA-512, the StandardAuthorizer denies what no ACL allows, and no
# topic is created by a mere produce or fetch. The broker's own passwords are generated on first start into
# the secrets folder (0600); `cityos kafka setup` then creates every principal, topic and ACL.
#
#   kafka.sh fetch            download Kafka and its runtime classpath from Maven Central (once)
#   kafka.sh start            format storage on first use, start the broker, wait until it accepts TCP
#   kafka.sh stop [--wipe]    SIGTERM, up to 30 s for a clean shutdown, then SIGKILL; --wipe drops all data
#   kafka.sh status           exit 0 when running, 3 when not
#
# Environment (defaults in brackets):
#   KAFKA_VERSION [4.1.1]  KAFKA_PORT [9092]  KAFKA_CONTROLLER_PORT [9093]  KAFKA_NUM_PARTITIONS [3]
#   KAFKA_HEAP_OPTS [-Xms256m -Xmx1g]  KAFKA_START_TIMEOUT [60]  KAFKA_WIPE [0]
#   CITYOS_RUN_DIR [.cache/run]  CITYOS_SECRETS_DIR [var/secrets]  (relative paths: from the repository root)
# Maven settings apply as usual (e.g. MAVEN_OPTS=-Dmaven.repo.local=/elsewhere).
#
# Jars live in .cache/kafka/<version>/libs, config/data/logs in $CITYOS_RUN_DIR/kafka. Always 127.0.0.1:
# "localhost" may resolve to ::1 first and the broker only listens on IPv4 loopback.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_NUM_PARTITIONS=${KAFKA_NUM_PARTITIONS:-3}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_STOP_TIMEOUT=30
HOST=127.0.0.1

abspath() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$REPO_ROOT/$1" ;;
  esac
}

RUN_DIR=$(abspath "${CITYOS_RUN_DIR:-.cache/run}")
KAFKA_RUN=$RUN_DIR/kafka
DATA_DIR=$KAFKA_RUN/data
CONFIG=$KAFKA_RUN/server.properties
PID_FILE=$KAFKA_RUN/kafka.pid
CLUSTER_ID_FILE=$KAFKA_RUN/cluster.id
CONSOLE_LOG=$KAFKA_RUN/kafka.out
CACHE_DIR=$REPO_ROOT/.cache/kafka/$KAFKA_VERSION
LIBS=$CACHE_DIR/libs
FETCHED_MARK=$CACHE_DIR/.fetched
LOG4J_CONFIG=$SCRIPT_DIR/kafka-log4j2.xml
SECRETS_DIR=$(abspath "${CITYOS_SECRETS_DIR:-var/secrets}")
# Storage formatted with the administrator's SCRAM credential carries this mark; older storage is replaced.
SCRAM_MARK=$KAFKA_RUN/.scram-formatted
# secret, and the server properties shared with cluster.sh.
# shellcheck source=deploy/local/kafka-properties.sh
source "$SCRIPT_DIR/kafka-properties.sh"

log() { printf '[kafka] %s\n' "$*"; }
die() { printf '[kafka] ERROR: %s\n' "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01d s' $((ms / 1000)) $(((ms % 1000) / 100)); }

# A fresh machine may lack the JDK or Maven; install them from Debian when we can.
ensure_tool() {
  local tool=$1 package=$2
  command -v "$tool" >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "$tool not found: installing Debian package $package"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package"
  fi
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required (Debian package: $package)"
}

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# Prints the broker pid when our broker is running; a stale pid file (or a pid reused by another
# program) counts as not running.
running_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid=$(<"$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *' kafka.Kafka '* ]] || return 1
  printf '%s\n' "$pid"
}

java_run() {
  java -Dkafka.logs.dir="$KAFKA_RUN" -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$LIBS/*" "$@"
}

cmd_fetch() {
  if [[ -f $FETCHED_MARK ]]; then
    log "Kafka $KAFKA_VERSION already fetched ($(find "$LIBS" -name '*.jar' | wc -l) jars in ${LIBS#"$REPO_ROOT"/})"
    return 0
  fi
  ensure_tool java openjdk-17-jre-headless
  ensure_tool mvn maven
  local started tmp
  started=$(now_ms)
  tmp=$CACHE_DIR/libs.partial
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies from Maven Central..."
  # Maven's own output goes to a file: on success it is noise, on failure its tail is shown.
  if ! mvn -B -Dstyle.color=never -f "$SCRIPT_DIR/kafka-pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE_DIR/fetch.log" 2>&1; then
    grep -E '^\[(ERROR|WARNING)\]' "$CACHE_DIR/fetch.log" | head -n 15 >&2 || true
    die "Maven could not resolve Kafka $KAFKA_VERSION (does that version exist on Maven Central?); full log: $CACHE_DIR/fetch.log"
  fi
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after download"
  # Swap in only a complete download, so an interrupted fetch is simply retried.
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  touch "$FETCHED_MARK"
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) into ${LIBS#"$REPO_ROOT"/} in $(elapsed "$started")"
}

write_config() {
  # The file holds the broker's own passwords: readable by its owner only.
  (umask 077 && : >"$CONFIG" && chmod 600 "$CONFIG")
  {
    cat <<EOF
# Generated by deploy/local/kafka.sh on every start: edits here are overwritten.
# Single node: the same JVM is broker and KRaft controller, with a static one-voter quorum.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=CLIENT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=CLIENT://$HOST:$KAFKA_PORT
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
log.dirs=$DATA_DIR

EOF
    security_properties
    cat <<EOF

# One broker: every internal topic must accept replication factor 1 / min ISR 1, or the group
# coordinator and the transaction coordinator never come up.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

EOF
    topic_properties "$KAFKA_NUM_PARTITIONS"
  } >"$CONFIG"
}

format_storage() {
  if [[ -f $DATA_DIR/meta.properties && ! -f $SCRAM_MARK ]]; then
    log "storage in ${DATA_DIR#"$REPO_ROOT"/} predates authentication (no administrator credential): replacing it"
    rm -rf "$DATA_DIR"
    mkdir -p "$DATA_DIR"
  fi
  [[ -f $DATA_DIR/meta.properties ]] && return 0
  local cluster_id
  if [[ -s $CLUSTER_ID_FILE ]]; then
    cluster_id=$(<"$CLUSTER_ID_FILE")
  else
    cluster_id=$(java_run kafka.tools.StorageTool random-uuid | tail -n1)
    printf '%s\n' "$cluster_id" >"$CLUSTER_ID_FILE"
  fi
  log "formatting storage in ${DATA_DIR#"$REPO_ROOT"/} (cluster id $cluster_id)"
  # Static controller.quorum.voters: format without --standalone (that flag is for dynamic quorums).
  java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" \
    --add-scram "SCRAM-SHA-512=[name=\"admin\",password=\"$(secret kafka-admin)\"]" >/dev/null \
    || die "kafka.tools.StorageTool format failed (see $KAFKA_RUN/server.log)"
  touch "$SCRAM_MARK"
}

cmd_start() {
  local pid
  if pid=$(running_pid); then
    log "already running (pid $pid, $HOST:$KAFKA_PORT): nothing to do"
    return 0
  fi
  [[ -f $FETCHED_MARK ]] || die "Kafka $KAFKA_VERSION is not fetched yet: run '$0 fetch' first"
  ensure_tool java openjdk-17-jre-headless
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$port" && die "port $HOST:$port is already in use by another process"
  done

  local started
  started=$(now_ms)
  mkdir -p "$DATA_DIR"
  rm -f "$PID_FILE"
  write_config
  format_storage

  # start_failed shows only what this launch logged, not the storage-format chatter before it.
  LOG_MARK=$(wc -l <"$KAFKA_RUN/server.log" 2>/dev/null || echo 0)
  log "starting Kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT)"
  # setsid: the broker must survive the shell (and its process group) that started it.
  # The inner shell records its own pid, then exec turns it into the JVM, so the pid file is exact.
  # shellcheck disable=SC2016,SC2086  # $$ belongs to the inner shell; heap options must word-split
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_RUN" -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
    >"$CONSOLE_LOG" 2>&1 </dev/null &

  local deadline=$(( $(now_ms) + KAFKA_START_TIMEOUT * 1000 ))
  while (( $(now_ms) < deadline )); do
    if pid=$(running_pid) && port_open "$KAFKA_PORT"; then
      log "ready on $HOST:$KAFKA_PORT (pid $pid) after $(elapsed "$started")"
      return 0
    fi
    if [[ -s $PID_FILE ]] && ! kill -0 "$(<"$PID_FILE")" 2>/dev/null; then
      start_failed "the broker process exited during startup"
    fi
    sleep 0.2
  done
  start_failed "the broker did not accept connections on $HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT} s"
}

start_failed() {
  {
    printf '[kafka] ERROR: %s\n' "$1"
    printf '[kafka] --- last lines of %s ---\n' "$CONSOLE_LOG"
    tail -n 20 "$CONSOLE_LOG" 2>/dev/null || true
    if [[ -f $KAFKA_RUN/server.log ]] && (( $(wc -l <"$KAFKA_RUN/server.log") > ${LOG_MARK:-0} )); then
      printf '[kafka] --- last lines of %s ---\n' "$KAFKA_RUN/server.log"
      tail -n "+$(( ${LOG_MARK:-0} + 1 ))" "$KAFKA_RUN/server.log" | tail -n 40
    fi
  } >&2
  local pid
  if pid=$(running_pid); then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  exit 1
}

cmd_stop() {
  local wipe=${KAFKA_WIPE:-0} arg
  for arg in "$@"; do
    case $arg in
      --wipe) wipe=1 ;;
      *) die "unknown option for stop: $arg" ;;
    esac
  done
  local pid
  if pid=$(running_pid); then
    log "stopping (pid $pid)..."
    local started
    started=$(now_ms)
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$(( $(now_ms) + KAFKA_STOP_TIMEOUT * 1000 ))
    while kill -0 "$pid" 2>/dev/null && (( $(now_ms) < deadline )); do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "no clean exit after ${KAFKA_STOP_TIMEOUT} s: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    log "stopped after $(elapsed "$started")"
  else
    log "not running"
  fi
  rm -f "$PID_FILE"
  if [[ $wipe == 1 ]]; then
    rm -rf "$KAFKA_RUN"
    log "wiped ${KAFKA_RUN#"$REPO_ROOT"/} (data, config, logs)"
  fi
}

cmd_status() {
  local pid
  if pid=$(running_pid); then
    if port_open "$KAFKA_PORT"; then
      log "running (pid $pid, $HOST:$KAFKA_PORT)"
    else
      log "running (pid $pid) but $HOST:$KAFKA_PORT is not accepting connections yet"
    fi
    return 0
  fi
  log "not running"
  return 3
}

usage() {
  # The header comment of this file is the help text.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

case ${1:-} in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  status) cmd_status ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac

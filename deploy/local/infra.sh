#!/usr/bin/env bash
# Sourced by test.sh and bench.sh: start the local broker and PostgreSQL when they are not running,
# and stop on exit only what was started here (a stack already running is left alone).
# shellcheck shell=bash

INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
infra_started_kafka=0
infra_started_pg=0

infra_up() {
  if ! bash "$INFRA_DIR/kafka.sh" status >/dev/null 2>&1; then
    bash "$INFRA_DIR/kafka.sh" fetch
    bash "$INFRA_DIR/kafka.sh" start
    infra_started_kafka=1
  fi
  if ! bash "$INFRA_DIR/postgres.sh" status >/dev/null 2>&1; then
    bash "$INFRA_DIR/postgres.sh" start
    infra_started_pg=1
  fi
}

infra_down() {
  local rc=$?
  if ((infra_started_kafka)); then bash "$INFRA_DIR/kafka.sh" stop || true; fi
  if ((infra_started_pg)); then bash "$INFRA_DIR/postgres.sh" stop || true; fi
  return $rc
}

#!/usr/bin/env bash
# The whole test suite on this machine: starts what the tests need (Kafka, PostgreSQL, promtool),
# runs lint, type checks and pytest, and stops what it started.
#
# Env: PYTEST_ARGS (extra pytest arguments), CITYOS_TEST_SKIP_LINT=1 to skip ruff/mypy.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
cd "$REPO_ROOT"
VENV=$REPO_ROOT/.venv

log() { printf '[test] %s\n' "$*"; }

# shellcheck source=deploy/local/infra.sh
source "$SCRIPT_DIR/infra.sh"
trap 'infra_down; exit $?' EXIT

# promtool checks the metrics exposition format; Debian ships it in the prometheus package.
if ! command -v promtool >/dev/null 2>&1; then
  log "installing promtool (Debian package prometheus)"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi
# kcat is the real Kafka client the feed-consumer example in docs/feeds.md is tested with.
if ! command -v kcat >/dev/null 2>&1; then
  log "installing kcat (Debian package kcat)"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kcat >/dev/null
fi

# The browser suite drives Debian's chromium (Playwright attaches to it; no browser is downloaded);
# the GIS suite uses GDAL's ogrinfo/ogr2ogr as a real OGC API - Features client.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v ogrinfo >/dev/null 2>&1 || missing+=(gdal-bin)
# A Japanese font, so the screenshots the browser suite writes show the pages' text, not empty boxes.
[[ -e /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf ]] || missing+=(fonts-ipafont-gothic)
if ((${#missing[@]})); then
  log "installing ${missing[*]} (Debian packages)"
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! fixtures=$("$VENV/bin/python" -m tests.support.fixtures_path); then
  log "ERROR: test fixtures not found at $fixtures: put the shared folder beside the repository (../shared/fixtures) or set CITYOS_FIXTURES"
  exit 2
fi
log "fixtures: $fixtures"
infra_up

export CITYOS_TEST_KAFKA_BOOTSTRAP=127.0.0.1:${KAFKA_PORT:-9092}
CITYOS_TEST_PG_URL=$(bash "$SCRIPT_DIR/postgres.sh" url)
export CITYOS_TEST_PG_URL

if [[ ${CITYOS_TEST_SKIP_LINT:-0} != 1 ]]; then
  log "ruff"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  log "mypy"
  "$VENV/bin/mypy"
  log "import contracts (floors)"
  "$VENV/bin/lint-imports"
fi
# Schema evolution guard: schemas/ in the working tree against the last commit.
log "schemas check"
"$VENV/bin/python" -m cityos schemas check
log "pytest (the 25 slowest tests are listed at the end)"
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
"$VENV/bin/pytest" --durations=25 ${PYTEST_ARGS:-}

#!/bin/sh
# One-shot, before the broker starts (the `secrets` service of docker-compose.yml, run as root).
#
# The broker's own passwords (`kafka-admin`, `kafka-controller`) are generated on the first start into
# the operator's secrets volume, in the same format as cityos.kernel.secret_store and
# deploy/local/kafka.sh (256 random bits, URL-safe base64 without '=', one 0600 file each in a 0700
# folder), and never leave the stack's volumes. Three volumes, three owners:
#   operator secrets  every credential, the administrator's included  (the set-up step, uid 10001)
#   broker secrets    a copy of the broker's two passwords             (the broker, uid 1000)
#   service secrets   the services' own passwords, no administrator    (the services, uid 10001)
# Root is needed only to hand each volume to its owner; a fresh Docker volume belongs to root.
set -eu

OPERATOR_DIR=${CITYOS_SECRETS_DIR:?the operator secrets folder}
BROKER_DIR=${CITYOS_BROKER_SECRETS_DIR:?the broker secrets folder}
SERVICE_DIR=${CITYOS_SERVICE_SECRETS_DIR:?the service secrets folder}
PLATFORM_OWNER=${CITYOS_PLATFORM_OWNER:-10001:10001}
BROKER_OWNER=${CITYOS_BROKER_OWNER:-1000:1000}
BROKER_SECRETS="kafka-admin kafka-controller"

umask 077

own_folder() {  # folder owner
  mkdir -p "$1"
  chown "$2" "$1"
  chmod 700 "$1"
}

generate() {
  head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# The secret NAME in the operator folder, created when absent or empty; an existing value is kept,
# because the broker's storage was formatted with it.
ensure_secret() {
  file=$OPERATOR_DIR/$1
  if [ ! -s "$file" ]; then
    tmp=$OPERATOR_DIR/.$1.$$
    printf '%s\n' "$(generate)" >"$tmp"
    mv -f "$tmp" "$file"
    echo "[secrets] generated $1"
  fi
  chown "$PLATFORM_OWNER" "$file"
  chmod 600 "$file"
}

# Refreshed at every start, so the broker always runs with the operator folder's value.
copy_to_broker() {
  tmp=$BROKER_DIR/.$1.$$
  cp "$OPERATOR_DIR/$1" "$tmp"
  chown "$BROKER_OWNER" "$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$BROKER_DIR/$1"
}

own_folder "$OPERATOR_DIR" "$PLATFORM_OWNER"
own_folder "$BROKER_DIR" "$BROKER_OWNER"
own_folder "$SERVICE_DIR" "$PLATFORM_OWNER"
for name in $BROKER_SECRETS; do
  ensure_secret "$name"
  copy_to_broker "$name"
done
echo "[secrets] broker secrets ready"

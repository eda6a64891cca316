#!/bin/sh
# One-shot, once the broker is healthy (the `kafka-setup` service of docker-compose.yml, uid 10001).
#
# `cityos kafka setup` acts as the Kafka administrator (password in the operator volume) and creates
# the services' principals, the platform's topics and every ACL; it writes each principal's password
# into the operator volume. The services' own passwords are then copied into the service volume, the
# only secrets folder the services mount: a compromised service never holds the administrator's
# password. Arguments go to `cityos kafka setup` (e.g. `--rotate cityos-ingest`).
set -eu

SERVICE_DIR=${CITYOS_SERVICE_SECRETS_DIR:?the service secrets folder}

umask 077
cityos kafka setup "$@"

for file in "$CITYOS_SECRETS_DIR"/kafka-cityos-*; do
  [ -f "$file" ] || continue
  name=${file##*/}
  tmp=$SERVICE_DIR/.$name.$$
  cp "$file" "$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$SERVICE_DIR/$name"
done
echo "[kafka-setup] service credentials in place"

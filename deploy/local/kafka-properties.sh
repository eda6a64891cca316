# Sourced by kafka.sh (the single local broker) and cluster.sh (the three-node cluster): what both
# set-ups share, written once so the two cannot drift apart. The cluster is meant to be the single
# broker's security and client-facing behaviour with replication added; only listeners, node ids
# and replication settings differ between them.
#
# Needs SECRETS_DIR (absolute) set by the sourcing script.

# The secret NAME from the secrets folder, generated (0600, URL-safe, 256 bits) when absent: the same
# file format as cityos.kernel.secret_store, so the Python side reads what these scripts wrote, and
# one administrator password serves both set-ups.
secret() {
  local file=$SECRETS_DIR/$1
  if [[ ! -s $file ]]; then
    (umask 077 && mkdir -p "$SECRETS_DIR" && chmod 700 "$SECRETS_DIR")
    local value
    value=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    (umask 077 && printf '%s\n' "$value" >"$file.tmp.$$" && mv -n "$file.tmp.$$" "$file" && rm -f "$file.tmp.$$")
  fi
  tr -d '\n' <"$file"
}

# Authentication and authorization of every node, printed as server.properties lines: listeners
# named CLIENT and CONTROLLER, the administrator's and the controller's passwords from the secrets
# folder.
security_properties() {
  local admin_password controller_password
  admin_password=$(secret kafka-admin)
  controller_password=$(secret kafka-controller)
  cat <<PROPERTIES
# Every client authenticates with SCRAM-SHA-512 (credentials live in the cluster metadata; the
# administrator's is written at format time, every other principal's by 'cityos kafka setup').
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_password";
# KRaft controllers cannot use SCRAM (they authenticate before the metadata holding the credentials
# is read): the controller listener takes PLAIN with one static, generated principal.
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$controller_password" user_controller="$controller_password";

# Nothing is allowed unless an ACL allows it; the brokers and the administrator are super users.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
PROPERTIES
}

# What clients see of topics and groups, printed as server.properties lines; $1: partitions of a
# topic created without a count.
topic_properties() {
  cat <<PROPERTIES
# Topics exist because the platform created them (cityos kafka setup, or a service allowed to), never
# because a client named them.
auto.create.topics.enable=false
num.partitions=$1
# Tests start consumers one after the other; the default 3 s delay would slow down every group join.
group.initial.rebalance.delay.ms=0
# Events over 1 MiB are refused by ingest, but they must reach it (and the dead-letter topic keeps
# the original bytes), so the brokers accept up to 4 MiB + headroom, matching cityos.kernel.kafka.
message.max.bytes=4259840
replica.fetch.max.bytes=4259840
PROPERTIES
}

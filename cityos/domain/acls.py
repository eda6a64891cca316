"""Kafka ACL bindings a secured cluster needs for departments and the feed republisher.

The shared local broker runs without an authorizer and is never reconfigured; these bindings are
derived (a pure function), printed by ``cityos feeds acls``, and applied with ``--apply`` only to a
cluster that has an authorizer. Prefixed patterns keep the list short and stable: a department may
read every topic under ``<prefix>feed.<department>.`` and use consumer groups under the same name,
so a new subscription needs no new ACL; it writes only its own ``dept.<department>.events``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from cityos.kernel.errors import KafkaUnavailable

FEEDS_PRINCIPAL = "User:cityos-feeds"


@dataclass(frozen=True, order=True)
class AclSpec:
    principal: str
    resource_type: str  # TOPIC | GROUP | TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL | PREFIXED
    operation: str  # READ | WRITE | DESCRIBE

    def line(self) -> str:
        return f"ALLOW {self.principal} {self.operation} {self.resource_type} {self.pattern}:{self.name}"


def acl_specs(
    departments: Iterable[tuple[str, str | None]],
    *,
    topic_prefix: str,
    validated_topic: str,
    feeds_group: str,
    feeds_transactional_id_prefix: str,
    state_topic: str,
    feeds_principal: str = FEEDS_PRINCIPAL,
) -> list[AclSpec]:
    """Bindings for ``departments`` ((id, kafka principal) pairs; without a principal: none)."""
    specs: list[AclSpec] = []
    for department, principal in departments:
        if not principal:
            continue
        own_feeds = f"{topic_prefix}feed.{department}."
        specs += [
            AclSpec(principal, "TOPIC", own_feeds, "PREFIXED", "READ"),
            AclSpec(principal, "TOPIC", own_feeds, "PREFIXED", "DESCRIBE"),
            AclSpec(principal, "GROUP", own_feeds, "PREFIXED", "READ"),
            AclSpec(principal, "TOPIC", f"{topic_prefix}dept.{department}.events", "LITERAL", "WRITE"),
            AclSpec(principal, "TOPIC", f"{topic_prefix}dept.{department}.events", "LITERAL", "DESCRIBE"),
        ]
    specs += [
        AclSpec(feeds_principal, "TOPIC", validated_topic, "LITERAL", "READ"),
        AclSpec(feeds_principal, "TOPIC", validated_topic, "LITERAL", "DESCRIBE"),
        AclSpec(feeds_principal, "GROUP", feeds_group, "LITERAL", "READ"),
        AclSpec(feeds_principal, "TOPIC", f"{topic_prefix}feed.", "PREFIXED", "WRITE"),
        AclSpec(feeds_principal, "TOPIC", f"{topic_prefix}feed.", "PREFIXED", "DESCRIBE"),
        AclSpec(feeds_principal, "TOPIC", f"{topic_prefix}feed.", "PREFIXED", "CREATE"),
        AclSpec(feeds_principal, "TOPIC", state_topic, "LITERAL", "READ"),
        AclSpec(feeds_principal, "TOPIC", state_topic, "LITERAL", "WRITE"),
        AclSpec(feeds_principal, "TRANSACTIONAL_ID", feeds_transactional_id_prefix, "PREFIXED", "WRITE"),
        AclSpec(feeds_principal, "TRANSACTIONAL_ID", feeds_transactional_id_prefix, "PREFIXED", "DESCRIBE"),
    ]
    return sorted(set(specs))


def to_binding(spec: AclSpec) -> AclBinding:
    return AclBinding(
        ResourceType[spec.resource_type],
        spec.name,
        ResourcePatternType[spec.pattern],
        spec.principal,
        "*",
        AclOperation[spec.operation],
        AclPermissionType.ALLOW,
    )


def apply_acls(bootstrap: str, specs: list[AclSpec], *, timeout_s: float = 30.0) -> None:
    """Create the bindings; raises KafkaUnavailable naming the broker's refusal (e.g. a cluster
    without an authorizer answers SECURITY_DISABLED)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_acls([to_binding(spec) for spec in specs], request_timeout=timeout_s)
    for binding, future in futures.items():
        try:
            future.result()
        except Exception as exc:  # KafkaException, or KafkaError raised by the future
            raise KafkaUnavailable(f"cannot create ACL {binding}: {exc}") from exc

"""Every Kafka ACL binding of the platform, from one declarative table.

The broker denies whatever no binding allows (``allow.everyone.if.no.acl.found=false``), so this
table *is* the access policy: ``cityos kafka setup`` applies it, ``cityos feeds acls`` prints it,
docs/security.md explains it. Each platform service has its own principal and only the rights its
work needs:

- a department writes only its own ``dept.<id>.events`` and reads only its own ``feed.<id>.*``
  topics, in consumer groups named under the same prefix; it can read nothing holding raw records;
- ingest alone writes the validated and dead-letter topics; the registry alone writes the schemas
  topic; the feed republisher alone writes ``feed.*`` topics and uses its transactional ids;
- the catalog reads validated events and re-sends repaired dead letters to their department topic;
- the operator's CLI (imports, demo, repairs) writes department topics and watches what ingest made
  of them.

Prefixed patterns keep the table short and stable: a new subscription or department topic needs no
new binding beyond its department's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from cityos.kernel.errors import KafkaUnavailable
from cityos.kernel.kafka import admin_client
from cityos.kernel.kafka_access import READER_GROUP_PREFIX, KafkaAccess, Principal, department_principal
from cityos.kernel.settings import Settings


@dataclass(frozen=True, order=True)
class AclSpec:
    principal: str
    resource_type: str  # TOPIC | GROUP | TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL | PREFIXED
    operation: str  # READ | WRITE | DESCRIBE | CREATE

    def line(self) -> str:
        return f"ALLOW {self.principal} {self.operation} {self.resource_type} {self.pattern}:{self.name}"


@dataclass(frozen=True)
class TopicLayout:
    """The names the bindings speak of, for one environment (its topic prefix)."""

    prefix: str
    validated: str
    deadletter: str
    schemas: str
    feeds_state: str
    ingest_group: str
    catalog_group: str
    feeds_group: str
    feeds_transactional_id_prefix: str

    @classmethod
    def of(cls, settings: Settings) -> TopicLayout:
        return cls(
            prefix=settings.topic_prefix,
            validated=settings.validated_topic,
            deadletter=settings.deadletter_topic,
            schemas=settings.schemas_topic,
            feeds_state=settings.feeds_state_topic,
            ingest_group=settings.ingest_group,
            catalog_group=settings.catalog_group,
            feeds_group=settings.feeds_group,
            feeds_transactional_id_prefix=settings.topic_prefix + settings.feeds_transactional_id_name,
        )

    @property
    def department_topics(self) -> str:
        return f"{self.prefix}dept."

    @property
    def feed_topics(self) -> str:
        return f"{self.prefix}feed."

    def department_topic(self, department: str) -> str:
        return f"{self.prefix}dept.{department}.events"

    def department_feeds(self, department: str) -> str:
        return f"{self.prefix}feed.{department}."


def _user(name: str) -> str:
    return f"User:{name}"


def _topic(principal: str, name: str, *operations: str, prefixed: bool = False) -> list[AclSpec]:
    pattern = "PREFIXED" if prefixed else "LITERAL"
    return [AclSpec(principal, "TOPIC", name, pattern, operation) for operation in operations]


def _group(principal: str, name: str, operation: str = "READ", *, prefixed: bool = False) -> AclSpec:
    return AclSpec(principal, "GROUP", name, "PREFIXED" if prefixed else "LITERAL", operation)


def department_acls(layout: TopicLayout, department: str, principal: str | None = None) -> list[AclSpec]:
    who = principal or _user(department_principal(department))
    own_feeds = layout.department_feeds(department)
    return [
        *_topic(who, layout.department_topic(department), "WRITE", "DESCRIBE"),
        *_topic(who, own_feeds, "READ", "DESCRIBE", prefixed=True),
        _group(who, own_feeds, prefixed=True),
    ]


def reader_groups(principal: Principal) -> list[AclSpec]:
    """Groups of the principal's read-only clients (see ``KafkaAccess.reader_group``)."""
    return [_group(_user(principal), f"{READER_GROUP_PREFIX}{principal}.", prefixed=True)]


def service_acls(layout: TopicLayout) -> list[AclSpec]:
    ingest = _user(Principal.ingest)
    catalog = _user(Principal.catalog)
    registry = _user(Principal.registry)
    feeds = _user(Principal.feeds)
    cli = _user(Principal.cli)
    return [
        # ingest: every department topic in, validated and dead letters out, schemas followed.
        *_topic(ingest, layout.department_topics, "READ", "DESCRIBE", prefixed=True),
        *_topic(ingest, layout.validated, "WRITE", "DESCRIBE"),
        *_topic(ingest, layout.deadletter, "WRITE", "READ", "DESCRIBE"),
        *_topic(ingest, layout.schemas, "READ", "DESCRIBE"),
        _group(ingest, layout.ingest_group),
        # catalog: validated in, its own refusals out; repaired dead letters go back to their department.
        *_topic(catalog, layout.validated, "READ", "DESCRIBE"),
        *_topic(catalog, layout.deadletter, "WRITE", "READ", "DESCRIBE"),
        *_topic(catalog, layout.department_topics, "WRITE", "DESCRIBE", prefixed=True),
        _group(catalog, layout.catalog_group),
        # registry writer: the schemas topic, nothing else.
        *_topic(registry, layout.schemas, "WRITE", "DESCRIBE"),
        # feed republisher: validated in, feed topics out, in transactions with its own ids.
        *_topic(feeds, layout.validated, "READ", "DESCRIBE"),
        *_topic(feeds, layout.deadletter, "DESCRIBE"),
        *_topic(feeds, layout.feed_topics, "WRITE", "DESCRIBE", "CREATE", prefixed=True),
        *_topic(feeds, layout.feeds_state, "READ", "WRITE", "DESCRIBE"),
        _group(feeds, layout.feeds_group),
        AclSpec(feeds, "TRANSACTIONAL_ID", layout.feeds_transactional_id_prefix, "PREFIXED", "WRITE"),
        AclSpec(feeds, "TRANSACTIONAL_ID", layout.feeds_transactional_id_prefix, "PREFIXED", "DESCRIBE"),
        # operator CLI: imports and repairs into department topics, then watches ingest's outcome.
        *_topic(cli, layout.department_topics, "WRITE", "DESCRIBE", prefixed=True),
        *_topic(cli, layout.validated, "READ", "DESCRIBE"),
        *_topic(cli, layout.deadletter, "READ", "DESCRIBE"),
        _group(cli, layout.ingest_group, "DESCRIBE"),
        *(spec for principal in SERVICES for spec in reader_groups(principal)),
    ]


# Every platform principal but the administrator (a super user, who needs no binding).
SERVICES = tuple(principal for principal in Principal if principal is not Principal.admin)


def acl_specs(departments: Iterable[tuple[str, str | None]], layout: TopicLayout) -> list[AclSpec]:
    """Every binding: the services' and each department's ((id, principal) pairs; a department
    without a configured principal gets the default ``User:dept-<id>``)."""
    specs = service_acls(layout)
    for department, principal in departments:
        specs += department_acls(layout, department, principal)
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


def apply_acls(kafka: KafkaAccess, specs: list[AclSpec], *, timeout_s: float = 30.0) -> None:
    """Create the bindings (creating an existing one changes nothing); raises KafkaUnavailable
    naming the broker's refusal (a cluster without an authorizer answers SECURITY_DISABLED)."""
    if not specs:
        return
    admin = admin_client(kafka)  # held until every future resolves: a collected client aborts them
    futures = admin.create_acls([to_binding(spec) for spec in specs], request_timeout=timeout_s)
    for binding, future in futures.items():
        try:
            future.result()
        except Exception as exc:  # KafkaException, or KafkaError raised by the future
            raise KafkaUnavailable(f"cannot create ACL {binding}: {exc}") from exc

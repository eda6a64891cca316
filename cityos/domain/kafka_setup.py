"""The operator's one-time Kafka set-up, repeatable at every start: principals, topics, ACLs.

Run as the administrator (the only super user besides the broker itself). Idempotent: an existing
principal keeps its password, an existing topic is left alone, an existing binding is unchanged.
Passwords are generated into the secrets folder (0600) the first time a principal is needed; the
services read theirs from there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from cityos.domain.acls import SERVICES, AclSpec, TopicLayout, acl_specs, apply_acls, department_acls
from cityos.kernel.errors import KafkaUnavailable
from cityos.kernel.kafka import (
    DEADLETTER_PARTITIONS,
    DEPARTMENT_PARTITIONS,
    VALIDATED_PARTITIONS,
    admin_client,
    ensure_topics,
)
from cityos.kernel.kafka_access import (
    KafkaAccess,
    Principal,
    department_principal,
    kafka_access,
    password_secret_name,
)
from cityos.kernel.secret_store import read_or_create_secret, secret_path
from cityos.kernel.settings import Settings

# SCRAM's PBKDF2 rounds; Kafka's minimum is 4096 and every authentication pays them once.
SCRAM_ITERATIONS = 8192


def admin_access(settings: Settings) -> KafkaAccess:
    """The administrator's credential, written by the broker script at the broker's first start."""
    return kafka_access(settings, Principal.admin)


@dataclass
class SetupReport:
    created_principals: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    bindings: list[AclSpec] = field(default_factory=list)


def existing_principals(admin: AdminClient, *, timeout_s: float = 30.0) -> set[str]:
    # Without a user list the client answers one future for every credential.
    future = admin.describe_user_scram_credentials(None, request_timeout=timeout_s)  # type: ignore[arg-type]
    try:
        described = future.result()  # type: ignore[attr-defined]
    except Exception as exc:  # KafkaException, or KafkaError raised by the future
        raise KafkaUnavailable(f"cannot list SCRAM credentials: {exc}") from exc
    return set(described)


def set_password(admin: AdminClient, username: str, password: str, *, timeout_s: float = 30.0) -> None:
    upsert = UserScramCredentialUpsertion(
        username, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), password.encode()
    )
    for future in admin.alter_user_scram_credentials([upsert], request_timeout=timeout_s).values():
        try:
            future.result()
        except Exception as exc:
            raise KafkaUnavailable(f"cannot set the SCRAM credential of {username}: {exc}") from exc


def ensure_principal(
    admin: AdminClient, settings: Settings, username: str, *, known: set[str], rotate: bool = False
) -> bool:
    """``username`` exists on the broker with the password in the secrets folder; True when it was
    (re)written. ``rotate`` replaces the password with a fresh one first."""
    if rotate:
        secret_path(settings.secrets_dir, password_secret_name(username)).unlink(missing_ok=True)
    elif username in known:
        return False
    password = read_or_create_secret(settings.secrets_dir, password_secret_name(username))
    set_password(admin, username, password)
    known.add(username)
    return True


def platform_topics(layout: TopicLayout, departments: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(plain topics, compacted topics) -> partitions."""
    plain = {layout.validated: VALIDATED_PARTITIONS, layout.deadletter: DEADLETTER_PARTITIONS}
    plain.update({layout.department_topic(d): DEPARTMENT_PARTITIONS for d in departments})
    compacted = {layout.schemas: 1, layout.feeds_state: 1}
    return plain, compacted


def setup_kafka(
    settings: Settings,
    departments: Iterable[tuple[str, str | None]],
    *,
    admin: KafkaAccess | None = None,
    rotate: Iterable[str] = (),
) -> SetupReport:
    """Principals of the services, the platform's topics and every ACL binding, for ``settings``'
    topic prefix; ``rotate`` names principals that get a new password."""
    access = admin or admin_access(settings)
    client = admin_client(access)
    known = existing_principals(client)
    rotating = set(rotate)
    report = SetupReport()
    for principal in SERVICES:
        if ensure_principal(client, settings, principal, known=known, rotate=principal in rotating):
            report.created_principals.append(principal)
    for username in rotating - set(SERVICES):
        if ensure_principal(client, settings, username, known=known, rotate=True):
            report.created_principals.append(username)
    pairs = list(departments)
    layout = TopicLayout.of(settings)
    plain, compacted = platform_topics(layout, [department for department, _ in pairs])
    ensure_topics(access, plain)
    ensure_topics(access, compacted, compacted=True)
    report.topics = sorted({**plain, **compacted})
    report.bindings = acl_specs(pairs, layout)
    apply_acls(access, report.bindings)
    return report


@dataclass(frozen=True)
class DepartmentCredential:
    department: str
    username: str
    password: str = field(repr=False)
    bootstrap: str
    topic: str
    feeds_prefix: str


def issue_department_credential(
    settings: Settings, department: str, *, rotate: bool = False, admin: KafkaAccess | None = None
) -> DepartmentCredential:
    """The department's SCRAM principal (created, or given a new password with ``rotate``), its
    topic and its bindings; the password is kept in the secrets folder so the operator can hand it
    over again, and is returned for printing."""
    access = admin or admin_access(settings)
    client = admin_client(access)
    username = department_principal(department)
    ensure_principal(client, settings, username, known=existing_principals(client), rotate=rotate)
    layout = TopicLayout.of(settings)
    ensure_topics(access, {layout.department_topic(department): DEPARTMENT_PARTITIONS})
    apply_acls(access, department_acls(layout, department))
    password = read_or_create_secret(settings.secrets_dir, password_secret_name(username))
    return DepartmentCredential(
        department=department,
        username=username,
        password=password,
        bootstrap=settings.kafka_bootstrap,
        topic=layout.department_topic(department),
        feeds_prefix=layout.department_feeds(department),
    )


def librdkafka_properties(credential: DepartmentCredential) -> str:
    return "\n".join(
        [
            f"# {credential.department}: write {credential.topic}; read {credential.feeds_prefix}* "
            f"in consumer groups named {credential.feeds_prefix}*",
            f"bootstrap.servers={credential.bootstrap}",
            "security.protocol=SASL_PLAINTEXT",
            "sasl.mechanisms=SCRAM-SHA-512",
            f"sasl.username={credential.username}",
            f"sasl.password={credential.password}",
        ]
    )


def python_snippet(credential: DepartmentCredential) -> str:
    return f'''import os

from confluent_kafka import Producer

# Keep the password out of source control: read it from the environment or a 0600 file.
producer = Producer({{
    "bootstrap.servers": "{credential.bootstrap}",
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": "SCRAM-SHA-512",
    "sasl.username": "{credential.username}",
    "sasl.password": os.environ["CITYOS_KAFKA_PASSWORD"],
    "enable.idempotence": True,
    "acks": "all",
}})
producer.produce("{credential.topic}", key=b"<dataset>/<record id>", value=b"<CloudEvent JSON>")
producer.flush()'''

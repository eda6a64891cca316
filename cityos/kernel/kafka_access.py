"""Who a Kafka client is: the broker address and the SASL/SCRAM credential of one principal.

Every client the platform creates authenticates. Each process acts as its own principal (ingest as
``cityos-ingest``, the catalog's consumer as ``cityos-catalog``, its schema producer as
``cityos-registry`` …), so the broker's ACLs decide what each may touch. Passwords come from the
secrets folder, written there by ``cityos kafka setup`` (or by the broker script, for the
administrator), unless the environment names the credential (``CITYOS_KAFKA_USERNAME`` and
``CITYOS_KAFKA_PASSWORD``), as a department's own system does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cityos.kernel.errors import KafkaUnavailable
from cityos.kernel.secret_store import read_secret

if TYPE_CHECKING:
    from cityos.kernel.settings import Settings

SASL_MECHANISM = "SCRAM-SHA-512"
READER_GROUP_PREFIX = "cityos-reader."


class Principal(StrEnum):
    """SCRAM user names of the platform's own clients (departments are ``dept-<id>``)."""

    admin = "admin"  # super user: creates principals, topics and ACLs; nothing else runs as it
    ingest = "cityos-ingest"
    catalog = "cityos-catalog"
    feeds = "cityos-feeds"
    registry = "cityos-registry"
    cli = "cityos-cli"


def department_principal(department: str) -> str:
    return f"dept-{department}"


def password_secret_name(username: str) -> str:
    """The secrets-folder file holding ``username``'s password."""
    return f"kafka-{username}"


@dataclass(frozen=True, slots=True)
class KafkaAccess:
    """Broker address plus one principal's credential; ``client_config`` feeds any confluent-kafka client."""

    bootstrap: str
    username: str
    password: str = field(repr=False)

    def reader_group(self, purpose: str) -> str:
        """A consumer group for a client that only reads assigned partitions and never commits.

        The client still needs a group id, and the broker checks it: each principal has its own
        prefix (``cityos-reader.<user>.``) so no reader can touch another principal's or a
        service's real consumer group."""
        return f"{READER_GROUP_PREFIX}{self.username}.{purpose}"

    def client_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": SASL_MECHANISM,
            "sasl.username": self.username,
            "sasl.password": self.password,
        }


def kafka_access(settings: Settings, principal: str) -> KafkaAccess:
    """The credential this process uses for ``principal``'s work.

    ``CITYOS_KAFKA_USERNAME`` (with its password, from the environment or the secrets folder)
    replaces every role of the process: a department system or a one-off operator session.
    """
    username = settings.kafka_username or principal
    password = settings.kafka_password or read_secret(settings.secrets_dir, password_secret_name(username))
    if not password:
        raise KafkaUnavailable(
            f"no Kafka credential for {username!r} in {settings.secrets_dir}: run `cityos kafka setup` "
            "(the operator's one-time set-up; `make run` does it) or set CITYOS_KAFKA_PASSWORD"
        )
    return KafkaAccess(settings.kafka_bootstrap, username, password)

"""Real services as real processes for integration tests: start, kill -9, restart, read topics.

Every test stack gets its own topic prefix, consumer groups, ports and database, so tests share
one broker without seeing each other's events. The broker authenticates and authorizes as in
production: each stack is set up by `setup_kafka` for its prefix (the platform's ACL table), its
services run as their own principals, and the test itself acts as the Kafka administrator.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from cityos.domain.apikeys import OwnerKind
from cityos.domain.kafka_setup import setup_kafka
from cityos.kernel.events import header_text
from cityos.kernel.kafka import ensure_topics, headers_list, producer_config, reader_config
from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT, Settings
from tests.support.credentials import issue_credential

SERVICES = ("ingest", "catalog", "publish", "feeds")
INGEST_HTTP = "ingest-http"  # CloudEvents over HTTP: started only by the tests that send over HTTP
ADMIN_NAME = "tests-admin"  # the audit log's actor for what tests do as administrators: admin:tests-admin


def issue_admin_credential(database_url: str, name: str) -> str:
    """A personal administrator credential for ``name`` in the catalog at ``database_url``
    (migrated first, as the CLI does); the secret, shown this once."""
    return issue_credential(
        database_url,
        owner_kind=OwnerKind.admin,
        owner_id=name,
        purpose="integration tests",
        actor="admin:cli",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """The three services of one isolated environment."""

    kafka: KafkaAccess  # the administrator: tests read and write any topic
    database_url: str
    log_dir: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}.")
    ports: dict[str, int] = field(default_factory=lambda: {n: free_port() for n in (*SERVICES, INGEST_HTTP)})
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Any further settings a test needs.
    extra_env: dict[str, str] = field(default_factory=dict)
    _admin_credential: str | None = field(default=None, repr=False)

    @property
    def admin_token(self) -> str:
        """A named administrator's personal credential (``tests-admin``) for the catalog API, issued
        in this stack's database on first use as ``cityos admins issue`` does; the break-glass
        ``CITYOS_ADMIN_TOKEN`` stays unset, so tests act the way administrators do."""
        if self._admin_credential is None:
            self._admin_credential = issue_admin_credential(self.database_url, ADMIN_NAME)
        return self._admin_credential

    @property
    def admin_headers(self) -> dict[str, str]:
        """``Authorization`` with ``admin_token``: every catalog route but the probes needs it."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    secrets_dir: Path = field(default_factory=lambda: Settings().secrets_dir)
    # False: the test sets Kafka up itself (or means to show what happens when nobody did).
    provision: bool = True

    def __post_init__(self) -> None:
        if self.provision:
            departments = load_schema_dir(self.service_settings.schemas_dir).departments.values()
            setup_kafka(
                self.service_settings, [(d.id, d.kafka_principal) for d in departments], admin=self.kafka
            )

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "CITYOS_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
                "CITYOS_SECRETS_DIR": str(self.secrets_dir),
                "CITYOS_DATABASE_URL": self.database_url,
                "CITYOS_TOPIC_PREFIX": self.prefix,
                "CITYOS_INGEST_GROUP": f"{self.prefix}ingest",
                "CITYOS_CATALOG_GROUP": f"{self.prefix}catalog",
                "CITYOS_INGEST_METRICS_PORT": str(self.ports["ingest"]),
                "CITYOS_CATALOG_PORT": str(self.ports["catalog"]),
                "CITYOS_PUBLISH_PORT": str(self.ports["publish"]),
                "CITYOS_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.ports['publish']}",
                "CITYOS_FEEDS_METRICS_PORT": str(self.ports["feeds"]),
                "CITYOS_FEEDS_GROUP": f"{self.prefix}feeds",
                "CITYOS_INGEST_HTTP_PORT": str(self.ports["ingest-http"]),
            }
        )
        env.update(self.extra_env)
        return env

    @property
    def service_settings(self) -> Settings:
        """What the stack's services run with (each as its own Kafka principal)."""
        return Settings(
            kafka_bootstrap=self.kafka.bootstrap,
            database_url=self.database_url,
            topic_prefix=self.prefix,
            secrets_dir=self.secrets_dir,
            ingest_group=f"{self.prefix}ingest",
            catalog_group=f"{self.prefix}catalog",
            feeds_group=f"{self.prefix}feeds",
        )

    @property
    def settings(self) -> Settings:
        """The stack's settings for the test's own clients: every Kafka client acts as the administrator."""
        return self.service_settings.model_copy(
            update={"kafka_username": self.kafka.username, "kafka_password": self.kafka.password}
        )

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def cli(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[bytes]:
        """`cityos ARGS…` against this stack (its topics and database); the caller checks the outcome."""
        return subprocess.run(
            [sys.executable, "-m", "cityos", *args],
            env=self.env,
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )

    def start(self, *services: str, timeout_s: float = 60) -> None:
        for name in services:
            log = (self.log_dir / f"{self.prefix}{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "cityos", "serve", name],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for name in services:
            self._wait_ready(name, timeout_s)

    def _wait_ready(self, name: str, timeout_s: float) -> None:
        path = "/metrics" if name == "ingest" else "/readyz"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            try:
                if httpx.get(self.url(name, path), timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready within {timeout_s} s:\n{self.log_tail(name)}")

    def assert_running(self) -> None:
        """Fail at once, with its log, if a service the test started (and did not stop) has exited:
        a wait for work that no process is doing would otherwise run out its whole time."""
        for name, process in self.processes.items():
            code = process.poll()
            assert code is None, (
                f"{name} exited with {code} while the test relied on it:\n{self.log_tail(name)}"
            )

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{self.prefix}{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, name: str) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self, name: str, timeout_s: float = 30) -> int:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout_s)

    def stop_all(self) -> None:
        for name in list(self.processes):
            try:
                self.stop(name)
            except subprocess.TimeoutExpired:
                self.kill(name)

    # --- Kafka helpers -------------------------------------------------------------------
    def create_department_topics(self, *departments: str, partitions: int = 3) -> None:
        ensure_topics(self.kafka, {self.settings.department_topic(d): partitions for d in departments})

    def producer(self) -> Producer:
        return Producer(producer_config(self.kafka))

    def read(
        self,
        topic: str,
        *,
        until: Callable[[list[Message]], bool],
        timeout_s: float = 60,
    ) -> list[Message]:
        """Read a topic from the beginning until ``until(messages)`` holds or the time is up."""
        consumer = Consumer(reader_config(self.kafka, f"{self.prefix}reader-{uuid.uuid4().hex[:6]}"))
        messages: list[Message] = []
        try:
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            partitions = list(metadata.partitions) if metadata and not metadata.error else [0]
            consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not until(messages):
                for message in consumer.consume(num_messages=1000, timeout=0.5):
                    if message.error() is None:
                        messages.append(message)
        finally:
            consumer.close()
        return messages


def header(message: Message, name: str) -> str | None:
    return header_text(headers_list(message.headers()), name)


def with_header(messages: Iterable[Message], name: str, value: str) -> list[Message]:
    return [m for m in messages if header(m, name) == value]


@contextmanager
def ingest_only(kafka: KafkaAccess, logs: Path, *departments: str) -> Iterator[Stack]:
    """A stack running ingest alone on the departments' topics: what ingest produces is the whole answer."""
    stack = Stack(kafka=kafka, database_url=f"sqlite:///{logs / 'unused.db'}", log_dir=logs)
    stack.create_department_topics(*departments)
    stack.start("ingest")
    try:
        yield stack
    finally:
        stack.stop_all()

"""Integration fixtures: the real broker and databases that `make test` starts.

Outside CI a missing service skips the test with the reason; in CI (CI=true) it fails instead,
so a broken set-up can never pass as green.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cityos.kernel.kafka_access import KafkaAccess, Principal, password_secret_name
from cityos.kernel.secret_store import read_secret
from cityos.kernel.settings import Settings
from tests.support import needs
from tests.support.stack import Stack


def _service_env(name: str) -> str:
    return needs.env(name, "run the suite with `make test`, which starts Kafka and PostgreSQL")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _service_env("CITYOS_TEST_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def kafka(kafka_bootstrap: str) -> KafkaAccess:
    """The test broker's administrator, whose password the broker script generated at first start."""
    secrets_dir = Settings().secrets_dir
    password = read_secret(secrets_dir, password_secret_name(Principal.admin))
    if password is None:
        needs.unavailable(
            f"no Kafka administrator password in {secrets_dir}: start the broker with deploy/local/kafka.sh"
        )
    return KafkaAccess(kafka_bootstrap, Principal.admin, password)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of the test PostgreSQL server's admin database."""
    return _service_env("CITYOS_TEST_PG_URL")


def fresh_pg_database(pg_url: str) -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards."""
    name = f"cityos_t_{uuid.uuid4().hex[:12]}"
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = pg_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test runs once on the embedded default (SQLite) and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield from fresh_pg_database(request.getfixturevalue("pg_url"))


@pytest.fixture
def stack(kafka: KafkaAccess, database_url: str, tmp_path: Path) -> Iterator[Stack]:
    environment = Stack(kafka=kafka, database_url=database_url, log_dir=tmp_path)
    try:
        yield environment
    finally:
        environment.stop_all()

"""Security tests run against the real services, like the integration tests, and share their fixtures.

Most attacks do not depend on the catalog's database engine, so ``sqlite_stack`` runs them once on the
embedded default; a test that does depend on it uses ``stack`` (both engines).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cityos.kernel.kafka_access import KafkaAccess
from tests.integration.conftest import database_url, kafka, kafka_bootstrap, pg_url, stack
from tests.support.stack import Stack

__all__ = ["database_url", "kafka", "kafka_bootstrap", "pg_url", "sqlite_stack", "stack"]


@pytest.fixture
def sqlite_stack(kafka: KafkaAccess, tmp_path: Path) -> Iterator[Stack]:
    environment = Stack(kafka=kafka, database_url=f"sqlite:///{tmp_path / 'catalog.db'}", log_dir=tmp_path)
    try:
        yield environment
    finally:
        environment.stop_all()

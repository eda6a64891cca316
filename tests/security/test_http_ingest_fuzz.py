"""The HTTP ingestion service's OpenAPI description, fuzzed with schemathesis against the real
service (structured, batched and binary bodies, with a department's ingest credential and without
one): no answer is a server error, and every answer is one the description documents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cityos.domain.apikeys import SCOPE_INGEST
from cityos.kernel.kafka_access import KafkaAccess
from tests.integration.test_http_ingest import department_key
from tests.security.test_openapi_fuzz import fuzz
from tests.support.stack import INGEST_HTTP, Stack


@pytest.fixture(scope="module")
def ingest_http_stack(kafka: KafkaAccess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder: Path = tmp_path_factory.mktemp("fuzz-ingest-http")
    environment = Stack(
        kafka=kafka,
        database_url=f"sqlite:///{folder / 'catalog.db'}",
        log_dir=folder,
        # Rate limits are tested elsewhere; here they would turn most answers into 429.
        extra_env={"CITYOS_INGEST_HTTP_RATE_PER_MINUTE": "1000000"},
    )
    try:
        environment.start(INGEST_HTTP)
        yield environment
    finally:
        environment.stop_all()


def test_ingest_http_answers_as_documented_without_server_errors(ingest_http_stack: Stack) -> None:
    stack = ingest_http_stack
    auth = {"Authorization": f"Bearer {department_key(stack, 'fire', SCOPE_INGEST)}"}
    sender = fuzz(stack.url(INGEST_HTTP), auth)
    anonymous = fuzz(stack.url(INGEST_HTTP), {})
    print(f"\ningest-http: {sender.calls} calls with a credential, {anonymous.calls} without")
    found = {**sender.found, **{(op, f"anonymous: {t}"): v for (op, t), v in anonymous.found.items()}}
    assert not found, "\n".join(found.values())
    assert sender.calls >= 100

"""CloudEvents over HTTP on the real stack: the official CloudEvents SDK sends binary, structured and
batched events that reach the catalog and the open-data API; every bad-input class the Kafka path
dead-letters is answered at once with its 4xx, reason and pointer, and nothing refused is written."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from cityos.domain.apikeys import SCOPE_INGEST, SCOPE_READ, OwnerKind
from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.schemas import schema_uri
from tests.integration.conftest import fresh_pg_database
from tests.support.credentials import issue_credential
from tests.support.feeds import copier
from tests.support.stack import INGEST_HTTP, Stack

EVENTS = "/api/v1/events"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SOURCE = "/departments/fire/http-test"


def department_key(stack: Stack, department: str, *scopes: str) -> str:
    """A department's credential with ``scopes``, issued in the stack's catalog database."""
    return issue_credential(
        stack.database_url,
        owner_kind=OwnerKind.department,
        owner_id=department,
        purpose="http ingest tests",
        actor="admin:tests",
        scopes=scopes,
    )


def aed(number: str, name: str = "市役所") -> dict[str, Any]:
    return {
        "NO": number,
        "名称": name,
        "名称_カナ": "シヤクショ",
        "住所": "北九州市小倉北区城内1-1",
        "設置位置": "1階",
    }


def event(event_id: str, data: object = None, **overrides: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": "jp.cityos.record.upserted",
        "time": datetime.now(UTC).isoformat(),
        "dataschema": schema_uri("aed", 1),
        "data": aed(event_id) if data is None else data,
    }
    body.update(overrides)
    return body


def raw(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def sdk_event(number: str) -> CloudEvent:
    return CloudEvent(
        attributes={
            "id": f"sdk-{number}",
            "source": SOURCE,
            "type": "jp.cityos.record.upserted",
            "time": datetime.now(UTC),
            "dataschema": schema_uri("aed", 1),
            "datacontenttype": "application/json",
        },
        data=aed(number, f"SDK {number}"),
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The catalog (and its API keys) on the embedded default and on PostgreSQL, like every stack."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('http-ingest-db') / 'catalog.db'}"
    else:
        yield from fresh_pg_database(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="module")
def http_stack(
    kafka: KafkaAccess, catalog_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder: Path = tmp_path_factory.mktemp("http-ingest")
    stack = Stack(kafka=kafka, database_url=catalog_database, log_dir=folder)
    try:
        stack.start("catalog")
        stack.start(INGEST_HTTP, "publish")
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def fire(http_stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {department_key(http_stack, 'fire', SCOPE_INGEST)}"}


def post(
    stack: Stack, body: bytes, content_type: str, auth: dict[str, str], **headers: str
) -> httpx.Response:
    return httpx.post(
        stack.url(INGEST_HTTP, EVENTS),
        content=body,
        headers={**auth, "Content-Type": content_type, **headers},
        timeout=60,
    )


def served(stack: Stack, numbers: set[str], timeout_s: float = 60) -> dict[str, dict[str, Any]]:
    """The open-data API's AED records whose NO is in ``numbers``, once all are there."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(stack.url("publish", "/api/v1/datasets/aed/records"), params={"limit": 1000})
        if answer.status_code == 200:
            found = {r["NO"]: r for r in answer.json()["records"] if r["NO"] in numbers}
            if set(found) == numbers:
                return found
        time.sleep(0.3)
    return found


def test_the_sdk_sends_binary_structured_and_batched_events_to_the_open_data_api(
    http_stack: Stack, fire: dict[str, str]
) -> None:
    binary = to_binary_event(sdk_event("b1"))
    ce_headers = {name: value for name, value in binary.headers.items() if name.startswith("ce-")}
    answer = post(http_stack, binary.body, binary.headers["content-type"], fire, **ce_headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["results"] == [{"index": 0, "status": "accepted", "dataset": "aed", "key": "b1"}]

    structured = to_structured_event(sdk_event("s1"))
    answer = post(http_stack, structured.body, structured.headers["content-type"], fire)
    assert answer.status_code == 202, answer.text

    fmt = JSONFormat()
    batch = b"[" + b",".join(fmt.write(sdk_event(f"m{i}")) for i in range(5)) + b"]"
    answer = post(http_stack, batch, BATCH, fire)
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 5

    numbers = {"b1", "s1", *(f"m{i}" for i in range(5))}
    records = served(http_stack, numbers)
    assert set(records) == numbers
    for number, record in records.items():
        assert record["名称"] == f"SDK {number}", "the values sent are the values served"


def test_a_refused_event_is_answered_with_reason_pointer_and_both_languages(
    http_stack: Stack, fire: dict[str, str]
) -> None:
    bad = event("bad-lat", data=dict(aed("bad-lat"), 緯度="north"))
    answer = post(http_stack, raw(bad), STRUCTURED, fire)
    assert answer.status_code == 422, answer.text
    (result,) = answer.json()["results"]
    assert result["reason"] == "schema_violation"
    assert result["pointer"] == "/data/緯度"
    assert result["id"] == "bad-lat"
    assert result["message_ja"] and result["message_en"] and result["detail"]


def test_a_batch_answers_each_event_and_writes_only_the_accepted(
    http_stack: Stack, fire: dict[str, str]
) -> None:
    good, wrong = event("mix-good"), event("mix-bad", data=dict(aed("mix-bad"), 緯度="north"))
    answer = post(http_stack, b"[" + raw(good) + b",\n " + raw(wrong) + b"]", BATCH, fire)
    assert answer.status_code == 422, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "refused"]
    assert results[1]["pointer"] == "/data/緯度"
    assert set(served(http_stack, {"mix-good"})) == {"mix-good"}


_FUTURE = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
# The bad-input classes of the Kafka path, sent in structured mode: (body, status, reason).
BAD: dict[str, tuple[bytes, int, str]] = {
    "malformed-json": (b'{"specversion": "1.0", "id": "x",', 422, "malformed_json"),
    "invalid-utf8": (b'{"specversion": "1.0", "id": "\xff\xfe"}', 422, "invalid_utf8"),
    "too-large": (raw(event("big", data=dict(aed("big"), 備考="あ" * 400_000))), 413, "message_too_large"),
    "too-deep": (b'{"data":' + b"[" * 100 + b"]" * 100 + b"}", 422, "nesting_too_deep"),
    "duplicate-key": (b'{"specversion": "1.0", "id": "a", "id": "b"}', 422, "duplicate_key"),
    "non-finite": (raw(event("nan")).replace(b'"data": {', b'"data": {"x": NaN, '), 422, "non_finite_number"),
    "nul": (raw(event("nul", data=aed("nul", "a\u0000b"))), 422, "nul_character"),
    "unknown-dataset": (raw(event("u1", dataschema=schema_uri("no-such", 1))), 422, "unknown_dataset"),
    "unknown-version": (raw(event("u2", dataschema=schema_uri("aed", 42))), 422, "unknown_schema_version"),
    "future-time": (raw(event("f1", time=_FUTURE)), 422, "future_event_time"),
    "another-department": (
        raw(event("c1", dataschema=schema_uri("copier-usage", 1), data=copier(1, 1))),
        403,
        "wrong_department",
    ),
    "schema-violation": (raw(event("sv", data={"NO": "sv", "名称": 5})), 422, "schema_violation"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_input_class_gets_its_status_and_reason(
    case: str, http_stack: Stack, fire: dict[str, str]
) -> None:
    body, status, reason = BAD[case]
    answer = post(http_stack, body, STRUCTURED, fire)
    assert answer.status_code == status, answer.text
    assert answer.json()["results"][0]["reason"] == reason


def test_binary_mode_headers_are_judged_like_kafka_headers(http_stack: Stack, fire: dict[str, str]) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "bin-utf8", "ce-source": "%FF", "ce-type": "x"}
    answer = post(http_stack, raw(aed("bin-utf8")), "application/json", fire, **headers)
    assert (answer.status_code, answer.json()["results"][0]["reason"]) == (422, "invalid_utf8")
    answer = post(http_stack, raw(aed("bin-none")), "application/json", fire, **{"ce-id": "x"})
    assert answer.json()["results"][0]["reason"] == "invalid_envelope"


def test_requests_the_service_does_not_take(http_stack: Stack, fire: dict[str, str]) -> None:
    good = raw(event("never-written"))
    assert post(http_stack, good, STRUCTURED, {}).status_code == 401
    assert post(http_stack, good, STRUCTURED, {"Authorization": "Bearer cos_00000000_x"}).status_code == 401
    reader = {"Authorization": f"Bearer {department_key(http_stack, 'fire', SCOPE_READ)}"}
    assert post(http_stack, good, STRUCTURED, reader).status_code == 403
    assert post(http_stack, good, "text/plain", fire).status_code == 415
    too_many = b"[" + b",".join([raw(event("never-written"))] * 1001) + b"]"
    assert post(http_stack, too_many, BATCH, fire).json()["error"] == "too_many_events"
    assert post(http_stack, b'{"not": "an array"}', BATCH, fire).status_code == 400
    huge = b"[" + b" " * (9 * 1024 * 1024) + b"]"
    assert post(http_stack, huge, BATCH, fire).status_code == 413


def test_nothing_refused_reaches_the_validated_topic(http_stack: Stack, fire: dict[str, str]) -> None:
    marker = f"marker-{uuid.uuid4().hex[:6]}"
    assert post(http_stack, raw(event(marker)), STRUCTURED, fire).status_code == 202
    messages = http_stack.read(
        http_stack.settings.validated_topic,
        until=lambda found: any(orjson.loads(m.value() or b"{}").get("id") == marker for m in found),
    )
    ids = {orjson.loads(m.value() or b"{}").get("id") for m in messages}
    assert marker in ids
    refused = {"bad-lat", "mix-bad", "never-written", "big", "nan", "nul", "u1", "u2", "f1", "c1", "sv"}
    assert not ids & refused, ids & refused


def test_probes_metrics_and_openapi(http_stack: Stack) -> None:
    assert httpx.get(http_stack.url(INGEST_HTTP, "/healthz")).status_code == 200
    assert httpx.get(http_stack.url(INGEST_HTTP, "/readyz")).status_code == 200
    spec = httpx.get(http_stack.url(INGEST_HTTP, "/openapi.json")).json()
    assert EVENTS in spec["paths"]
    metrics = httpx.get(http_stack.url(INGEST_HTTP, "/metrics")).text
    assert 'cityos_ingest_http_events_total{dataset="aed",department="fire",outcome="accepted"}' in metrics


def test_api_docs_load_only_from_the_service_itself(http_stack: Stack) -> None:
    page = httpx.get(http_stack.url(INGEST_HTTP, "/docs"))
    assert page.status_code == 200 and '<html lang="ja">' in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/") and not source.startswith("//") for source in sources)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in sources
    for source in sources:
        if source.startswith("/static/"):
            assert httpx.get(http_stack.url(INGEST_HTTP, source)).status_code == 200, source
    assert httpx.get(http_stack.url(INGEST_HTTP, "/redoc")).status_code == 404


def test_a_department_over_its_rate_gets_429_with_retry_after(kafka: KafkaAccess, tmp_path: Path) -> None:
    stack = Stack(
        kafka=kafka,
        database_url=f"sqlite:///{tmp_path / 'catalog.db'}",
        log_dir=tmp_path,
        extra_env={"CITYOS_INGEST_HTTP_RATE_PER_MINUTE": "3"},
    )
    try:
        auth = {"Authorization": f"Bearer {department_key(stack, 'fire', SCOPE_INGEST)}"}
        stack.start(INGEST_HTTP)
        answers = [post(stack, raw(event(f"rate-{i}")), STRUCTURED, auth) for i in range(4)]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
    finally:
        stack.stop_all()

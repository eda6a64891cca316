"""Every reason ingest dead-letters for, through the real ingest process on the cluster: each bad
event is dead-lettered once with its own reason, its original bytes and its exact origin, and the
good event sent right behind it on the same partition arrives."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, Message

from cityos.kernel.deadletter import Reason
from cityos.kernel.schemas import schema_uri
from cityos.kernel.strictjson import MAX_MESSAGE_BYTES
from tests.chaos.conftest import start
from tests.support.feeds import read_settled
from tests.support.moves import VALID_MOVE
from tests.support.stack import Stack, header

AED = {
    "NO": "1",
    "名称": "障害試験",
    "名称_カナ": "ショウガイシケン",
    "住所": "福岡県北九州市",
    "設置位置": "1階",
}
# Reasons only the catalog gives (a validated message it cannot store): not ingest's to test here.
CATALOG_REASONS = {Reason.UNDECODABLE_VALIDATED_EVENT, Reason.CATALOG_REJECTED, Reason.RELEASE_DATASET}


def aed_event(event_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/departments/fire/chaos",
        "type": "jp.cityos.record.upserted",
        "time": datetime.now(UTC).isoformat(),
        "dataschema": schema_uri("aed", 1),
        "data": AED,
    }
    body.update(overrides)
    return body


def move_event(event_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/departments/citizens/register",
        "type": "jp.cityos.record.upserted",
        "time": datetime.now(UTC).isoformat(),
        "dataschema": schema_uri("resident-moves", 2),
        "data": data,
    }


def raw(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


Headers = list[tuple[str, str | bytes]]


def cases() -> dict[str, tuple[str, bytes, Headers, Reason]]:
    """name -> (department, value, headers, reason); one case at least for every ingest reason."""
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    no_key = {k: v for k, v in AED.items() if k != "NO"}
    binary: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"\xff\xfe"),
        ("ce_source", b"/departments/fire/x"),
    ]
    return {
        "over-1-MiB": ("fire", raw(aed_event("big", data=dict(AED, 備考="あ" * (MAX_MESSAGE_BYTES // 3)))), [], Reason.MESSAGE_TOO_LARGE),
        "non-utf8-body": ("fire", b'{"specversion": "1.0", "id": "\xff\xfe"}', [], Reason.INVALID_UTF8),
        "non-utf8-binary-header": ("fire", raw(AED), binary, Reason.INVALID_UTF8),
        "malformed-json": ("fire", b'{"specversion": "1.0", "id": "x",', [], Reason.MALFORMED_JSON),
        "nesting-10000": ("fire", b'{"data":' + b"[" * 10_000 + b"]" * 10_000 + b"}", [], Reason.NESTING_TOO_DEEP),
        "duplicate-keys": ("fire", b'{"specversion": "1.0", "id": "a", "id": "b"}', [], Reason.DUPLICATE_KEY),
        "nan": ("fire", raw(aed_event("nan")).replace(b'"data": {', b'"data": {"x": NaN, '), [], Reason.NON_FINITE_NUMBER),
        "nul": ("fire", raw(aed_event("nul", data=dict(AED, 名称="a\u0000b"))), [], Reason.NUL_CHARACTER),
        "lone-surrogate": ("fire", raw(aed_event("sur")).replace("障害試験".encode(), b"\\ud800"), [], Reason.INVALID_UNICODE),
        "envelope-not-an-object": ("fire", b"[1, 2]", [], Reason.INVALID_ENVELOPE),
        "envelope-old-specversion": ("fire", raw(aed_event("old", specversion="0.3")), [], Reason.INVALID_ENVELOPE),
        "unknown-event-type": ("fire", raw(aed_event("typ", type="com.example.other")), [], Reason.UNKNOWN_EVENT_TYPE),
        "invalid-event-time": ("fire", raw(aed_event("tim", time="yesterday")), [], Reason.INVALID_EVENT_TIME),
        "future-event-time": ("fire", raw(aed_event("fut", time=future)), [], Reason.FUTURE_EVENT_TIME),
        "unknown-dataset": ("fire", raw(aed_event("uds", dataschema=schema_uri("no-such-dataset", 1))), [], Reason.UNKNOWN_DATASET),
        "unknown-schema-version": ("fire", raw(aed_event("usv", dataschema=schema_uri("aed", 42))), [], Reason.UNKNOWN_SCHEMA_VERSION),
        "schema-violation": ("fire", raw(aed_event("sch", data=dict(AED, 緯度="north"))), [], Reason.SCHEMA_VIOLATION),
        "missing-record-key": ("fire", raw(aed_event("key", data=no_key)), [], Reason.MISSING_RECORD_KEY),
        "record-rule-violated": ("citizens", raw(move_event("rul", dict(VALID_MOVE, 異動日="1971-07-07"))), [], Reason.RECORD_RULE_VIOLATED),
        "wrong-department": ("citizens", raw(aed_event("dep")), [], Reason.WRONG_DEPARTMENT),
    }  # fmt: skip


def good(department: str, name: str) -> tuple[str, bytes]:
    event_id = f"after-{name}-{uuid.uuid4().hex[:6]}"
    if department == "citizens":
        return event_id, raw(move_event(event_id, dict(VALID_MOVE, 異動ID=f"M-{name}")))
    return event_id, raw(aed_event(event_id, data=dict(AED, NO=f"after-{name}")))


def test_every_ingest_reason_cases_exist() -> None:
    """The table below covers every reason ingest can give, so a new reason needs a case here."""
    assert {reason for *_rest, reason in cases().values()} == set(Reason) - CATALOG_REASONS


@pytest.mark.timeout(300)
def test_every_dead_letter_reason_through_the_real_ingest_process(stack: Stack) -> None:
    stack.create_department_topics("fire", "citizens")
    start(stack, "ingest")
    producer = stack.producer()
    delivered: dict[bytes, list[tuple[int, int]]] = {}

    def report(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        delivered.setdefault(message.key() or b"", []).append(
            (message.partition() or 0, message.offset() or 0)
        )

    table = cases()
    followers: dict[str, str] = {}
    for name, (department, value, headers, _reason) in table.items():
        topic = stack.settings.department_topic(department)
        key = f"case-{name}".encode()
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
        followers[name], follow = good(department, name)
        producer.produce(topic, value=follow, key=key, on_delivery=report)
    assert producer.flush(60) == 0

    letters = read_settled(stack, stack.settings.deadletter_topic, len(table), timeout_s=120)
    valid = read_settled(stack, stack.settings.validated_topic, len(table), timeout_s=120)
    valid_ids = [orjson.loads(m.value() or b"")["id"] for m in valid]
    assert len(letters) == len(table), f"{len(letters)} dead letters for {len(table)} bad events"
    for name, (department, value, _headers, reason) in table.items():
        key = f"case-{name}".encode()
        (bad_at, follow_at) = delivered[key]
        assert bad_at[0] == follow_at[0], "the good event follows on the same partition"
        mine = [m for m in letters if m.key() == key]
        assert len(mine) == 1, f"{name}: {len(mine)} dead letters"
        letter = mine[0]
        assert header(letter, "cityos_reason") == reason, name
        assert letter.value() == value, f"{name}: the original bytes are kept"
        assert header(letter, "cityos_source_topic") == stack.settings.department_topic(department)
        assert header(letter, "cityos_source_partition") == str(bad_at[0]), name
        assert header(letter, "cityos_source_offset") == str(bad_at[1]), name
        assert valid_ids.count(followers[name]) == 1, f"{name}: the good event behind it must flow, once"
    print(f"{len(table)} bad events: each dead-lettered once with its reason; each good follower arrived")

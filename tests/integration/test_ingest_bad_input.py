"""Bad input on the real broker: each kind is dead-lettered with its own reason, and the good
event queued right behind it on the same partition still flows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Message

from cityos.kernel.kafka import MAX_PRODUCE_BYTES
from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.schemas import schema_uri
from tests.support.stack import Stack, header, ingest_only

AED = {
    "NO": "1",
    "名称": "焼津市役所",
    "名称_カナ": "ヤイヅシヤクショ",
    "住所": "静岡県焼津市本町2-16-32",
    "設置位置": "1階",
}


def event(event_id: str, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/departments/fire/test",
        "type": "jp.cityos.record.upserted",
        "time": datetime.now(UTC).isoformat(),
        "dataschema": schema_uri("aed", 1),
        "data": AED,
    }
    body.update(overrides)
    return body


def raw(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


CASES: dict[str, tuple[bytes, str]] = {
    "malformed-json": (b'{"specversion": "1.0", "id": "x",', "malformed_json"),
    "non-utf8": (b'{"specversion": "1.0", "id": "\xff\xfe"}', "invalid_utf8"),
    "over-1-MiB": (raw(event("big", data=dict(AED, 備考="あ" * 400_000))), "message_too_large"),
    "nesting-10000": (b'{"data":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nesting_too_deep"),
    "duplicate-keys": (b'{"specversion": "1.0", "id": "a", "id": "b"}', "duplicate_key"),
    "nan": (raw(event("nan")).replace(b'"data": {', b'"data": {"x": NaN, '), "non_finite_number"),
    "nul": (raw(event("nul", data=dict(AED, 名称="a\u0000b"))), "nul_character"),
    "unknown-dataset": (raw(event("u1", dataschema=schema_uri("no-such-dataset", 1))), "unknown_dataset"),
    "unknown-schema-version": (raw(event("u2", dataschema=schema_uri("aed", 42))), "unknown_schema_version"),
    "future-timestamp": (
        raw(event("f1", time=(datetime.now(UTC) + timedelta(hours=1)).isoformat())),
        "future_event_time",
    ),
}


@pytest.fixture(scope="module")
def ingest_stack(kafka: KafkaAccess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ingest_only(kafka, tmp_path_factory.mktemp("logs"), "fire") as stack:
        yield stack


@pytest.fixture(scope="module")
def outputs(ingest_stack: Stack) -> tuple[list[Message], list[Message], dict[str, str]]:
    """Send every bad case followed by a good event with the same key, once for the module."""
    stack = ingest_stack
    producer = stack.producer()
    topic = stack.settings.department_topic("fire")
    follow_ids: dict[str, str] = {}
    for name, (value, _reason) in CASES.items():
        key = f"case-{name}".encode()
        assert len(value) < MAX_PRODUCE_BYTES
        producer.produce(topic, value=value, key=key)
        follow_ids[name] = f"after-{name}-{uuid.uuid4().hex[:6]}"
        producer.produce(topic, value=raw(event(follow_ids[name])), key=key)
    assert producer.flush(30) == 0
    dead = stack.read(stack.settings.deadletter_topic, until=lambda m: len(m) >= len(CASES))
    valid = stack.read(stack.settings.validated_topic, until=lambda m: len(m) >= len(CASES))
    return dead, valid, follow_ids


@pytest.mark.parametrize("case", list(CASES))
def test_bad_event_is_dead_lettered_and_the_next_one_flows(
    case: str, outputs: tuple[list[Message], list[Message], dict[str, str]]
) -> None:
    dead, valid, follow_ids = outputs
    value, reason = CASES[case]
    mine = [m for m in dead if m.key() == f"case-{case}".encode()]
    assert len(mine) == 1, f"expected exactly one dead-letter for {case}, got {len(mine)}"
    letter = mine[0]
    assert header(letter, "cityos_reason") == reason
    assert letter.value() == value, "the original bytes are kept"
    assert header(
        letter,
        "cityos_source_topic",
    ).endswith("dept.fire.events")  # type: ignore[union-attr]
    assert header(letter, "cityos_source_offset") is not None
    assert header(letter, "cityos_detail")
    follower = [m for m in valid if orjson.loads(m.value() or b"")["id"] == follow_ids[case]]
    assert len(follower) == 1, "the good event behind the bad one on the same partition must flow"
    assert follower[0].partition() is not None


def test_dead_letter_counts_show_in_ingest_metrics(ingest_stack: Stack, outputs: object) -> None:
    import httpx

    text = httpx.get(ingest_stack.url("ingest", "/metrics")).text
    for reason in {reason for _value, reason in CASES.values()}:
        assert f'reason="{reason}"' in text, reason
    assert 'cityos_ingest_events_valid_total{dataset="aed",department="fire"}' in text


def test_ingest_metrics_pass_promtool(ingest_stack: Stack, outputs: object, tmp_path: Path) -> None:
    from tests.support.promtool import assert_promtool_clean

    assert_promtool_clean(ingest_stack.url("ingest", "/metrics"))

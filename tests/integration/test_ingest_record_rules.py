"""Record rules through the real ingest process on the real broker: a resident move that passes its
schema but is impossible as a whole (born after the move, a birth with a previous address) is
dead-lettered with ``record_rule_violated``, its field's pointer and a ja/en detail, and counted;
the good move behind it on the same partition flows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Message

from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.schemas import schema_uri
from tests.support.moves import VALID_MOVE
from tests.support.stack import Stack, header, ingest_only

MOVE = VALID_MOVE
BIRTH = {**MOVE, "異動ID": "M0002", "異動事由": "出生", "生年月日": "2025-04-07", "前住所地_都道府県": None}
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (data, pointer, start of the detail)
    "born-after-move": (
        {**MOVE, "異動ID": "M0003", "異動日": "1971-07-07"},
        "/data/生年月日",
        "生年月日（1991-05-20）が異動日（1971-07-07）より後です / 生年月日 (1991-05-20) is after 異動日",
    ),
    "birth-with-previous-address": (
        {k: v for k, v in BIRTH.items() if v is not None},
        "/data/前住所地",
        "異動事由が出生の場合、前住所地は記載できません / 前住所地 must be absent when 異動事由 is 出生",
    ),
}


SENT_AT = datetime.now(UTC).isoformat()  # one time for the module, so sent bytes can be compared


def event(data: dict[str, Any], event_id: str) -> bytes:
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/departments/citizens/register",
        "type": "jp.cityos.record.upserted",
        "time": SENT_AT,
        "dataschema": schema_uri("resident-moves", 2),
        "data": data,
    }
    return json.dumps(body, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def ingest_stack(kafka: KafkaAccess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with ingest_only(kafka, tmp_path_factory.mktemp("logs"), "citizens") as stack:
        yield stack


@pytest.fixture(scope="module")
def outputs(ingest_stack: Stack) -> tuple[list[Message], list[Message], dict[str, str]]:
    """Each impossible move, then a good one with the same key (so on the same partition)."""
    stack = ingest_stack
    producer = stack.producer()
    topic = stack.settings.department_topic("citizens")
    follow_ids: dict[str, str] = {}
    for name, (data, _pointer, _detail) in CASES.items():
        key = f"case-{name}".encode()
        producer.produce(topic, value=event(data, f"bad-{name}"), key=key)
        follow_ids[name] = f"after-{name}-{uuid.uuid4().hex[:6]}"
        producer.produce(topic, value=event(MOVE, follow_ids[name]), key=key)
    assert producer.flush(30) == 0
    dead = stack.read(stack.settings.deadletter_topic, until=lambda m: len(m) >= len(CASES))
    valid = stack.read(stack.settings.validated_topic, until=lambda m: len(m) >= len(CASES))
    return dead, valid, follow_ids


@pytest.mark.parametrize("case", list(CASES))
def test_impossible_move_is_dead_lettered_with_its_rule(
    case: str, outputs: tuple[list[Message], list[Message], dict[str, str]]
) -> None:
    dead, valid, follow_ids = outputs
    data, pointer, detail = CASES[case]
    [letter] = [m for m in dead if m.key() == f"case-{case}".encode()]
    assert header(letter, "cityos_reason") == "record_rule_violated"
    assert header(letter, "cityos_pointer") == pointer
    assert header(letter, "cityos_dataset") == "resident-moves"
    assert header(letter, "cityos_department") == "citizens"
    assert (header(letter, "cityos_detail") or "").startswith(detail)
    assert letter.value() == event(data, f"bad-{case}"), "the original bytes are kept"
    follower = [m for m in valid if orjson.loads(m.value() or b"")["id"] == follow_ids[case]]
    assert len(follower) == 1, "the good move behind the impossible one must flow"


def test_rule_violations_are_counted_by_reason(ingest_stack: Stack, outputs: object) -> None:
    text = httpx.get(ingest_stack.url("ingest", "/metrics")).text
    assert 'reason="record_rule_violated"' in text
    # resident-moves is personal: /metrics (unauthenticated) counts it without naming it.
    assert 'dataset="non-public"' in text and "resident-moves" not in text

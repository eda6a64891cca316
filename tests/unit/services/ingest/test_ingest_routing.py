"""The pure ingest decision: validated output, dead-letter headers, labels, ownership."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from cityos.kernel.deadletter import Reason
from cityos.kernel.events import TYPE_DELETED
from cityos.kernel.schemas import schema_uri
from cityos.kernel.validation import ValidatorRegistry, parse_schema_uri
from services.ingest.routing import InboundMessage, Routed, Topics, department_of, route

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOPICS = Topics(validated="cityos.validated", deadletter="cityos.deadletter")
AED = {
    "NO": "1",
    "名称": "焼津市役所",
    "名称_カナ": "ヤイヅシヤクショ",
    "住所": "静岡県焼津市本町2-16-32",
    "設置位置": "1階ロビー",
    "緯度": 34.8669,
    "経度": 138.3237,
}


def message(
    event: dict[str, object] | bytes, topic: str = "dept.fire.events", offset: int = 41
) -> InboundMessage:
    value = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
    return InboundMessage(topic, 2, offset, b"k", value, [("traceparent", b"00-abc")], 1_764_244_800_000)


def aed_event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/departments/fire/aed",
        "type": "jp.cityos.record.upserted",
        "time": "2026-11-27T11:00:00Z",
        "dataschema": schema_uri("aed", 1),
        "data": dict(AED),
    }
    event.update(overrides)
    return event


def go(registry: ValidatorRegistry, msg: InboundMessage) -> Routed:
    return route(msg, registry=registry, topics=TOPICS, now=NOW, max_future=timedelta(minutes=5))


def headers(routed: Routed) -> dict[str, str]:
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in routed.outbound.headers}


def test_valid_event_goes_to_validated_topic_keyed_by_dataset_and_record(registry: ValidatorRegistry) -> None:
    routed = go(registry, message(aed_event()))
    assert routed.reason is None
    assert routed.outbound.topic == "cityos.validated"
    assert routed.outbound.key == b"aed/1"
    assert routed.outbound.value == message(aed_event()).value, "structured events pass through unchanged"
    assert routed.outbound.timestamp_ms == 1_764_244_800_000
    # Only the department it was read from travels along: the catalog checks the owner again.
    assert headers(routed) == {"cityos_department": "fire"}
    assert (routed.department, routed.dataset) == ("fire", "aed")


def test_binary_mode_event_is_normalised_to_structured_json(registry: ValidatorRegistry) -> None:
    headers: list[tuple[str, bytes | None]] = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"bin-1"),
        ("ce_source", b"/departments/fire/aed"),
        ("ce_type", b"jp.cityos.record.upserted"),
        ("ce_time", b"2026-11-27T11:00:00Z"),
        ("ce_dataschema", schema_uri("aed", 1).encode()),
    ]
    inbound = InboundMessage("dept.fire.events", 0, 5, b"k", json.dumps(AED).encode(), headers, None)
    routed = go(registry, inbound)
    assert routed.reason is None
    body = orjson.loads(routed.outbound.value)
    assert (body["id"], body["specversion"], body["data"]) == ("bin-1", "1.0", AED)
    assert body["time"] == "2026-11-27T11:00:00+00:00"


def test_schema_violation_is_dead_lettered_with_pointer_and_provenance(registry: ValidatorRegistry) -> None:
    data = dict(AED, 緯度="north")
    raw = json.dumps(aed_event(data=data), ensure_ascii=False).encode()
    routed = go(registry, message(raw))
    assert routed.reason is Reason.SCHEMA_VIOLATION
    assert routed.outbound.topic == "cityos.deadletter"
    assert routed.outbound.value == raw, "the original bytes are kept untouched"
    h = headers(routed)
    assert h["cityos_pointer"] == "/data/緯度"
    assert h["cityos_reason"] == "schema_violation"
    assert h["cityos_schema"] == schema_uri("aed", 1)
    assert (h["cityos_source_topic"], h["cityos_source_partition"], h["cityos_source_offset"]) == (
        "dept.fire.events",
        "2",
        "41",
    )
    assert h["cityos_event_id"] == "evt-1"
    assert h["traceparent"] == "00-abc", "original headers are kept"


def test_missing_required_field_names_it(registry: ValidatorRegistry) -> None:
    data = {k: v for k, v in AED.items() if k != "名称"}
    routed = go(registry, message(aed_event(data=data)))
    assert routed.reason is Reason.SCHEMA_VIOLATION
    assert "名称" in headers(routed)["cityos_detail"]


@pytest.mark.parametrize(
    ("dataschema", "reason", "dataset"),
    [
        (schema_uri("no-such-dataset", 1), Reason.UNKNOWN_DATASET, "unknown"),
        ("https://elsewhere.example/schema.json", Reason.UNKNOWN_DATASET, "unknown"),
        (schema_uri("aed", 99), Reason.UNKNOWN_SCHEMA_VERSION, "aed"),
    ],
)
def test_unknown_schema_references(
    registry: ValidatorRegistry, dataschema: str, reason: Reason, dataset: str
) -> None:
    routed = go(registry, message(aed_event(dataschema=dataschema)))
    assert routed.reason is reason
    assert routed.dataset == dataset


def test_unknown_event_type(registry: ValidatorRegistry) -> None:
    assert go(registry, message(aed_event(type="com.example.other"))).reason is Reason.UNKNOWN_EVENT_TYPE


def test_missing_record_key(registry: ValidatorRegistry) -> None:
    data = {k: v for k, v in AED.items() if k != "NO"}
    assert go(registry, message(aed_event(data=data))).reason is Reason.MISSING_RECORD_KEY


def test_a_department_cannot_write_another_departments_dataset(registry: ValidatorRegistry) -> None:
    routed = go(registry, message(aed_event(), topic="dept.citizens.events"))
    assert routed.reason is Reason.WRONG_DEPARTMENT


def test_deletion_needs_only_the_record_key(registry: ValidatorRegistry) -> None:
    routed = go(registry, message(aed_event(type=TYPE_DELETED, data={"NO": "1"})))
    assert routed.reason is None
    assert orjson.loads(routed.outbound.value)["type"] == TYPE_DELETED


def test_decode_failure_is_dead_lettered_with_unknown_labels(registry: ValidatorRegistry) -> None:
    routed = go(registry, message(b'{"a":1,"a":2}', topic="dept.nobody.events"))
    assert routed.reason is Reason.DUPLICATE_KEY
    assert routed.dataset == "unknown"
    assert routed.department == "nobody"  # the service maps unknown departments to a bounded label


def test_department_topic_names() -> None:
    assert department_of("dept.fire.events") == "fire"
    assert department_of("t123.dept.fire.events") == "fire"
    assert department_of("fire.events") is None
    assert department_of("xdept.fire.events") is None


def test_schema_uri_round_trip() -> None:
    assert parse_schema_uri(schema_uri("public-toilet", 12)) == ("public-toilet", 12)
    assert parse_schema_uri("https://cityos.example/schemas/aed/0") is None

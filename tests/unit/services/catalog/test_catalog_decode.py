"""Decoding of validated-topic messages by the catalog consumer."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from cityos.kernel.events import TYPE_DELETED
from cityos.kernel.schemas import schema_uri
from services.catalog.consumer import UndecodableEvent, decode_validated


def body(**overrides: object) -> bytes:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/departments/fire/x",
        "type": "jp.cityos.record.upserted",
        "time": "2026-11-27T12:00:00+09:00",
        "dataschema": schema_uri("aed", 2),
        "data": {"NO": "a/b", "名称": "市役所"},
    }
    event.update(overrides)
    return orjson.dumps({k: v for k, v in event.items() if v is not None})


def test_decodes_key_schema_version_and_time() -> None:
    event = decode_validated(body(), b"aed/a/b", 1_700_000_000_000, 3, 42)
    assert (event.dataset_id, event.record_key, event.schema_version) == ("aed", "a/b", 2)
    assert event.time == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert (event.partition, event.offset, event.data) == (3, 42, {"NO": "a/b", "名称": "市役所"})


def test_missing_time_falls_back_to_the_kafka_timestamp() -> None:
    event = decode_validated(body(time=None), b"aed/1", 1_700_000_000_000, 0, 0)
    assert event.time == datetime.fromtimestamp(1_700_000_000, UTC)


def test_deletion_without_data() -> None:
    event = decode_validated(body(type=TYPE_DELETED, data=None), b"aed/1", None, 0, 0)
    assert event.is_deletion and event.data is None


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b"not json", b"aed/1"),
        (body(), b"public-toilet/1"),  # key names another dataset than dataschema
        (body(), b"aed"),  # no record key
        (body(dataschema="https://elsewhere.example/x"), b"aed/1"),
        (body(time=None), b"aed/1"),  # and no Kafka timestamp either
        (body(id=None), b"aed/1"),
    ],
)
def test_inconsistent_messages_are_refused(value: bytes, key: bytes) -> None:
    with pytest.raises(UndecodableEvent):
        decode_validated(value, key, None, 0, 0)

"""Arrow columns from the datasets' JSON Schemas, and record documents as Arrow batches."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cityos.domain.analysis.columns import (
    BatchBuilder,
    arrow_schema,
    is_json_text,
    record_batch,
    record_batches,
)
from cityos.kernel.settings import REPO_ROOT

SCHEMA_FILES = sorted((REPO_ROOT / "schemas").glob("*/v*.schema.json"))


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_property_is_a_column_in_schema_order_with_its_names(path: Path) -> None:
    document = _load(path)
    schema = arrow_schema(document)
    properties = document["properties"]
    assert schema.names == list(properties)
    for field in schema:
        node = properties[field.name]
        assert field.nullable
        assert field.metadata[b"title"].decode() == node.get("title", field.name)
        if "x-en" in node:
            assert field.metadata[b"x-en"].decode() == node["x-en"]
        if "description" in node:
            assert field.metadata[b"description"].decode() == node["description"]
    assert schema.metadata[b"schema_id"].decode() == document["$id"]


def _expected_type(node: dict[str, Any]) -> pa.DataType:
    kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
    kinds = [kind for kind in kinds if kind != "null"]
    assert len(kinds) == 1
    by_format = {"date": pa.date32(), "date-time": pa.timestamp("us", tz="UTC")}
    if kinds[0] == "string" and node.get("format") in by_format:
        return by_format[node["format"]]
    return {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}[
        kinds[0]
    ]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_types_follow_the_json_types(path: Path) -> None:
    document = _load(path)
    for field in arrow_schema(document):
        assert field.type == _expected_type(document["properties"][field.name]), field.name


def test_fields_narrow_but_keep_the_schema_order() -> None:
    document = _load(REPO_ROOT / "schemas" / "aed" / "v1.schema.json")
    order = list(document["properties"])
    chosen = {order[5], order[0], order[9], "not-a-property"}
    schema = arrow_schema(document, fields=chosen)
    assert schema.names == [name for name in order if name in chosen]
    assert arrow_schema(document, fields=()).names == []


SYNTHETIC = {
    "$id": "https://example.test/s/1",
    "properties": {
        "文字": {"type": "string", "title": "文字", "x-en": "text"},
        "整数": {"type": ["integer", "null"]},
        "数": {"type": "number"},
        "真偽": {"type": "boolean"},
        "日付": {"type": "string", "format": "date"},
        "日時": {"type": "string", "format": "date-time"},
        "一覧": {"type": "array", "items": {"type": "string"}},
        "入れ子": {"type": "object"},
        "どちらか": {"type": ["string", "integer"]},
        "区分": {"enum": ["有", "無"]},
        "何でも": {},
    },
}


def test_types_of_every_json_kind() -> None:
    schema = arrow_schema(SYNTHETIC)
    types = {field.name: field.type for field in schema}
    assert types == {
        "文字": pa.string(),
        "整数": pa.int64(),
        "数": pa.float64(),
        "真偽": pa.bool_(),
        "日付": pa.date32(),
        "日時": pa.timestamp("us", tz="UTC"),
        "一覧": pa.string(),
        "入れ子": pa.string(),
        "どちらか": pa.string(),
        "区分": pa.string(),
        "何でも": pa.string(),
    }
    json_text = {field.name for field in schema if is_json_text(field)}
    assert json_text == {"一覧", "入れ子", "どちらか", "何でも"}


def test_values_equal_the_documents() -> None:
    schema = arrow_schema(SYNTHETIC)
    jst = timezone(timedelta(hours=9))
    records: list[dict[str, Any]] = [
        {
            "文字": "市役所",
            "整数": 3.0,
            "数": 2,
            "真偽": True,
            "日付": "2026-04-01",
            "日時": "2026-04-01T09:30:00.25+09:00",
            "一覧": ["a", "い"],
            "入れ子": {"k": [1, None]},
            "どちらか": "1",
            "区分": "有",
            "何でも": None,
        },
        {"どちらか": 1, "日時": "2026-04-01T00:00:00Z"},
        {},
    ]
    batch = record_batch(schema, records)
    assert batch.num_rows == 3
    rows = batch.to_pylist()
    first = rows[0]
    assert first["文字"] == "市役所"
    assert first["整数"] == 3 and isinstance(first["整数"], int)
    assert first["数"] == 2.0
    assert first["真偽"] is True
    assert first["日付"] == date.fromisoformat(records[0]["日付"])
    assert first["日付"].isoformat() == records[0]["日付"]
    assert first["日時"] == datetime(2026, 4, 1, 9, 30, 0, 250_000, tzinfo=jst)
    assert first["日時"].tzinfo is not None and first["日時"].utcoffset() == timedelta(0)
    assert json.loads(first["一覧"]) == records[0]["一覧"]
    assert json.loads(first["入れ子"]) == records[0]["入れ子"]
    # "1" and 1 stay apart in a column that allows both.
    assert json.loads(first["どちらか"]) == "1" and json.loads(rows[1]["どちらか"]) == 1
    assert rows[1]["日時"] == datetime(2026, 4, 1, tzinfo=UTC)
    assert all(value is None for value in rows[2].values())


def test_values_that_escaped_their_schema_are_null_and_counted() -> None:
    schema = arrow_schema(SYNTHETIC)
    builder = BatchBuilder(schema)
    records: list[dict[str, Any]] = [
        {"文字": "ok", "整数": 1, "数": 1.5, "真偽": False, "日付": "2026-04-01"},
        {"文字": 1, "整数": "three", "数": "33.7", "真偽": 1, "日付": "2026-02-30"},
        {"整数": 2**70, "数": True, "日時": "yesterday", "文字": ["a"]},
        {"整数": 1.5, "日付": 20260401},
    ]
    rows = list(record_batches(schema, [records[:2], records[2:]], builder=builder))
    values = [row for batch in rows for row in batch.to_pylist()]
    assert values[0]["文字"] == "ok" and values[0]["整数"] == 1 and values[0]["数"] == 1.5
    assert values[0]["真偽"] is False and values[0]["日付"] == date(2026, 4, 1)
    for row, record in zip(values[1:], records[1:], strict=True):
        for name in record:
            assert row[name] is None, (name, record[name])
    expected: dict[str, int] = {}
    for record in records[1:]:
        for name in record:
            expected[name] = expected.get(name, 0) + 1
    assert dict(builder.outside_schema) == expected


def test_batches_are_streamed_in_order_and_empty_ones_skipped() -> None:
    schema = arrow_schema(SYNTHETIC, fields={"文字"})
    batches = list(record_batches(schema, [[{"文字": "a"}], [], [{"文字": "b"}, {"文字": "c"}]]))
    assert [batch.num_rows for batch in batches] == [1, 2]
    assert [row["文字"] for batch in batches for row in batch.to_pylist()] == ["a", "b", "c"]

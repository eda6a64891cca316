"""What whole-dataset exports wrote record by record before they were serialised per batch: the
reference their bytes are compared with, on the demo data, the Yaizu files and awkward values.

The encoders below are the earlier ``services.publish.stream`` functions, kept verbatim apart from
their names; ``reference_export`` drives them as the earlier ``export`` handler did.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from cityos.department.csvimport import iter_csv_records
from cityos.department.demo import demo_records
from cityos.domain.readmodel import queries
from cityos.domain.readmodel.query import RecordQuery, parse_query
from cityos.kernel.db.engine import session_factory
from cityos.kernel.schemas import SchemaSet, location_fields
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.context import project as project_fields
from services.publish.render import (
    UTF8_BOM,
    RecordLike,
    cell_writer,
    csv_columns,
    header_row,
)
from services.publish.render import record_point as point_of
from tests.support.fixtures_path import OPENDATA_SAMPLES
from tests.support.publish_catalog import T0, validated_events

CHUNK_BYTES = 64 * 1024
Project = Callable[[dict[str, Any]], dict[str, Any]]

# The Yaizu files and the dataset a clerk imports each into (as in the sample-import tests).
YAIZU = {
    "222127_aed.csv": "aed",
    "222127_public_facility.csv": "public-facility",
    "222127_public_toilet.csv": "public-toilet",
    "222127_tourism.csv": "tourism",
    "222127_evacuation_space.csv": "evacuation-space",
    "222127_public_wireless_lan.csv": "public-facility",
    "222127_preschool.csv": "public-facility",
    "222127_hinannjo.csv": "evacuation-space",
}


def _identity(data: dict[str, Any]) -> dict[str, Any]:
    return data


def _gathered(pieces: Iterable[bytes]) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def old_csv_chunks(
    records: Iterable[RecordLike], columns: Sequence[str], *, bom: bool, excel: bool = False
) -> Iterator[bytes]:
    safe = bom or excel
    cell = cell_writer(excel=safe)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(header_row(columns, excel=safe))
    prefix = UTF8_BOM if bom else b""
    for record in records:
        data = record.data
        writer.writerow([cell(data.get(column)) for column in columns])
        if text.tell() >= CHUNK_BYTES:
            yield prefix + text.getvalue().encode()
            prefix = b""
            text.seek(0)
            text.truncate()
    yield prefix + text.getvalue().encode()


def _encoded(record: RecordLike, project: Project | None) -> bytes:
    raw = getattr(record, "raw", None)
    if project is None and isinstance(raw, str):
        return raw.encode()
    return orjson.dumps((project or _identity)(record.data))


def old_ndjson_chunks(records: Iterable[RecordLike], *, project: Project | None) -> Iterator[bytes]:
    return _gathered(_encoded(record, project) + b"\n" for record in records)


def old_json_array_chunks(records: Iterable[RecordLike], *, project: Project | None) -> Iterator[bytes]:
    def pieces() -> Iterator[bytes]:
        yield b"["
        first = True
        for record in records:
            yield (b"" if first else b",") + _encoded(record, project)
            first = False
        yield b"]"

    return _gathered(pieces())


def old_geojson_feature(
    record: RecordLike, location: tuple[str, str], project: Project | None
) -> dict[str, Any]:
    point = point_of(record, location)
    raw = getattr(record, "raw", None)
    properties: Any = (
        orjson.Fragment(raw)
        if project is None and isinstance(raw, str)
        else (project or _identity)(record.data)
    )
    return {
        "type": "Feature",
        "id": record.record_key,
        "geometry": None if point is None else {"type": "Point", "coordinates": point},
        "properties": properties,
    }


def old_geojson_chunks(
    records: Iterable[RecordLike], location: tuple[str, str], *, project: Project | None
) -> Iterator[bytes]:
    def pieces() -> Iterator[bytes]:
        yield b'{"type":"FeatureCollection","features":['
        first = True
        for record in records:
            yield (b"" if first else b",") + orjson.dumps(old_geojson_feature(record, location, project))
            first = False
        yield b"]}"

    return _gathered(pieces())


def reference_export(engine: Engine, schema_set: SchemaSet, dataset_id: str, params: dict[str, str]) -> bytes:
    """The bytes the record-by-record export wrote for ``params`` (anonymous caller, public dataset)."""
    with session_factory(engine)() as session:
        # The schema as the catalog keeps it: PostgreSQL's JSONB orders the properties its own way.
        stored = queries.latest_schema(session, dataset_id=dataset_id)
        assert stored is not None
        schema = stored.document
    location = location_fields(schema_set.datasets[dataset_id].model_dump())
    items = [(name, value) for name, value in params.items() if name not in ("format", "bom", "excel")]
    parsed = parse_query(items, schema, allowed_fields=None, has_location=location is not None)
    assert isinstance(parsed, RecordQuery), parsed
    shown = parsed.fields
    projector = None if shown is None else (lambda data: project_fields(data, shown))
    chosen = params.get("format", "json")
    with session_factory(engine)() as session:
        records = queries.stream_records(session, dataset_id=dataset_id, query=parsed)
        if chosen == "csv":
            columns = list(parsed.fields) if parsed.fields is not None else csv_columns(schema, [])
            bom, excel = params.get("bom") == "true", params.get("excel") == "true"
            chunks = old_csv_chunks(records, columns, bom=bom, excel=excel)
        elif chosen == "geojson":
            assert location is not None
            chunks = old_geojson_chunks(records, location, project=projector)
        elif chosen == "ndjson":
            chunks = old_ndjson_chunks(records, project=projector)
        else:
            chunks = old_json_array_chunks(records, project=projector)
        return b"".join(chunks)


# Values a department may send that each encoder spells its own way, or that CSV must quote or a
# spreadsheet must not run; keys in an order other than the schema's, and fields it does not declare.
AWKWARD: list[dict[str, Any]] = [
    {"ID": "X01", "名称": '=HYPERLINK("http://x")', "男性トイレ総数": -3, "緯度": 33.5, "経度": 130.5},
    {"経度": 130.9, "緯度": 33.9, "ID": "X02", "名称": "a,b", "備考": 'say "hi"\r\nbye', "設置位置": "+81"},
    {
        "ID": "X03",
        "名称": "-1.5e-3",
        "高度の値": -1e-07,
        "女性トイレ総数": 10**22,
        "緯度": "33.7",
        "経度": " 130.7 ",
    },
    {"ID": "X04", "名称": "@SUM(A1)", "車椅子使用者用トイレ有無": True, "オストメイト設置トイレ有無": False},
    {"ID": "X05", "名称": None, "画像": ["a", 1, 2.5, None], "備考": {"入れ子": {"x": [1, {"y": "z"}]}}},
    {"ID": "X06", "名称": "\tタブ", "緯度": 95.0, "経度": 130.0, "所在地_連結表記": "北九州市\n小倉北区"},
    {"ID": "X07", "名称": "大きな整数", "男性トイレ総数": 2**70 + 1, "緯度": 33.1, "経度": 130.1},
    {"ID": "X08", "名称": "", "設置位置": "", "緯度": 0.1, "経度": -0.1, "余分な項目": "x"},
    {
        "ID": "X09",
        "名称": "ｱｲｳ①〇○",
        "備考": "'already quoted",
        "男性トイレ総数": 0.0,
        "女性トイレ総数": -0.0,
    },
    {"ID": "X10", "名称": "\r先頭が改行", "緯度": None, "経度": None, "利用開始時間": "09:00"},
    {
        "ID": "X11",
        "名称": "制御\x01文字",
        "備考": "\u2028\u0085\ufeff",
        "緯度": 33.12345678901234,
        "経度": 130.1,
    },
    {"ID": "X12", "名称": "=", "男性トイレ総数": 1.0e16, "女性トイレ総数": 123456789.123456789},
]


def yaizu_rows(schema_set: SchemaSet) -> dict[str, list[dict[str, Any]]]:
    """The Yaizu files as ``cityos import-csv`` reads them into records, by dataset."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, dataset_id in YAIZU.items():
        path = Path(OPENDATA_SAMPLES) / "yaizu-222127" / name
        meta = schema_set.datasets[dataset_id]
        document = schema_set.latest(dataset_id).document
        for row in iter_csv_records(path, meta, document):
            if row.record is not None and row.record.get(meta.record_key) not in (None, ""):
                found.setdefault(dataset_id, []).append(row.record)
    return found


def fill_export_catalog(engine: Engine, schema_set: SchemaSet) -> None:
    """Demo records of every dataset, every Yaizu file and the awkward values, applied as the catalog
    applies validated events."""
    events = []
    offset = 0
    for dataset_id, meta in sorted(schema_set.datasets.items()):
        rows = demo_records(dataset_id, schema_set.latest(dataset_id).document, count=40, seed=17)
        events += validated_events(dataset_id, meta.record_key, rows, offset)
        offset += len(rows)
    for dataset_id, rows in sorted(yaizu_rows(schema_set).items()):
        key = schema_set.datasets[dataset_id].record_key
        keyed = [{**row, key: f"Y{n:04d}-{row[key]}"} for n, row in enumerate(rows)]
        events += validated_events(dataset_id, key, keyed, offset)
        offset += len(keyed)
    events += validated_events("public-toilet", "ID", AWKWARD, offset)
    # One ledger entry per record, whatever its dataset.
    events = [replace(event, id=f"export-{n}") for n, event in enumerate(events)]
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=schema_set, now=T0)
        apply_batch(session, events=events, now=T0 + timedelta(hours=1))

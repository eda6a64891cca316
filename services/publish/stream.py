"""Streaming encoders: records in, byte chunks out, in constant memory whatever the record count.

Used by whole-dataset exports, which read through a server-side cursor. Chunks are gathered to about
64 KiB: one ASGI message per record would spend more time in the server than in encoding.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson

from services.publish.render import UTF8_BOM, RecordLike, cell_writer, header_row, record_point

CHUNK_BYTES = 64 * 1024

Project = Callable[[dict[str, Any]], dict[str, Any]]


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


def csv_chunks(
    records: Iterable[RecordLike],
    columns: Sequence[str],
    *,
    bom: bool,
    on_row: Callable[[], None],
    excel: bool = False,
) -> Iterator[bytes]:
    """RFC 4180 CSV of ``columns`` (UTF-8, CRLF), optionally with the BOM Excel needs; for Excel
    (the BOM, or ``excel``) formula-like cells are neutralised as in ``render.render_csv``."""
    safe = bom or excel
    cell = cell_writer(excel=safe)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(header_row(columns, excel=safe))
    prefix = UTF8_BOM if bom else b""
    for record in records:
        data = record.data
        writer.writerow([cell(data.get(column)) for column in columns])
        on_row()
        if text.tell() >= CHUNK_BYTES:
            yield prefix + text.getvalue().encode()
            prefix = b""
            text.seek(0)
            text.truncate()
    yield prefix + text.getvalue().encode()


def _encoded(record: RecordLike, project: Project | None) -> bytes:
    raw = getattr(record, "raw", None)
    if project is None and isinstance(raw, str):
        return raw.encode()  # the stored JSON text as is: no decode and re-encode
    return orjson.dumps((project or _identity)(record.data))


def ndjson_chunks(
    records: Iterable[RecordLike], *, project: Project | None = None, on_row: Callable[[], None]
) -> Iterator[bytes]:
    """One JSON object per line (NDJSON / JSON Lines)."""

    def pieces() -> Iterator[bytes]:
        for record in records:
            on_row()
            yield _encoded(record, project) + b"\n"

    return _gathered(pieces())


def json_array_chunks(
    records: Iterable[RecordLike], *, project: Project | None = None, on_row: Callable[[], None]
) -> Iterator[bytes]:
    """A JSON array of the records' data."""

    def pieces() -> Iterator[bytes]:
        yield b"["
        first = True
        for record in records:
            on_row()
            yield (b"" if first else b",") + _encoded(record, project)
            first = False
        yield b"]"

    return _gathered(pieces())


def geojson_feature(record: RecordLike, location: tuple[str, str], project: Project | None) -> dict[str, Any]:
    point = record_point(record, location)
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


def geojson_chunks(
    records: Iterable[RecordLike],
    location: tuple[str, str],
    *,
    project: Project | None = None,
    on_row: Callable[[], None],
) -> Iterator[bytes]:
    """An RFC 7946 FeatureCollection written feature by feature."""

    def pieces() -> Iterator[bytes]:
        yield b'{"type":"FeatureCollection","features":['
        first = True
        for record in records:
            on_row()
            yield (b"" if first else b",") + orjson.dumps(geojson_feature(record, location, project))
            first = False
        yield b"]}"

    return _gathered(pieces())

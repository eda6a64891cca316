"""Streaming encoders: batches of records in, byte chunks out, in constant memory whatever the count.

Used by whole-dataset exports, which read the catalog in batches of driver rows
(``queries.stream_record_rows``, ``queries.stream_documents``). A batch is serialised at once by C
code wherever the bytes allow: stored JSON is copied, not decoded, into JSON, NDJSON and GeoJSON; a
batch of located GeoJSON features is one bytes formatting; a batch of CSV is written straight from
the stored bytes by the compiled writer of native/ (``cityos_native.csv_lines``) where it is
built, else a run of CSV records with the same fields is one ``%`` formatting. Whatever a fast path
cannot prove identical goes through the exact writer
(``geojson_feature``, the per-cell CSV writer of ``render.render_csv``), so the bytes are those of a
record-by-record rendering. One chunk per batch: one ASGI message per record would spend more time
in the server than in encoding.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, groupby
from operator import itemgetter
from typing import Any, cast

import orjson

from cityos.domain.readmodel.queries import RecordRow
from cityos.kernel.spreadsheet import FORMULA_TRIGGERS
from services.publish.render import UTF8_BOM, RecordLike, cell_writer, header_row, record_point

Project = Callable[[dict[str, Any]], dict[str, Any]]
# Rows fetched and serialised at a time: large enough that per-batch costs vanish, small enough that
# a batch of the widest records stays a few megabytes.
BATCH_ROWS = 5_000
Batches = Iterable[Sequence[RecordRow]]
# Batches of 1-tuples: the stored documents alone, as bytes (``queries.stream_documents``).
Documents = Iterable[Sequence[tuple[bytes]]]

# Value types a CSV cell shows as ``str()`` does: text as is, numbers as ``repr`` (bool is not int here).
_PLAIN_CELL_TYPES = frozenset({str, int, float})
# Templates kept per export: records of one dataset come in a handful of field sets, but a dataset
# whose every record has its own must not grow memory.
_MAX_SHAPES = 256


def _identity(data: dict[str, Any]) -> dict[str, Any]:
    return data


def decoded(raw: bytes) -> dict[str, Any]:
    """A stored document as ``RawRecord.data`` reads it."""
    try:
        value: dict[str, Any] = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = json.loads(raw)
    return value


def decoded_batch(raws: Sequence[bytes]) -> list[dict[str, Any]]:
    """The documents of a batch, parsed as one JSON array (faster than one parse per document)."""
    try:
        documents: list[dict[str, Any]] = orjson.loads(b"[" + b",".join(raws) + b"]")
    except orjson.JSONDecodeError:
        return [decoded(raw) for raw in raws]
    if len(documents) != len(raws):  # not one document each: read them one by one
        return [decoded(raw) for raw in raws]
    return documents


class _Record:
    """A driver row seen as ``RecordLike`` (the exact, per-record fallbacks read that)."""

    __slots__ = ("_data", "latitude", "longitude", "raw", "record_key")

    def __init__(self, row: RecordRow) -> None:
        self.record_key, self.raw, self.latitude, self.longitude = row
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = decoded(self.raw)
        return self._data


class CsvWriter:
    """CSV lines of ``columns`` for batches of records: RFC 4180, CRLF, cells as ``render_csv``
    writes them (neutralised for a spreadsheet when ``excel``)."""

    def __init__(self, columns: Sequence[str], *, excel: bool) -> None:
        self.columns = list(columns)
        self.excel = excel
        self._cell = cell_writer(excel=excel)
        self._shapes: dict[tuple[str, ...], tuple[Callable[[Any], Any], int, str]] = {}

    def header(self) -> str:
        return self._exact([header_row(self.columns, excel=self.excel)])

    def lines(self, datas: Sequence[dict[str, Any]]) -> str:
        """The lines of ``datas``, in order: each run of records with the same fields (in the same
        order) at once when the fast path can prove its bytes, else cell by cell."""
        if len(self.columns) < 2:  # a lone empty cell is written `""`: no template says that
            return self._rows(datas)
        pieces = []
        for shape, run in groupby(datas, key=tuple):
            records = list(run)
            text = self._formatted(shape, records)
            pieces.append(self._rows(records) if text is None else text)
        return "".join(pieces)

    def _rows(self, datas: Iterable[dict[str, Any]]) -> str:
        cell, columns = self._cell, self.columns
        return self._exact([[cell(data.get(column)) for column in columns] for data in datas])

    @staticmethod
    def _exact(rows: Iterable[Sequence[str]]) -> str:
        text = io.StringIO()
        csv.writer(text, lineterminator="\r\n").writerows(rows)
        return text.getvalue()

    def _shape(self, shape: tuple[str, ...]) -> tuple[Callable[[Any], Any], int, str]:
        """(values getter, how many, line template) for records whose fields are ``shape``."""
        known = self._shapes.get(shape)
        if known is None:
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            fields = set(shape)
            present = [column for column in self.columns if column in fields]
            getter = itemgetter(*present) if present else (lambda _: ())
            line = ",".join("%s" if column in fields else "" for column in self.columns) + "\r\n"
            known = self._shapes[shape] = (getter, len(present), line)
        return known

    def _formatted(self, shape: tuple[str, ...], records: list[dict[str, Any]]) -> str | None:
        """The run's lines by one ``%`` formatting, or None when that would not be the exact bytes.

        ``%s`` writes text as is and numbers as ``repr`` does, as the exact writer does; the
        result is kept only when no cell holds what CSV quotes (a comma, quote or line break), so
        that counting those characters in the result proves it.
        """
        getter, width, line = self._shape(shape)
        values: list[Any] = (
            list(chain.from_iterable(map(getter, records))) if width > 1 else list(map(getter, records))
        )
        if not set(map(type, values)) <= _PLAIN_CELL_TYPES:
            return None  # booleans, nulls and nested values have their own spelling
        text = (line * len(records)) % tuple(values)
        count = len(records)
        if (
            text.count(",") != count * (len(self.columns) - 1)
            or text.count("\n") != count
            or text.count("\r") != count
            or '"' in text
        ):
            return None
        if self.excel and _may_start_a_formula(text):
            return None
        return text


# A carriage return in a cell is already refused by the line count; every line ends with one.
_LEADING_TRIGGERS = tuple(sorted(FORMULA_TRIGGERS - {"\r"}))


def _may_start_a_formula(text: str) -> bool:
    """Whether a cell of these lines may begin with a spreadsheet trigger (numbers included: the
    exact writer then decides which cells to neutralise)."""
    # A trigger absent from the text (one fast scan each) needs no look at where cells begin.
    return any(
        trigger in text and (text.startswith(trigger) or f",{trigger}" in text or f"\n{trigger}" in text)
        for trigger in _LEADING_TRIGGERS
    )


CompiledCsvLines = Callable[[Sequence[tuple[bytes]], list[str], bool], bytes | None]


def _compiled_csv_lines() -> CompiledCsvLines | None:
    try:
        from cityos_native import csv_lines as compiled
    except ImportError:  # not built on this machine: the Python writer gives the same bytes
        return None
    return compiled


# The compiled writer reads the stored bytes straight into CSV (no dict per record, no Python
# string per cell), about four times the Python writer's pace; it answers None for any batch it
# cannot prove byte for byte (an agreement test holds the two to the same bytes).
compiled_csv_lines: CompiledCsvLines | None = _compiled_csv_lines()


def csv_batch(writer: CsvWriter, documents: Sequence[tuple[bytes]]) -> bytes:
    """The CSV lines of a batch of stored documents: compiled when it can, else in Python."""
    if compiled_csv_lines is not None:
        text = compiled_csv_lines(documents, writer.columns, writer.excel)
        if text is not None:
            return text
    return writer.lines(decoded_batch([row[0] for row in documents])).encode()


def csv_stream(
    documents: Documents,
    columns: Sequence[str],
    *,
    bom: bool,
    on_rows: Callable[[int], None],
    excel: bool = False,
) -> Iterator[bytes]:
    """RFC 4180 CSV of ``columns`` (UTF-8, CRLF), optionally with the BOM Excel needs; for Excel
    (the BOM, or ``excel``) formula-like cells are neutralised as in ``render.render_csv``."""
    writer = CsvWriter(columns, excel=bom or excel)
    yield (UTF8_BOM if bom else b"") + writer.header().encode()
    for rows in documents:
        on_rows(len(rows))
        yield csv_batch(writer, rows)


def csv_chunks(
    records: Iterable[RecordLike],
    columns: Sequence[str],
    *,
    bom: bool,
    on_row: Callable[[], None],
    excel: bool = False,
) -> Iterator[bytes]:
    """``csv_stream`` for records already read (their ``data``), one chunk in all."""
    writer = CsvWriter(columns, excel=bom or excel)
    datas = []
    for record in records:
        datas.append(record.data)
        on_row()
    yield (UTF8_BOM if bom else b"") + (writer.header() + writer.lines(datas)).encode()


def _json_texts(documents: Sequence[tuple[bytes]], project: Project | None) -> list[bytes]:
    """Each record's JSON: the stored bytes as they are (no decode and re-encode), or its projection."""
    raws = [row[0] for row in documents]
    if project is None:
        return raws
    return [orjson.dumps(project(data)) for data in decoded_batch(raws)]


def ndjson_stream(
    documents: Documents, *, project: Project | None = None, on_rows: Callable[[int], None]
) -> Iterator[bytes]:
    """One JSON object per line (NDJSON / JSON Lines)."""
    for rows in documents:
        on_rows(len(rows))
        yield b"\n".join(_json_texts(rows, project)) + b"\n"


def json_array_stream(
    documents: Documents, *, project: Project | None = None, on_rows: Callable[[int], None]
) -> Iterator[bytes]:
    """A JSON array of the records' data."""
    separator = b"["
    for rows in documents:
        if not rows:
            continue
        on_rows(len(rows))
        yield separator + b",".join(_json_texts(rows, project))
        separator = b","
    yield b"[]" if separator == b"[" else b"]"


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


def _geometry(row: RecordRow, location: tuple[str, str]) -> dict[str, Any] | None:
    """A row's Point as ``record_point`` decides it: the catalog's columns when both are set and
    in range (nearly every located record), else the fields of the record itself."""
    latitude, longitude = row[2], row[3]
    if (
        latitude is not None
        and longitude is not None
        and -90.0 <= latitude <= 90.0
        and -180.0 <= longitude <= 180.0
    ):
        return {"type": "Point", "coordinates": [longitude, latitude]}
    point = record_point(_Record(row), location)
    return None if point is None else {"type": "Point", "coordinates": point}


def geojson_batch(rows: Sequence[RecordRow], location: tuple[str, str], project: Project | None) -> bytes:
    """The features of ``rows``, comma-separated, exactly as ``geojson_feature`` spells each."""
    if project is None and _all_located(rows):
        return _located_features(rows)
    if project is None:
        properties: list[Any] = [orjson.Fragment(row[1]) for row in rows]
    else:
        properties = [project(data) for data in decoded_batch([row[1] for row in rows])]
    features = [
        {"type": "Feature", "id": row[0], "geometry": _geometry(row, location), "properties": shown}
        for row, shown in zip(rows, properties, strict=True)
    ]
    return orjson.dumps(features)[1:-1]


_FEATURE = b'{"type":"Feature","id":%b,"geometry":{"type":"Point","coordinates":[%b,%b]},"properties":%b}'


def _all_located(rows: Sequence[RecordRow]) -> bool:
    """Whether every row's catalog columns hold a point in range (``record_point`` then reads them)."""
    if not rows:
        return False
    for values, bound in (([row[2] for row in rows], 90.0), ([row[3] for row in rows], 180.0)):
        if None in values:
            return False
        numbers = cast(list[float], values)
        # A NaN escapes min() and max() but not the sum.
        if not (min(numbers) >= -bound and max(numbers) <= bound and math.isfinite(sum(numbers))):
            return False
    return True


def _numbers(values: list[Any]) -> list[bytes]:
    """Each number as orjson writes it inside any document (a number's JSON holds no comma)."""
    return orjson.dumps(values)[1:-1].split(b",")


def _located_features(rows: Sequence[RecordRow]) -> bytes:
    """Features of located rows by one bytes formatting: the key, the coordinates and the stored
    document are each written as ``orjson.dumps`` writes them inside a feature, and no dict or list
    is built per record (hundreds of thousands of them kept the garbage collector busy)."""
    keys = list(map(orjson.dumps, [row[0] for row in rows]))
    longitudes, latitudes = _numbers([row[3] for row in rows]), _numbers([row[2] for row in rows])
    documents = [row[1] for row in rows]
    values = tuple(chain.from_iterable(zip(keys, longitudes, latitudes, documents, strict=True)))
    return b",".join([_FEATURE] * len(rows)) % values


def geojson_stream(
    batches: Batches,
    location: tuple[str, str],
    *,
    project: Project | None = None,
    on_rows: Callable[[int], None],
) -> Iterator[bytes]:
    """An RFC 7946 FeatureCollection, one chunk per batch."""
    separator = b'{"type":"FeatureCollection","features":['
    for rows in batches:
        if not rows:
            continue
        on_rows(len(rows))
        yield separator + geojson_batch(rows, location, project)
        separator = b","
    yield separator + b"]}" if separator != b"," else b"]}"


def parquet_stream(
    documents: Documents,
    schema: dict[str, Any] | None,
    columns: Sequence[str],
    *,
    on_rows: Callable[[int], None],
) -> Iterator[bytes]:
    """A Parquet file (zstd) of ``columns``, typed from the dataset's JSON Schema and in its order,
    as the analysis snapshots write it (``cityos.domain.analysis.columns``); one chunk per row
    group, the footer last."""
    # Loaded on the first Parquet download, not at start: pyarrow would add ~50 MB to every
    # publish process, most of which never write Parquet.
    from cityos.domain.analysis.columns import arrow_schema, record_batches
    from cityos.domain.analysis.parquet import stream_bytes

    arrow = arrow_schema(schema or {}, fields=columns)
    datas = (decoded_batch([row[0] for row in rows]) for rows in documents)
    yield from stream_bytes(arrow, record_batches(arrow, datas), on_rows=on_rows)

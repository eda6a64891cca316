"""Arrow record batches written as Parquet, in constant memory: to a file (atomically) or as bytes.

Batches arrive a few thousand records at a time; they are gathered into row groups of
``ROW_GROUP_ROWS`` (large enough for readers to skip and scan well, small enough that one row group
of the widest dataset stays a few tens of megabytes) and each row group is written as soon as it is
full, so memory does not grow with the dataset. Columns are zstd-compressed with dictionary
encoding, which suits the many repeated texts of municipal data (ward names, categories).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cityos.domain.analysis.formats import PARQUET_MEDIA_TYPE

ROW_GROUP_ROWS = 65_536
COMPRESSION = "zstd"
MEDIA_TYPE = PARQUET_MEDIA_TYPE


def with_metadata(schema: pa.Schema, extra: Mapping[str, str]) -> pa.Schema:
    """``schema`` with ``extra`` added to its key-value metadata (kept in the Parquet footer)."""
    merged: dict[bytes, bytes] = dict(schema.metadata or {})
    merged.update({key.encode(): value.encode() for key, value in extra.items()})
    return schema.with_metadata(merged)


def _writer(sink: Any, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(
        sink,
        schema,
        compression=COMPRESSION,
        use_dictionary=True,
        write_statistics=True,
        # Without it pyarrow stores the Arrow schema's metadata twice (once for Arrow readers); the
        # field metadata (titles, English names) travels in it, so it stays.
        store_schema=True,
    )


def _row_groups(batches: Iterable[pa.RecordBatch], rows_per_group: int) -> Iterator[pa.Table]:
    """Tables of ``rows_per_group`` rows (the last one shorter) from consecutive batches."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= rows_per_group:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows_per_group)
            rest = table.slice(rows_per_group)
            pending = rest.to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


@dataclass(frozen=True, slots=True)
class Written:
    """What one Parquet file holds: its rows and size in bytes."""

    rows: int
    bytes: int


def write_file(
    path: Path,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    rows_per_group: int = ROW_GROUP_ROWS,
    on_rows: Callable[[int], None] | None = None,
    footer: Callable[[], Mapping[str, str]] | None = None,
) -> Written:
    """Write ``batches`` to ``path`` as Parquet; readers see the old file or the whole new one.

    The rows go to a hidden temporary file in the same folder (readers of ``**/*.parquet`` skip it,
    as Hive-style dataset readers skip names starting with a dot), which replaces ``path`` once it is
    complete and flushed to disk. On any failure the temporary file is removed and ``path`` is as it
    was. ``footer`` gives key-value metadata known only once every row is written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    rows = 0
    try:
        with open(temporary, "wb") as handle:
            writer = _writer(handle, schema)
            try:
                for table in _row_groups(batches, rows_per_group):
                    writer.write_table(table, row_group_size=rows_per_group)
                    rows += table.num_rows
                    if on_rows is not None:
                        on_rows(table.num_rows)
                _add_footer(writer, footer)
            finally:
                writer.close()
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return Written(rows=rows, bytes=path.stat().st_size)


def _add_footer(writer: pq.ParquetWriter, footer: Callable[[], Mapping[str, str]] | None) -> None:
    extra = {} if footer is None else dict(footer())
    if extra:
        writer.add_key_value_metadata(extra)


class _Drain:
    """A write-only byte sink whose contents are taken out between row groups."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        chunk = b"".join(self._chunks)
        self._chunks.clear()
        return chunk


def stream_bytes(
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    rows_per_group: int = ROW_GROUP_ROWS,
    on_rows: Callable[[int], None] | None = None,
    footer: Callable[[], Mapping[str, str]] | None = None,
) -> Iterator[bytes]:
    """The Parquet file of ``batches`` as byte chunks, one per row group (and the footer last), so a
    download starts before the whole dataset is read and never sits in memory whole."""
    drain = _Drain()
    writer = _writer(pa.PythonFile(drain, mode="w"), schema)
    try:
        for table in _row_groups(batches, rows_per_group):
            writer.write_table(table, row_group_size=rows_per_group)
            if on_rows is not None:
                on_rows(table.num_rows)
            chunk = drain.take()
            if chunk:
                yield chunk
        _add_footer(writer, footer)
    finally:
        writer.close()
    yield drain.take()

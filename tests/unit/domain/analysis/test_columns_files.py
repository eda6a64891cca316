"""Parquet files of Arrow columns: atomic replacement, row groups, streamed bytes equal to the file,
and where a snapshot lives (Hive folders, the day in Japan, the schema file's column order)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cityos.domain.analysis.columns import arrow_schema, record_batches
from cityos.domain.analysis.parquet import stream_bytes, write_file
from cityos.domain.analysis.snapshots import SnapshotError, in_file_order, japan_day, snapshot_path

SCHEMA = arrow_schema({"properties": {"名称": {"type": "string", "x-en": "name"}, "数": {"type": "integer"}}})


def _batches(count: int, size: int, *, start: int = 0) -> Iterator[pa.RecordBatch]:
    documents = [
        [{"名称": f"施設{n}", "数": n} for n in range(b, min(b + size, count))]
        for b in range(start, count, size)
    ]
    return record_batches(SCHEMA, documents)


def test_a_file_has_every_row_in_row_groups_and_its_metadata(tmp_path: Path) -> None:
    path = tmp_path / "dataset=x" / "date=2026-04-01" / "part-0.parquet"
    seen: list[int] = []
    written = write_file(path, SCHEMA, _batches(25_000, 3_000), rows_per_group=10_000, on_rows=seen.append)
    assert written.rows == 25_000 and written.bytes == path.stat().st_size
    assert seen == [10_000, 10_000, 5_000]
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 3
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    table = parquet.read()
    assert table.column("名称").to_pylist() == [f"施設{n}" for n in range(25_000)]
    assert table.schema.field("名称").metadata[b"x-en"] == b"name"
    assert [p.name for p in path.parent.iterdir()] == ["part-0.parquet"]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "part-0.parquet"
    write_file(path, SCHEMA, _batches(10, 10))
    before = path.read_bytes()

    def failing() -> Iterator[pa.RecordBatch]:
        yield from _batches(5_000, 1_000, start=100)
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError, match="database gone"):
        write_file(path, SCHEMA, failing(), rows_per_group=1_000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["part-0.parquet"]


def test_streamed_bytes_are_a_file_with_the_same_rows(tmp_path: Path) -> None:
    chunks = list(stream_bytes(SCHEMA, _batches(12_345, 1_000), rows_per_group=5_000))
    assert len(chunks) >= 3  # not one piece at the end: a download starts before the last row
    streamed = pq.read_table(pa.BufferReader(b"".join(chunks)))
    write_file(tmp_path / "f.parquet", SCHEMA, _batches(12_345, 1_000), rows_per_group=5_000)
    assert streamed.equals(pq.read_table(tmp_path / "f.parquet"))
    empty = pq.read_table(pa.BufferReader(b"".join(stream_bytes(SCHEMA, iter(())))))
    assert empty.num_rows == 0 and empty.schema.names == SCHEMA.names


def test_snapshot_folders_are_hive_partitions_of_the_day_in_japan(tmp_path: Path) -> None:
    assert snapshot_path(tmp_path, "aed", date(2026, 4, 1)) == (
        tmp_path / "dataset=aed" / "date=2026-04-01" / "part-0.parquet"
    )
    # 15:00 UTC on 31 March is already 1 April in Japan; 14:59:59 is not.
    assert japan_day(datetime(2026, 3, 31, 15, 0, tzinfo=UTC)) == date(2026, 4, 1)
    assert japan_day(datetime(2026, 3, 31, 14, 59, 59, tzinfo=UTC)) == date(2026, 3, 31)
    for bad in ("../etc", "a/b", "x=y", ".hidden", ""):
        with pytest.raises(SnapshotError):
            snapshot_path(tmp_path, bad, date(2026, 4, 1))


def test_columns_follow_the_schema_files_order() -> None:
    stored = {"$id": "u", "properties": {"ID": {}, "緯度": {}, "名称": {}, "追加": {}}}
    ordered = in_file_order(stored, ["名称", "ID", "緯度"])
    assert list(ordered["properties"]) == ["名称", "ID", "緯度", "追加"]
    assert ordered["$id"] == "u"
    assert list(in_file_order(stored, None)["properties"]) == list(stored["properties"])

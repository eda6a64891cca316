"""bench/snapshot: one dataset's analysis snapshot (Parquet) of ``--records`` records (default
1,000,000), against pyarrow writing the same rows without the framework.

On a SQLite file catalog filled in bulk with public-toilet records (the export bench's filler):
  snapshot — ``cityos.domain.analysis.snapshots.write_snapshot`` in a process of its own, as
             ``cityos snapshot write`` and the analysis service run it: the catalog read through
             ``history.current_records`` (SQLAlchemy, the document decoded), typed columns from the
             JSON Schema with their checks, zstd row groups, a temporary file renamed into place;
  limit    — a process of its own running the same query (``sqlite3``, the document as bytes, batches
             of ``fetchmany``) into pyarrow's C++ JSON reader with the same Arrow schema and the same
             Parquet writer options, none of the framework's checks.
Each writer's RSS is read when a quarter and all of the rows are written, and its peak (VmHWM) at
the end: memory must not grow with the rows. The two files' contents are compared row by row (a
digest of every row's values in column order) and must be equal.

Exit 1 when the snapshot's peak RSS reaches 300 MB or the contents differ.

    .venv/bin/python -m bench.snapshot [--records 1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from cityos.domain.analysis.columns import arrow_schema
from cityos.domain.analysis.parquet import COMPRESSION, ROW_GROUP_ROWS
from cityos.kernel.settings import REPO_ROOT

# The filler and the machine line import half the platform: the writers' processes never load them,
# so that their RSS is what writing a snapshot costs.
DATASET = "public-toilet"
TARGET_RSS_MB = 300.0
BATCH = 5_000
SQL = "SELECT data FROM records WHERE dataset_id = ? AND deleted_at IS NULL ORDER BY record_key"


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Quarters:
    """RSS when a quarter and when all of ``total`` rows are written."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.rss: dict[str, float] = {}

    def __call__(self, rows: int) -> None:
        self.done += rows
        if "25%" not in self.rss and self.done >= self.total / 4:
            self.rss["25%"] = _rss_mb()
        if self.done >= self.total:
            self.rss["100%"] = _rss_mb()


def _snapshot(database: Path, out: Path, records: int) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from cityos.domain.analysis.snapshots import file_property_order, write_snapshot
    from cityos.kernel.db.engine import make_engine
    from cityos.kernel.settings import Settings

    quarters = _Quarters(records)
    engine = make_engine(f"sqlite:///{database}")
    order = file_property_order(Settings().schemas_dir)
    started = time.perf_counter()
    with Session(engine) as session:
        result = write_snapshot(session, dataset_id=DATASET, root=out, on_rows=quarters, property_order=order)
    seconds = time.perf_counter() - started
    return {"path": str(result.path), "rows": result.rows, "bytes": result.bytes, "seconds": seconds,
            "rss": quarters.rss}  # fmt: skip


def _schema() -> pa.Schema:
    from cityos.kernel.schemas import load_schema_dir
    from cityos.kernel.settings import Settings

    return arrow_schema(load_schema_dir(Settings().schemas_dir).latest(DATASET).document)


def _limit(database: Path, out: Path, records: int) -> dict[str, Any]:
    quarters = _Quarters(records)
    schema = _schema()
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    path = out / "limit.parquet"
    started = time.perf_counter()
    connection = sqlite3.connect(database)
    connection.text_factory = bytes
    cursor = connection.execute(SQL, (DATASET,))
    writer = pq.ParquetWriter(path, schema, compression=COMPRESSION, use_dictionary=True, store_schema=True)
    pending: list[pa.RecordBatch] = []
    held = 0
    while rows := cursor.fetchmany(BATCH):
        table = pa_json.read_json(io.BytesIO(b"\n".join(row[0] for row in rows)), parse_options=options)
        pending += table.select(schema.names).to_batches()
        held += table.num_rows
        if held >= ROW_GROUP_ROWS:
            writer.write_table(pa.Table.from_batches(pending, schema=schema), row_group_size=ROW_GROUP_ROWS)
            quarters(held)
            pending, held = [], 0
    if held:
        writer.write_table(pa.Table.from_batches(pending, schema=schema), row_group_size=ROW_GROUP_ROWS)
        quarters(held)
    writer.close()
    connection.close()
    seconds = time.perf_counter() - started
    return {"path": str(path), "rows": records, "bytes": path.stat().st_size, "seconds": seconds,
            "rss": quarters.rss}  # fmt: skip


def _child(kind: str, database: Path, out: Path, records: int) -> None:
    measured = (_snapshot if kind == "snapshot" else _limit)(database, out, records)
    measured["peak_rss_mb"] = _rss_mb("VmHWM")
    print(json.dumps(measured))


def _run(kind: str, database: Path, out: Path, records: int) -> dict[str, Any]:
    """One writer in a fresh process, so that its RSS is its own."""
    answer = subprocess.run(
        [sys.executable, "-m", "bench.snapshot", "--child", kind, "--database", str(database),
         "--out", str(out), "--records", str(records)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if answer.returncode != 0:
        raise RuntimeError(f"{kind} failed: {answer.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    return measured


def row_digests(path: str) -> Iterator[bytes]:
    """A digest of each row's values, in column order (the file's own types, written as JSON)."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=BATCH):
        columns = [column.to_pylist() for column in batch.columns]
        for values in zip(*columns, strict=True):
            yield hashlib.sha256(
                orjson.dumps(values, option=orjson.OPT_PASSTHROUGH_DATETIME, default=str)
            ).digest()


def same_contents(first: str, second: str) -> tuple[bool, int]:
    """Whether the two files hold the same rows in the same order with the same column names."""
    if pq.read_schema(first).names != pq.read_schema(second).names:
        return False, 0
    whole = hashlib.sha256()
    compared = 0
    for left, right in zip(row_digests(first), row_digests(second), strict=False):
        if left != right:
            return False, compared
        whole.update(left)
        compared += 1
    return compared == pq.read_metadata(first).num_rows == pq.read_metadata(second).num_rows, compared


def _line(name: str, measured: dict[str, Any], stored_bytes: int) -> str:
    """MB/s of the stored JSON read (what the writer works through; the zstd file is far smaller)."""
    mb_s = stored_bytes / 1e6 / measured["seconds"]
    rows_s = measured["rows"] / measured["seconds"]
    rss = measured["rss"]
    return (
        f"{name:<9} {measured['seconds']:7.2f} s  {mb_s:6.1f} MB/s  {rows_s:10,.0f} rows/s  "
        f"file {measured['bytes'] / 1e6:6.1f} MB  RSS at 25% {rss.get('25%', float('nan')):6.1f} MB, "
        f"at 100% {rss.get('100%', float('nan')):6.1f} MB, peak {measured['peak_rss_mb']:6.1f} MB"
    )


def stored_size(database: Path) -> int:
    """Bytes of the stored documents the snapshot reads."""
    with sqlite3.connect(database) as connection:
        (size,) = connection.execute(
            "SELECT sum(length(CAST(data AS BLOB))) FROM records WHERE dataset_id = ? AND deleted_at IS NULL",
            (DATASET,),
        ).fetchone()
    return int(size or 0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--child", choices=("snapshot", "limit"), help=argparse.SUPPRESS)
    parser.add_argument("--database", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child, args.database, args.out, args.records)
        return

    from bench._catalog_fixture import DATASET as FILLED
    from bench._catalog_fixture import fill
    from bench.ingest import machine

    assert FILLED == DATASET
    print(f"machine  {machine()}")
    with tempfile.TemporaryDirectory(prefix="cityos-bench-snapshot-") as folder:
        work = Path(folder)
        database = work / "catalog.db"
        started = time.perf_counter()
        fill(f"sqlite:///{database}", args.records)
        print(
            f"catalog  {args.records:,} {DATASET} records in SQLite, filled in {time.perf_counter() - started:.1f} s"
        )
        stored = stored_size(database)
        print(f"stored   {stored / 1e6:,.1f} MB of JSON documents; MB/s below are of these")
        snapshot = _run("snapshot", database, work / "snapshots", args.records)
        limit = _run("limit", database, work, args.records)
        equal, compared = same_contents(snapshot["path"], limit["path"])
    print(_line("snapshot", snapshot, stored))
    print(_line("limit", limit, stored))
    ratio = (snapshot["rows"] / snapshot["seconds"]) / (limit["rows"] / limit["seconds"])
    print(f"ratio    snapshot / limit rows/s = {ratio:.2f}")
    print(f"contents {'equal' if equal else 'DIFFERENT'}: {compared:,} rows compared by digest")
    ok_rss = snapshot["peak_rss_mb"] < TARGET_RSS_MB
    print(f"target   peak RSS < {TARGET_RSS_MB:.0f} MB: {'met' if ok_rss else 'MISSED'}")
    if not (ok_rss and equal and snapshot["rows"] == args.records):
        sys.exit(1)


if __name__ == "__main__":
    main()

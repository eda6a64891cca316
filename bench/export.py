"""bench/export: whole-dataset exports over HTTP against the same work without the service.

On a SQLite file catalog holding ``--records`` (default 1,000,000) public-toilet records, for each
format of ``GET /api/v1/datasets/public-toilet/export``:
  http  — the real publish server (``cityos serve publish`` in its own process) streams the export
          to a client in this process, which reads it in 1 MiB pieces and digests it;
  limit — the same query through the same driver (``sqlite3``, the document as bytes, batches of
          ``fetchmany``) and the fastest serialiser of the same bytes this data allows, in this
          process, no HTTP: CSV by the compiled writer the service uses (native/, when built; else
          one ``%`` formatting per batch of the (known, uniform) fields),
          GeoJSON by one bytes formatting per batch, NDJSON and JSON by joining the stored bytes;
          none of the checks the service makes before it trusts a fast path.
The two are measured in alternating rounds (medians), so machine noise weighs on both alike; the
HTTP body's digest must equal the limit's. Printed: MB/s, rows/s, the ratio, and the server's peak
RSS (VmHWM) after every export. An export is streamed, never cached, so one URL per format is
honest here.

Exit 1 when, for CSV or GeoJSON, HTTP is below 50 MB/s or below 0.7x the limit, or the server's
peak RSS reaches 200 MB; the other formats are reported.

    .venv/bin/python -m bench.export [--records 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from bench._catalog_fixture import DATASET, download, fill, peak_rss_mb, process, toilet
from bench.ingest import machine
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from services.publish.stream import compiled_csv_lines
from tests.support.stack import free_port

TARGET_MB_S = 50.0
TARGET_RATIO = 0.7
TARGET_RSS_MB = 200.0
BATCH = 5_000
JUDGED = ("csv", "geojson")
SQL = "SELECT {columns} FROM records WHERE dataset_id = ? AND deleted_at IS NULL ORDER BY record_key"


@dataclass(frozen=True)
class Export:
    name: str
    query: str
    write: Callable[[sqlite3.Connection, Callable[[bytes], Any]], None]


def _documents(connection: sqlite3.Connection, columns: str) -> Iterator[list[Any]]:
    cursor = connection.execute(SQL.format(columns=columns), (DATASET,))
    while rows := cursor.fetchmany(BATCH):
        yield rows


def _csv_writer(*, bom: bool) -> Callable[[sqlite3.Connection, Callable[[bytes], Any]], None]:
    """The bench's records all have the same fields, in the schema's order, and no cell CSV quotes:
    one template per line, formatted for a whole batch at once."""
    columns = list(load_schema_dir(Settings().schemas_dir).latest(DATASET).document["properties"])
    fields = list(toilet(0))
    line = ",".join("%s" if column in fields else "" for column in columns) + "\r\n"
    values = itemgetter(*[column for column in columns if column in fields])

    def write(connection: sqlite3.Connection, sink: Callable[[bytes], Any]) -> None:
        sink(("\ufeff" if bom else "").encode() + (",".join(columns) + "\r\n").encode())
        if compiled_csv_lines is not None:  # the fastest serialiser this machine has, as the service
            for rows in _documents(connection, "CAST(data AS BLOB)"):
                text = compiled_csv_lines(rows, columns, bom)
                if text is None:
                    raise RuntimeError("the compiled CSV writer refused the bench's records")
                sink(text)
            return
        for rows in _documents(connection, "CAST(data AS BLOB)"):
            records = [orjson.loads(row[0]) for row in rows]
            flat = tuple(chain.from_iterable(map(values, records)))
            sink(((line * len(records)) % flat).encode())

    return write


FEATURE = b'{"type":"Feature","id":%b,"geometry":{"type":"Point","coordinates":[%b,%b]},"properties":%b}'


def _geojson(connection: sqlite3.Connection, sink: Callable[[bytes], Any]) -> None:
    """Every bench record is located: one bytes formatting per batch, each number and key spelled by
    orjson (building a dict per feature for ``orjson.dumps`` is slower: the garbage collector)."""
    separator = b'{"type":"FeatureCollection","features":['
    for rows in _documents(connection, "record_key, CAST(data AS BLOB), latitude, longitude"):
        keys = list(map(orjson.dumps, [row[0] for row in rows]))
        longitudes = orjson.dumps([row[3] for row in rows])[1:-1].split(b",")
        latitudes = orjson.dumps([row[2] for row in rows])[1:-1].split(b",")
        documents = [row[1] for row in rows]
        values = tuple(chain.from_iterable(zip(keys, longitudes, latitudes, documents, strict=True)))
        sink(separator + b",".join([FEATURE] * len(rows)) % values)
        separator = b","
    sink(b"]}")


def _ndjson(connection: sqlite3.Connection, sink: Callable[[bytes], Any]) -> None:
    for rows in _documents(connection, "CAST(data AS BLOB)"):
        sink(b"\n".join([row[0] for row in rows]) + b"\n")


def _json(connection: sqlite3.Connection, sink: Callable[[bytes], Any]) -> None:
    separator = b"["
    for rows in _documents(connection, "CAST(data AS BLOB)"):
        sink(separator + b",".join([row[0] for row in rows]))
        separator = b","
    sink(b"]")


EXPORTS = (
    Export("csv", "format=csv", _csv_writer(bom=False)),
    Export("geojson", "format=geojson", _geojson),
    Export("csv+bom", "format=csv&bom=true", _csv_writer(bom=True)),
    Export("ndjson", "format=ndjson", _ndjson),
    Export("json", "format=json", _json),
)


@dataclass
class Measured:
    size: int = 0
    digest: str = ""
    seconds: list[float] = field(default_factory=list)

    def record(self, size: int, digest: str, seconds: float) -> None:
        if self.digest and (size, digest) != (self.size, self.digest):
            raise RuntimeError("two rounds of one export sent different bytes")
        self.size, self.digest = size, digest
        self.seconds.append(seconds)

    @property
    def mb_s(self) -> float:
        return self.size / 1e6 / statistics.median(self.seconds)


def measure_limit(database: Path, export: Export, into: Measured) -> None:
    connection = sqlite3.connect(database)
    digest = hashlib.blake2b()
    size = 0

    def count(piece: bytes) -> None:
        nonlocal size
        size += len(piece)

    started = time.perf_counter()
    export.write(connection, count)
    seconds = time.perf_counter() - started
    if not into.digest:  # the digest once, outside the timing: hashing is the client's work
        export.write(connection, digest.update)
    connection.close()
    into.record(size, into.digest or digest.hexdigest(), seconds)


def measure_http(port: int, export: Export, into: Measured) -> None:
    digest = hashlib.blake2b()
    size, seconds = download(port, f"/api/v1/datasets/{DATASET}/export?{export.query}", sink=digest.update)
    into.record(size, digest.hexdigest(), seconds)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(records: int, results: dict[str, tuple[Measured, Measured]], rss: float) -> bool:
    print(f"\nwhole-dataset export of {records:,} records (medians; limit = same query and driver, no HTTP)")
    print(
        f"  {'format':8s} {'MB':>7s} {'HTTP MB/s':>10s} {'rows/s':>11s} {'limit MB/s':>11s} {'ratio':>6s}  same bytes"
    )
    ok = True
    for name, (http, limit) in results.items():
        ratio = http.mb_s / limit.mb_s
        same = http.digest == limit.digest and http.size == limit.size
        rows_s = records / statistics.median(http.seconds)
        judged = name in JUDGED
        passed = same and (not judged or (http.mb_s >= TARGET_MB_S and ratio >= TARGET_RATIO))
        ok &= passed
        note = (
            f"  target >= {TARGET_MB_S:.0f} MB/s and >= {TARGET_RATIO}x: {_verdict(passed)}" if judged else ""
        )
        print(
            f"  {name:8s} {http.size / 1e6:7.1f} {http.mb_s:10.1f} {rows_s:11,.0f} {limit.mb_s:11.1f} "
            f"{ratio:6.2f}  {'yes' if same else 'NO'}{note}"
        )
    print(
        f"  publish server peak RSS (VmHWM): {rss:.0f} MB (target < {TARGET_RSS_MB:.0f} MB: {_verdict(rss < TARGET_RSS_MB)})"
    )
    return ok and rss < TARGET_RSS_MB


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating HTTP/limit measurements")
    args = parser.parse_args()
    print(f"machine  {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        database = Path(folder) / "catalog.db"
        started = time.perf_counter()
        fill(f"sqlite:///{database}", args.records)
        print(f"filled {args.records:,} records in {time.perf_counter() - started:.1f} s (SQLite file)")
        port = free_port()
        env = dict(os.environ)
        env.update({
            "CITYOS_DATABASE_URL": f"sqlite:///{database}", "CITYOS_PUBLISH_PORT": str(port),
            "CITYOS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            # The bench measures throughput, not the limiter's refusals.
            "CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE": "100000000",
        })  # fmt: skip
        results = {export.name: (Measured(), Measured()) for export in EXPORTS}
        with process(
            [sys.executable, "-m", "cityos", "serve", "publish"], env, port, Path(folder) / "publish.log"
        ) as server:
            for export in EXPORTS:  # warm-up: first requests import and compile what they use
                download(port, f"/api/v1/datasets/{DATASET}/export?{export.query}&ID=T0000001")
            rss_before = peak_rss_mb(server.pid)
            for _ in range(args.rounds):
                for export in EXPORTS:
                    http, limit = results[export.name]
                    measure_http(port, export, http)
                    measure_limit(database, export, limit)
            rss = peak_rss_mb(server.pid)
    print(f"\npublish server peak RSS before the exports: {rss_before:.0f} MB")
    if not report(args.records, results, rss):
        sys.exit(1)


if __name__ == "__main__":
    main()

"""bench/catalog: the catalog's apply_batch against a bare bulk insert of the same rows.

In one run, per backend (SQLite file; PostgreSQL when --pg-url or CITYOS_TEST_PG_URL is given):
  limit  — one INSERT … executemany of the record rows per batch, one transaction per batch;
  apply  — services.catalog.store.apply_batch (ledger check, newer-wins comparison, record upsert,
           ledger insert, dataset counters), one transaction per batch.
Half of the events update records written earlier, as a live feed does. Prints events/s and ratio.

    .venv/bin/python -m bench.catalog [--events 20000] [--batch 500] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import insert

from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.db.models import Record
from cityos.kernel.events import TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from services.catalog.store import apply_batch, sync_schema_set

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def events(count: int) -> list[ValidatedEvent]:
    """``count`` AED upserts; the second half updates the records of the first half."""
    half = count // 2
    out = []
    for index in range(count):
        key = f"B{index % half:07d}"
        record = {
            "NO": key,
            "名称": f"ベンチマーク施設{index}",
            "名称_カナ": "ベンチマークシセツ",
            "住所": "福岡県北九州市小倉北区城内1-1",
            "設置位置": "1階ロビー",
            "緯度": 33.88,
            "経度": 130.87,
        }
        out.append(
            ValidatedEvent(
                "aed",
                key,
                1,
                "/bench",
                f"e{index}",
                TYPE_UPSERTED,
                T0 + timedelta(seconds=index),
                record,
                0,
                index,
            )
        )
    return out


@contextmanager
def fresh_database(kind: str, pg_url: str | None) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    assert pg_url is not None
    name = f"cityos_bench_{uuid.uuid4().hex[:8]}"
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(kind: str, pg_url: str | None, stream: list[ValidatedEvent], batch: int) -> tuple[float, float]:
    schema_set = load_schema_dir(Settings().schemas_dir)
    rates = []
    for mode in ("limit", "apply"):
        with fresh_database(kind, pg_url) as url:
            migrate(url)
            engine = make_engine(url)
            sessions = session_factory(engine, sqlite_begin="IMMEDIATE")
            with sessions.begin() as session:
                sync_schema_set(session, schema_set=schema_set)
            started = time.perf_counter()
            for start in range(0, len(stream), batch):
                chunk = stream[start : start + batch]
                with sessions.begin() as session:
                    if mode == "apply":
                        apply_batch(session, events=chunk, now=datetime.now(UTC))
                    else:
                        # The limit: rows straight in (keys made unique so nothing conflicts).
                        session.execute(
                            insert(Record),
                            [
                                {
                                    "dataset_id": e.dataset_id,
                                    "record_key": f"{e.record_key}-{e.offset}",
                                    "data": e.data,
                                    "schema_version": 1,
                                    "event_source": e.source,
                                    "event_id": e.id,
                                    "event_time": e.time,
                                    "kafka_partition": 0,
                                    "kafka_offset": e.offset,
                                    "updated_at": e.time,
                                }
                                for e in chunk
                            ],
                        )
            rates.append(len(stream) / (time.perf_counter() - started))
            engine.dispose()
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", default=os.environ.get("CITYOS_TEST_PG_URL"))
    args = parser.parse_args()
    stream = events(args.events)
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    print(f"bench/catalog  events={args.events} (half updates)  batch={args.batch}  rounds={args.rounds}")
    for kind in backends:
        results = [run(kind, args.pg_url, stream, args.batch) for _ in range(args.rounds)]
        limit = statistics.median(r[0] for r in results)
        apply = statistics.median(r[1] for r in results)
        print(
            f"  {kind:10s} limit (bare insert) {limit:>9,.0f} events/s   apply_batch {apply:>9,.0f} events/s   ratio {apply / limit:.2f}"
        )
    if not args.pg_url:
        print("  (PostgreSQL skipped: pass --pg-url or set CITYOS_TEST_PG_URL)")


if __name__ == "__main__":
    main()

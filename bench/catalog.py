"""bench/catalog: the catalog's apply_batch against a same-work limit, on SQLite and PostgreSQL.

In one run, per backend (SQLite file always; PostgreSQL when --pg-url or CITYOS_TEST_PG_URL is given),
each run on a fresh database, in rotating rounds (medians reported):
  limit  — the same work by the bare driver (sqlite3 / psycopg, no SQLAlchemy, no service code), one
           transaction per batch: read the batch's ledger entries and stored record versions (one
           query each), decide by the catalog's rules written out again here (duplicates, later
           wins by (time, partition, offset), tombstones, counters, a change-log row for every
           ledgered event), then the fastest safe bulk path of the driver -- PostgreSQL: COPY of the
           ledger, COPY of the change log, COPY of the records into a staging table and one
           INSERT … SELECT … ON CONFLICT DO UPDATE; SQLite: executemany of INSERT (ledger, change
           log) and of INSERT … ON CONFLICT DO UPDATE -- and the datasets' counters.
  apply  — services.catalog.store.apply_batch, as the consumer calls it.
  writes — the limit's writes alone, every row decided before the clock starts (nothing read or
           decided): what storing costs by itself. Printed, not judged.
The stream: 20,000 AED events by default in batches of 500, the second half updating the records of
the first, with deletions, late (stale) events and replays of processed events (duplicates) among
them. After every run the database is dumped (records with tombstones, the ledger with outcomes and
notes, the change log, the datasets' counters; canonical JSON) and the three dumps compared byte for byte.
Prints the machine, events/s of each and the ratio of the medians; exits 1 when apply/limit is below
0.7 on either backend, 2 when the dumps differ.

Scale-out (PostgreSQL only; bench/catalog_scale.py): one against two `cityos serve catalog`
processes, measured from outside; reported, not judged.

    .venv/bin/python -m bench.catalog [--events 20000] [--batch 500] [--rounds 5] [--pg-url URL]
                                      [--scale-events 40000] [--scale-rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.catalog_scale import TARGET_SCALE, scale_out
from bench.ingest import machine
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.db.history_models import RecordChange
from cityos.kernel.db.models import Dataset, ProcessedEvent, Record
from cityos.kernel.events import TYPE_DELETED, TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import SchemaSet, load_schema_dir
from cityos.kernel.settings import Settings
from services.catalog.store import apply_batch, sync_schema_set

TARGET_RATIO = 0.7
T0 = datetime(2026, 1, 1, tzinfo=UTC)
APPLIED_AT = datetime(2026, 2, 1, tzinfo=UTC)  # "now" of batch n is this plus n seconds, on both sides

RECORD_COLUMNS = (
    "dataset_id",
    "record_key",
    "data",
    "schema_version",
    "event_source",
    "event_id",
    "event_time",
    "kafka_partition",
    "kafka_offset",
    "latitude",
    "longitude",
    "updated_at",
    "deleted_at",
)
LEDGER_COLUMNS = ("source", "event_id", "dataset_id", "outcome", "processed_at", "note")
CHANGE_COLUMNS = (
    "event_source",
    "event_id",
    "dataset_id",
    "record_key",
    "event_time",
    "kafka_partition",
    "kafka_offset",
    "schema_version",
    "deleted",
    "data",
    "applied_at",
)
RECORD_KEY = ("dataset_id", "record_key")


def events(count: int, batch: int) -> list[ValidatedEvent]:
    """``count`` AED events; the second half updates the records of the first. Of the second half,
    every 25th is a deletion, every 50th a replay of an event delivered a batch earlier (a
    duplicate) and every 50th another one older than the record's state (stale)."""
    half = count // 2
    out: list[ValidatedEvent] = []
    for index in range(count):
        if index >= half + batch and index % 50 == 1:
            out.append(out[index - batch])
            continue
        key = f"B{index % half:07d}"
        deleted = index >= half and index % 25 == 0
        late = index >= half and index % 50 == 27
        record = {
            "NO": key,
            "名称": f"ベンチマーク施設{index}",
            "名称_カナ": "ベンチマークシセツ",
            "住所": "福岡県北九州市小倉北区城内1-1",
            "設置位置": "1階ロビー",
            "緯度": 33.88 + index / 1e6,
            "経度": 130.87,
        }
        out.append(
            ValidatedEvent(
                "aed",
                key,
                1,
                "/bench",
                f"e{index}",
                TYPE_DELETED if deleted else TYPE_UPSERTED,
                T0 + timedelta(seconds=index - half - 1 if late else index),
                None if deleted else record,
                0,
                index,
            )
        )
    return out


def batches(stream: Sequence[ValidatedEvent], size: int) -> list[Sequence[ValidatedEvent]]:
    return [stream[start : start + size] for start in range(0, len(stream), size)]


def applied_at(batch_number: int) -> datetime:
    return APPLIED_AT + timedelta(seconds=batch_number)


# --- the limit: bare drivers ------------------------------------------------------------------------

Key = tuple[str, str]
Version = tuple[datetime, int, int]


@dataclass(slots=True)
class State:
    """What the limit knows of a record: the version that wrote it, by whom, and whether it lives."""

    version: Version
    source: str
    event_id: str
    present: bool


@dataclass
class Writes:
    """One batch's rows, ready for the driver."""

    ledger: list[tuple[Any, ...]]
    changes: list[tuple[Any, ...]]  # the change log: one per ledgered event, stale ones included
    records: list[tuple[Any, ...]]
    datasets: list[tuple[int, datetime | None, str]]  # (count change, newest change, dataset)


def _json(value: Any) -> str:
    # The catalog engine's JSON text: UTF-8, compact, no NaN.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _sqlite_time(moment: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DATETIME text of the UTC instant.
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _same(moment: datetime | None) -> datetime | None:
    return moment


def _coordinate(value: Any, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and abs(number) <= bound else None


def _record(e: ValidatedEvent, location: tuple[str, str], now: datetime) -> tuple[Any, ...]:
    """The record row an event writes: the document and its coordinates, or a tombstone."""
    if e.type == TYPE_DELETED:
        data: dict[str, Any] = {}
        lat = lon = None
        deleted_at: datetime | None = now
    else:
        data, deleted_at = e.data or {}, None
        lat, lon = _coordinate(data.get(location[0]), 90.0), _coordinate(data.get(location[1]), 180.0)
        if lat is None or lon is None:
            lat = lon = None
    return (
        e.dataset_id,
        e.record_key,
        data,
        e.schema_version,
        e.source,
        e.id,
        e.time,
        e.partition,
        e.offset,
        lat,
        lon,
        now,
        deleted_at,
    )


def _outcome(e: ValidatedEvent, state: State | None) -> tuple[str, str | None]:
    if state is not None and (e.time, e.partition, e.offset) <= state.version:
        return "stale", f"superseded by {state.source} {state.event_id}"
    if e.type == TYPE_DELETED:
        return "deleted", None if state is not None and state.present else "record absent"
    return "applied", None


def decide(
    chunk: Sequence[ValidatedEvent],
    processed: set[Key],
    stored: dict[Key, State],
    location: tuple[str, str],
    now: datetime,
) -> Writes:
    """The batch's rows by the catalog's rules, written out again without its code: duplicates (ledger
    or earlier in the batch) change nothing; a change not newer than the record's state -- by (time,
    partition, offset), a tombstone included -- is stale; a deletion leaves a tombstone."""
    seen = set(processed)
    latest: dict[Key, tuple[State, tuple[Any, ...]]] = {}
    ledger: list[tuple[Any, ...]] = []
    changes: list[tuple[Any, ...]] = []
    newest: dict[str, datetime] = {}
    for e in chunk:
        if (e.source, e.id) in seen:
            continue
        seen.add((e.source, e.id))
        key = (e.dataset_id, e.record_key)
        change = latest.get(key)
        state = change[0] if change is not None else stored.get(key)
        outcome, note = _outcome(e, state)
        ledger.append((e.source, e.id, e.dataset_id, outcome, now, note))
        deletion = e.type == TYPE_DELETED
        changes.append(
            (e.source, e.id, e.dataset_id, e.record_key, e.time, e.partition, e.offset, e.schema_version,
             deletion, None if deletion else e.data or {}, now)
        )  # fmt: skip
        if outcome == "stale":
            continue
        if outcome == "applied" or (state is not None and state.present):
            newest[e.dataset_id] = max(newest.get(e.dataset_id, e.time), e.time)
        present = outcome == "applied"
        latest[key] = (
            State((e.time, e.partition, e.offset), e.source, e.id, present),
            _record(e, location, now),
        )
    delta: dict[str, int] = {}
    for key, (state, _) in latest.items():
        before = stored.get(key)
        if state.present != (before is not None and before.present):
            delta[key[0]] = delta.get(key[0], 0) + (1 if state.present else -1)
    datasets = [(delta.get(d, 0), newest.get(d), d) for d in sorted(newest.keys() | delta.keys())]
    return Writes(ledger, changes, [row for _, (_, row) in sorted(latest.items())], datasets)


def encode(writes: Writes, moment: Callable[[datetime | None], Any]) -> Writes:
    """The rows as the driver takes them: JSON text, and instants as the backend stores them."""
    ledger = [(*row[:4], moment(row[4]), row[5]) for row in writes.ledger]
    changes = [
        (*c[:4], moment(c[4]), *c[5:9], None if c[9] is None else _json(c[9]), moment(c[10]))
        for c in writes.changes
    ]
    records = [
        (*r[:2], _json(r[2]), *r[3:6], moment(r[6]), *r[7:11], moment(r[11]), moment(r[12]))
        for r in writes.records
    ]
    datasets = [(delta, moment(at), dataset) for delta, at, dataset in writes.datasets]
    return Writes(ledger, changes, records, datasets)


def _dataset_update(param: str, moment: str = "") -> str:
    """The datasets' counters, relative (as the catalog writes them); ``moment`` casts the time."""
    return (
        f"UPDATE datasets SET record_count = record_count + {param}, last_record_at = CASE "
        f"WHEN {param}{moment} IS NULL THEN last_record_at "
        f"WHEN last_record_at IS NULL OR last_record_at < {param} THEN {param}{moment} "
        f"ELSE last_record_at END WHERE id = {param}"
    )


def _dataset_params(writes: Writes) -> list[tuple[Any, ...]]:
    return [(delta, at, at, at, dataset) for delta, at, dataset in writes.datasets]


_UPDATE_SET = ", ".join(f"{c} = excluded.{c}" for c in RECORD_COLUMNS if c not in RECORD_KEY)
_LOCATION_OF = "SELECT meta FROM datasets WHERE id = {p}"


def _location(meta: Any) -> tuple[str, str]:
    found = (json.loads(meta) if isinstance(meta, str) else meta)["location"]
    return found["latitude"], found["longitude"]


def limit_sqlite(url: str, chunks: list[Sequence[ValidatedEvent]], known: list[Writes] | None = None) -> None:
    """The same work by sqlite3 alone: per batch, one transaction reading the batch's ledger entries
    and records (one IN-list query each), deciding, then executemany of the rows. With ``known``,
    the rows are given and nothing is read or decided (writes alone)."""
    ledger_sql = f"INSERT INTO processed_events ({', '.join(LEDGER_COLUMNS)}) VALUES ({', '.join('?' * len(LEDGER_COLUMNS))})"
    change_sql = f"INSERT INTO record_changes ({', '.join(CHANGE_COLUMNS)}) VALUES ({', '.join('?' * len(CHANGE_COLUMNS))})"
    record_sql = (
        f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) VALUES ({', '.join('?' * len(RECORD_COLUMNS))}) "
        f"ON CONFLICT (dataset_id, record_key) DO UPDATE SET {_UPDATE_SET}"
    )
    dataset_sql = _dataset_update("?")
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    try:
        location = _location(conn.execute(_LOCATION_OF.format(p="?"), ("aed",)).fetchone()[0])
        for number, chunk in enumerate(chunks):
            conn.execute("BEGIN IMMEDIATE")
            if known is not None:
                writes = encode(known[number], _sqlite_time)
            else:
                processed, stored = _read_sqlite(conn, chunk)
                writes = encode(decide(chunk, processed, stored, location, applied_at(number)), _sqlite_time)
            conn.executemany(ledger_sql, writes.ledger)
            conn.executemany(change_sql, writes.changes)
            conn.executemany(record_sql, writes.records)
            conn.executemany(dataset_sql, _dataset_params(writes))
            conn.execute("COMMIT")
    finally:
        conn.close()


def _read_sqlite(
    conn: sqlite3.Connection, chunk: Sequence[ValidatedEvent]
) -> tuple[set[Key], dict[Key, State]]:
    def marks(values: Sequence[str]) -> str:
        return ", ".join("?" * len(values))

    sources, ids = sorted({e.source for e in chunk}), sorted({e.id for e in chunk})
    wanted = {(e.source, e.id) for e in chunk}
    processed = {
        key
        for key in conn.execute(
            f"SELECT source, event_id FROM processed_events WHERE source IN ({marks(sources)}) AND event_id IN ({marks(ids)})",
            (*sources, *ids),
        )
        if key in wanted
    }
    datasets, keys = sorted({e.dataset_id for e in chunk}), sorted({e.record_key for e in chunk})
    stored = {}
    for dataset, key, at, partition, offset, source, event_id, deleted in conn.execute(
        "SELECT dataset_id, record_key, event_time, kafka_partition, kafka_offset, event_source, event_id, deleted_at "
        f"FROM records WHERE dataset_id IN ({marks(datasets)}) AND record_key IN ({marks(keys)})",
        (*datasets, *keys),
    ):
        moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
        stored[(dataset, key)] = State((moment, partition, offset), source, event_id, deleted is None)
    return processed, stored


def limit_postgresql(
    url: str, chunks: list[Sequence[ValidatedEvent]], known: list[Writes] | None = None
) -> None:
    """The same work by psycopg alone: per batch, one transaction reading the batch's ledger entries
    and records (one query each, the keys unnested from arrays), deciding, then COPY of the ledger,
    COPY of the records into a staging table and one INSERT … SELECT … ON CONFLICT DO UPDATE. With
    ``known``, the rows are given and nothing is read or decided (writes alone)."""
    staging = "bench_records_in"
    columns = ", ".join(RECORD_COLUMNS)
    upsert = (
        f"INSERT INTO records ({columns}) SELECT {columns} FROM {staging} ORDER BY dataset_id, record_key "
        f"ON CONFLICT (dataset_id, record_key) DO UPDATE SET {_UPDATE_SET}"
    )
    dataset_sql = _dataset_update("%s", "::timestamptz")
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute(f"CREATE TEMPORARY TABLE {staging} (LIKE records) ON COMMIT DELETE ROWS")
        location = _location(conn.execute(_LOCATION_OF.format(p="%s"), ("aed",)).fetchone()[0])  # type: ignore[index]
        conn.commit()
        for number, chunk in enumerate(chunks):
            with conn.transaction(), conn.cursor() as cursor:
                if known is not None:
                    writes = encode(known[number], _same)
                else:
                    processed, stored = _read_postgresql(cursor, chunk)
                    writes = encode(decide(chunk, processed, stored, location, applied_at(number)), _same)
                with cursor.copy(f"COPY processed_events ({', '.join(LEDGER_COLUMNS)}) FROM STDIN") as copy:
                    for row in writes.ledger:
                        copy.write_row(row)
                with cursor.copy(f"COPY record_changes ({', '.join(CHANGE_COLUMNS)}) FROM STDIN") as copy:
                    for row in writes.changes:
                        copy.write_row(row)
                with cursor.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
                    for row in writes.records:
                        copy.write_row(row)
                cursor.execute(upsert)
                cursor.executemany(dataset_sql, _dataset_params(writes))


def _read_postgresql(
    cursor: psycopg.Cursor[Any], chunk: Sequence[ValidatedEvent]
) -> tuple[set[Key], dict[Key, State]]:
    events_ = sorted({(e.source, e.id) for e in chunk})
    cursor.execute(
        "SELECT l.source, l.event_id FROM processed_events l JOIN unnest(%s::text[], %s::text[]) AS k(s, i) "
        "ON l.source = k.s AND l.event_id = k.i",
        ([s for s, _ in events_], [i for _, i in events_]),
    )
    processed = {(source, event_id) for source, event_id in cursor}
    records = sorted({(e.dataset_id, e.record_key) for e in chunk})
    cursor.execute(
        "SELECT r.dataset_id, r.record_key, r.event_time, r.kafka_partition, r.kafka_offset, r.event_source, "
        "r.event_id, r.deleted_at IS NULL FROM records r JOIN unnest(%s::text[], %s::text[]) AS k(d, r) "
        "ON r.dataset_id = k.d AND r.record_key = k.r",
        ([d for d, _ in records], [r for _, r in records]),
    )
    stored = {(d, r): State((at, p, o), s, i, live) for d, r, at, p, o, s, i, live in cursor}
    return processed, stored


def known_writes(chunks: list[Sequence[ValidatedEvent]]) -> list[Writes]:
    """Every batch's rows decided in advance against the state the earlier batches leave (writes alone)."""
    processed: set[Key] = set()
    stored: dict[Key, State] = {}
    out = []
    for number, chunk in enumerate(chunks):
        writes = decide(chunk, processed, stored, ("緯度", "経度"), applied_at(number))
        processed.update((row[0], row[1]) for row in writes.ledger)
        for row in writes.records:
            stored[(row[0], row[1])] = State((row[6], row[7], row[8]), row[4], row[5], row[12] is None)
        out.append(writes)
    return out


# --- the catalog ----------------------------------------------------------------------------------------


def service(url: str, chunks: list[Sequence[ValidatedEvent]]) -> None:
    engine = make_engine(url)
    sessions = session_factory(engine, sqlite_begin="IMMEDIATE")
    try:
        for number, chunk in enumerate(chunks):
            with sessions.begin() as session:
                apply_batch(session, events=chunk, now=applied_at(number))
    finally:
        engine.dispose()


# --- databases and dumps ----------------------------------------------------------------------------


@contextmanager
def fresh_database(kind: str, pg_url: str | None, schema_set: SchemaSet) -> Iterator[str]:
    """A migrated catalog synced with ``schema_set``, dropped afterwards."""
    with _empty_database(kind, pg_url) as url:
        migrate(url)
        engine = make_engine(url)
        try:
            with session_factory(engine).begin() as session:
                sync_schema_set(session, schema_set=schema_set, now=T0)
        finally:
            engine.dispose()
        yield url


@contextmanager
def _empty_database(kind: str, pg_url: str | None) -> Iterator[str]:
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


def _canonical(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def dump(url: str) -> bytes:
    """Records (tombstones included), the ledger, the change log and the datasets' counters as
    canonical JSON."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            tables: dict[str, list[list[Any]]] = {}
            for name, columns, order in (
                (
                    "records",
                    [getattr(Record, c) for c in RECORD_COLUMNS],
                    (Record.dataset_id, Record.record_key),
                ),
                (
                    "ledger",
                    [getattr(ProcessedEvent, c) for c in LEDGER_COLUMNS],
                    (ProcessedEvent.source, ProcessedEvent.event_id),
                ),
                (
                    "changes",
                    [getattr(RecordChange, c) for c in CHANGE_COLUMNS],
                    (RecordChange.event_source, RecordChange.event_id),
                ),
                ("datasets", [Dataset.id, Dataset.record_count, Dataset.last_record_at], (Dataset.id,)),
            ):
                rows = session.execute(select(*columns).order_by(*order))
                tables[name] = [[_canonical(value) for value in row] for row in rows]
    finally:
        engine.dispose()
    return json.dumps(tables, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


# --- rounds ---------------------------------------------------------------------------------------------


MODES = ("limit", "apply", "writes")


def measure(
    kind: str, pg_url: str | None, chunks: list[Sequence[ValidatedEvent]], rounds: int
) -> dict[str, list[float]]:
    """events/s of each mode per round; exits 2 when a mode's tables differ from the catalog's."""
    schema_set = load_schema_dir(Settings().schemas_dir)
    count = sum(len(chunk) for chunk in chunks)
    bare = limit_sqlite if kind == "sqlite" else limit_postgresql
    known = known_writes(chunks)
    runs: dict[str, Callable[[str], None]] = {
        "limit": lambda url: bare(url, chunks),
        "apply": lambda url: service(url, chunks),
        "writes": lambda url: bare(url, chunks, known),
    }
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for number in range(rounds):
        # Rotating order: a load change on the shared machine hits every mode alike.
        order = MODES[number % 3 :] + MODES[: number % 3]
        dumps: dict[str, bytes] = {}
        for mode in order:
            with fresh_database(kind, pg_url, schema_set) as url:
                started = time.perf_counter()
                runs[mode](url)
                rates[mode].append(count / (time.perf_counter() - started))
                dumps[mode] = dump(url)
        for mode in ("limit", "writes"):
            if dumps[mode] != dumps["apply"]:
                print(f"  {kind}: the catalog and the {mode} run wrote different tables (round {number + 1})")
                sys.exit(2)
    print(
        f"  {kind:10s} tables (records, ledger, change log, counters) identical in every run: sha256 "
        f"{hashlib.sha256(dumps['apply']).hexdigest()[:16]}, {len(dumps['apply']):,} bytes"
    )
    return rates


def _runs(values: list[float]) -> str:
    return " ".join(f"{value:,.0f}" for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg-url", default=os.environ.get("CITYOS_TEST_PG_URL"))
    parser.add_argument("--scale-events", type=int, default=40_000)
    parser.add_argument(
        "--scale-rounds", type=int, default=2, help="runs of 1 and of 2 catalog processes (0: skip)"
    )
    args = parser.parse_args()
    chunks = batches(events(args.events, args.batch), args.batch)
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    print(
        f"bench/catalog  events={args.events} (half updates; of those 1/25 deletions, 1/50 replays, "
        "1/50 stale)  "
        f"batch={args.batch}  rounds={args.rounds}"
    )
    print(f"machine  {machine()}")
    missed = []
    for kind in backends:
        rates = measure(kind, args.pg_url, chunks, args.rounds)
        limit, apply, writes = (statistics.median(rates[mode]) for mode in MODES)
        ratio = apply / limit
        verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
        print(
            f"  {kind:10s} limit (bare driver, same work)  {limit:>9,.0f} events/s   runs {_runs(rates['limit'])}"
        )
        print(
            f"  {kind:10s} apply_batch                     {apply:>9,.0f} events/s   runs {_runs(rates['apply'])}"
        )
        print(
            f"  {kind:10s} writes alone (rows known)       {writes:>9,.0f} events/s   runs {_runs(rates['writes'])}"
            f"   (apply/writes {apply / writes:.2f}, not judged)"
        )
        print(
            f"  {kind:10s} ratio apply/limit (medians) {ratio:.2f}   (target ≥ {TARGET_RATIO:.2f}: {verdict})"
        )
        if ratio < TARGET_RATIO:
            missed.append(kind)
    if not args.pg_url:
        print("  (PostgreSQL skipped: pass --pg-url or set CITYOS_TEST_PG_URL)")
    elif args.scale_rounds:
        report_scale_out(args)
    if missed:
        sys.exit(1)


def report_scale_out(args: argparse.Namespace) -> None:
    """Two `cityos serve catalog` processes against one, on PostgreSQL (reported, not judged)."""
    pg_url = args.pg_url

    @contextmanager
    def database() -> Iterator[str]:
        with _empty_database("postgresql", pg_url) as url:
            yield url

    singles, pairs = scale_out(pg_url, database, args.scale_events, args.scale_rounds)
    one, two = statistics.median(singles), statistics.median(pairs)
    scale = two / one
    met = "met" if scale >= TARGET_SCALE else "not met"
    print(
        f"  scale-out: `cityos serve catalog` on PostgreSQL, {args.scale_events:,} validated events "
        f"(6 partitions), measured from outside (ledger stamps, middle 90 %)"
    )
    print(f"  postgresql one process                    {one:>9,.0f} events/s   runs {_runs(singles)}")
    print(f"  postgresql two processes, one group       {two:>9,.0f} events/s   runs {_runs(pairs)}")
    print(
        f"  postgresql scale-out 2 vs 1: {scale:.2f}x   (goal ≥ {TARGET_SCALE:.1f}x on 2 cores; broker and "
        f"PostgreSQL share the cores: {met}; reported, not judged)"
    )


if __name__ == "__main__":
    main()

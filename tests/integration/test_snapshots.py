"""Analysis-ready snapshots read back by DuckDB, pandas and pyarrow equal what the records API serves.

A catalog on SQLite and PostgreSQL is filled with every dataset's demo records through the catalog's
own ``apply_batch``; ``cityos snapshot write`` (a real process) writes every dataset; DuckDB reads
the Hive layout, and each dataset's rows and values are compared with the whole-dataset export of a
real publish server, read by a caller who may read the dataset (anonymous for public data, the
owning department for internal data). No caller may read a personal dataset raw through the API, so
its rows are compared with the catalog's stored documents instead. Expected cells are worked out
here from the JSON Schema and the API's JSON, independently of the snapshot's own conversions.

An as-of snapshot of past days equals the state the test itself tracked from the events it sent:
records changed or deleted afterwards show their state of that day.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cityos.department.demo import demo_records
from cityos.domain.access import Caller, CallerKind
from cityos.domain.analysis.snapshots import write_snapshot
from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.domain.grants import grant
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.db.models import Dataset, Record
from cityos.kernel.events import TYPE_DELETED, TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import SchemaSet, default_schema_dir, load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from services.catalog.store import apply_batch, sync_schema_set
from tests.support.publish import serve
from tests.support.publish_catalog import T0, validated_events

pytestmark = pytest.mark.integration

JST = timezone(timedelta(hours=9))
SIMPLE = {"string", "integer", "number", "boolean"}


def _fill(engine: Engine, schema_set: SchemaSet) -> dict[str, list[dict[str, Any]]]:
    """Every dataset's demo records, applied as the catalog applies validated events."""
    sent: dict[str, list[dict[str, Any]]] = {}
    events: list[ValidatedEvent] = []
    for dataset_id, meta in sorted(schema_set.datasets.items()):
        rows = demo_records(dataset_id, schema_set.latest(dataset_id).document, count=60, seed=23)
        sent[dataset_id] = rows
        events += validated_events(dataset_id, meta.record_key, rows, len(events))
    events = [replace(event, id=f"snapshot-{n}") for n, event in enumerate(events)]
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=schema_set, now=T0)
        apply_batch(session, events=events, now=T0 + timedelta(hours=1))
    return sent


def _json_column(node: Mapping[str, Any]) -> bool:
    """Whether this test expects the property as JSON text: anything but one simple type."""
    kinds = node.get("type")
    if isinstance(kinds, list):
        kinds = [kind for kind in kinds if kind != "null"]
        kinds = kinds[0] if len(kinds) == 1 else None
    return kinds not in SIMPLE


def expected_cell(node: Mapping[str, Any], value: Any) -> Any:
    """What a reader should find for the API's ``value`` of a property declared as ``node``."""
    if value is None:
        return None
    if _json_column(node):
        return ("json", value)
    if node.get("format") == "date":
        return date.fromisoformat(value)
    if node.get("format") == "date-time":
        return datetime.fromisoformat(value)  # aware: compared as the same instant
    if node.get("type") == "number":
        return float(value)
    return value


def read_cell(node: Mapping[str, Any], value: Any) -> Any:
    """A reader's value, JSON text decoded, missing values (pandas' NaN/NaT) as None."""
    if value is None or (not isinstance(value, list | dict | str) and pd.isna(value)):
        return None
    if _json_column(node):
        return ("json", json.loads(value))
    if hasattr(value, "item"):  # numpy scalars from pandas
        value = value.item()
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    return value


def expected_rows(
    properties: Mapping[str, Any], documents: list[dict[str, Any]], key: str
) -> list[list[Any]]:
    ordered = sorted(documents, key=lambda document: str(document[key]))
    return [
        [expected_cell(node, document.get(name)) for name, node in properties.items()] for document in ordered
    ]


def duckdb_rows(path: str, properties: Mapping[str, Any], key: str) -> tuple[list[str], list[list[Any]]]:
    with duckdb.connect() as connection:
        relation = connection.sql(f"SELECT * FROM read_parquet('{path}', hive_partitioning = true)")
        names = relation.columns
        rows = relation.fetchall()
    index = names.index(key)
    rows.sort(key=lambda row: str(row[index]))
    return names, [
        [read_cell(properties[name], row[names.index(name)]) for name in properties] for row in rows
    ]


def _caller_headers(engine: Engine, dataset: Dataset) -> dict[str, str]:
    if dataset.classification == "public":
        return {}
    with session_factory(engine)() as session, session.begin():
        secret = issue_key(
            session,
            owner_kind=OwnerKind.department,
            owner_id=dataset.department_id,
            purpose="snapshot test",
            actor="test",
        ).secret
    return {"Authorization": f"Bearer {secret}"}


def _stored_documents(engine: Engine, dataset_id: str) -> list[dict[str, Any]]:
    with Session(engine) as session:
        statement = select(Record.data).where(Record.dataset_id == dataset_id, Record.deleted_at.is_(None))
        return list(session.scalars(statement))


@pytest.fixture
def catalog(database_url: str) -> Iterator[tuple[Engine, SchemaSet, dict[str, list[dict[str, Any]]]]]:
    migrate(database_url)
    engine = make_engine(database_url)
    schema_set = load_schema_dir(default_schema_dir())
    try:
        yield engine, schema_set, _fill(engine, schema_set)
    finally:
        engine.dispose()


def test_every_dataset_read_by_duckdb_and_pandas_equals_the_records_api(
    database_url: str,
    catalog: tuple[Engine, SchemaSet, dict[str, list[dict[str, Any]]]],
    tmp_path: Path,
) -> None:
    engine, schema_set, sent = catalog
    root = tmp_path / "snapshots"
    environment = {**os.environ, "CITYOS_DATABASE_URL": database_url, "COLUMNS": "200"}
    written = subprocess.run(
        [sys.executable, "-m", "cityos", "snapshot", "write", "--out", str(root)],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    today = datetime.now(UTC).astimezone(JST).date()
    with Session(engine) as session:
        datasets = {dataset.id: dataset for dataset in session.scalars(select(Dataset))}
    assert set(datasets) == set(schema_set.datasets) == set(sent)
    for dataset_id in datasets:
        assert dataset_id in written.stdout  # the summary names each dataset

    # The whole store at once: dataset and date come from the folder names.
    with duckdb.connect() as connection:
        counted = connection.sql(
            f"SELECT dataset, date, count(*) FROM read_parquet('{root}/**/*.parquet', "
            "hive_partitioning = true, union_by_name = true) GROUP BY ALL"
        ).fetchall()
    assert sorted(counted) == sorted((dataset_id, today, len(rows)) for dataset_id, rows in sent.items())

    checked_api = 0
    with serve(engine, database_url, publish_anonymous_rate_per_minute=100_000) as server:
        for dataset_id, dataset in sorted(datasets.items()):
            document = schema_set.latest(dataset_id).document
            properties = document["properties"]
            key = dataset.record_key
            if dataset.classification == "personal":
                # Nobody reads a personal dataset raw through the API; the stored documents stand in.
                source = _stored_documents(engine, dataset_id)
            else:
                answer = httpx.get(
                    f"{server.url}/api/v1/datasets/{dataset_id}/export",
                    params={"format": "json"},
                    headers=_caller_headers(engine, dataset),
                    timeout=60,
                )
                assert answer.status_code == 200, (dataset_id, answer.text)
                source = answer.json()
                checked_api += 1
            assert len(source) == len(sent[dataset_id])
            expected = expected_rows(properties, source, key)

            folder = root / f"dataset={dataset_id}"
            names, rows = duckdb_rows(f"{folder}/*/*.parquet", properties, key)
            assert names == [*properties, "dataset", "date"], dataset_id
            assert rows == expected, dataset_id

            # pandas: the file alone (no partition columns), then the dataset folder (with date).
            file = folder / f"date={today.isoformat()}" / "part-0.parquet"
            frame = pd.read_parquet(file)
            assert list(frame.columns) == list(properties)
            from_pandas = [
                [
                    read_cell(properties[name], value)
                    for name, value in zip(frame.columns, values, strict=True)
                ]
                for values in frame.itertuples(index=False)
            ]
            from_pandas.sort(key=lambda row: str(row[list(properties).index(key)]))
            assert from_pandas == expected, dataset_id
            partitioned = pd.read_parquet(folder)
            assert len(partitioned) == len(expected)
            assert {str(value) for value in partitioned["date"]} == {today.isoformat()}

            # pyarrow's Hive dataset, and the file's own description of itself.
            table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
            assert table.num_rows == len(expected) and "date" in table.column_names
            metadata = pq.read_metadata(file).metadata
            assert metadata[b"cityos.dataset"].decode() == dataset_id
            assert metadata[b"cityos.classification"].decode() == dataset.classification
            assert metadata[b"cityos.date"].decode() == today.isoformat()
            field = pq.read_schema(file).field(key)
            assert field.metadata[b"title"].decode() == properties[key].get("title", key)
    assert checked_api == sum(1 for d in datasets.values() if d.classification != "personal")


def at(day: date, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second, micro), tzinfo=JST)


def test_as_of_snapshots_equal_the_state_of_each_past_day(database_url: str, tmp_path: Path) -> None:
    schema_set = load_schema_dir(default_schema_dir())
    document = schema_set.latest("aed").document
    properties = document["properties"]
    records = demo_records("aed", document, count=8, seed=5)
    keys = [str(record["NO"]) for record in records]
    day1, day2, day3 = date(2025, 5, 1), date(2025, 5, 2), date(2025, 5, 3)

    def renamed(record: dict[str, Any], name: str) -> dict[str, Any]:
        return {**record, "名称": name}

    # (time, key, document or None for a deletion), delivered in this order.
    changes: list[tuple[datetime, str, dict[str, Any] | None]] = [
        *[(at(day1, 9, n), keys[n], records[n]) for n in range(6)],
        (at(day1, 23, 59, 59, 999_999), keys[6], records[6]),  # the day's last instant
        (at(day2, 0), keys[7], records[7]),  # the next day's first
        (at(day2, 10), keys[0], renamed(records[0], "二日目の名称")),
        (at(day2, 11), keys[1], None),
        (at(day3, 8), keys[2], renamed(records[2], "三日目の名称")),
        (at(day3, 9), keys[3], None),
        (at(day3, 10), keys[1], renamed(records[1], "戻ってきた")),
        (at(day1, 12), keys[4], renamed(records[4], "遅れて届いた一日目の変更")),  # late, older
    ]
    events = [
        ValidatedEvent(
            dataset_id="aed", record_key=key, schema_version=1, source="/test/aed", id=f"asof-{n}",
            type=TYPE_UPSERTED if data is not None else TYPE_DELETED, time=when, data=data,
            partition=0, offset=n,
        )
        for n, (when, key, data) in enumerate(changes)
    ]  # fmt: skip
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            sync_schema_set(session, schema_set=schema_set, now=T0)
        for start in range(0, len(events), 4):  # several deliveries, as a consumer applies them
            with session_factory(engine)() as session, session.begin():
                apply_batch(session, events=events[start : start + 4], now=datetime.now(UTC))

        def state_at(moment: datetime | None) -> list[dict[str, Any]]:
            latest: dict[str, tuple[datetime, int, dict[str, Any] | None]] = {}
            for n, (when, key, data) in enumerate(changes):
                if moment is not None and when > moment:
                    continue
                if key not in latest or (when, n) > latest[key][:2]:
                    latest[key] = (when, n, data)
            return [data for _, _, data in latest.values() if data is not None]

        root = tmp_path / "snapshots"
        with Session(engine) as session:
            for day in (day1, day2, day3):
                result = write_snapshot(session, dataset_id="aed", root=root, as_of=day)
                assert result.path == root / "dataset=aed" / f"date={day.isoformat()}" / "part-0.parquet"
                session.rollback()
            current = write_snapshot(session, dataset_id="aed", root=root)
        for day in (day1, day2, day3):
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=JST) - timedelta(microseconds=1)
            expected = expected_rows(properties, state_at(end), "NO")
            _, rows = duckdb_rows(f"{root}/dataset=aed/date={day.isoformat()}/*.parquet", properties, "NO")
            assert rows == expected, day
        # Day 1 holds what was changed and deleted afterwards, as it stood then.
        first_day = {
            row[list(properties).index("NO")]
            for row in expected_rows(properties, state_at(at(day1, 23, 59, 59, 999_999)), "NO")
        }
        assert {keys[0], keys[1], keys[3], keys[6]} <= first_day and keys[7] not in first_day
        _, now_rows = duckdb_rows(str(current.path), properties, "NO")
        assert now_rows == expected_rows(properties, state_at(None), "NO")
        with duckdb.connect() as connection:
            dates = connection.sql(
                f"SELECT date, count(*) FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true) "
                "GROUP BY date ORDER BY date"
            ).fetchall()
        assert [day for day, _ in dates][:3] == [day1, day2, day3]
        assert [count for _, count in dates][:3] == [
            len(state_at(at(d, 23, 59, 59, 999_999))) for d in (day1, day2, day3)
        ]
    finally:
        engine.dispose()


def _parquet_rows(body: bytes, properties: Mapping[str, Any], key: str) -> tuple[list[str], list[list[Any]]]:
    table = pq.read_table(pa.BufferReader(body))
    names = table.column_names
    rows = [[read_cell(properties[name], row.get(name)) for name in properties] for row in table.to_pylist()]
    rows.sort(key=lambda row: str(row[list(properties).index(key)]))
    return names, rows


def test_parquet_download_equals_the_records_api_and_is_refused_like_csv(
    database_url: str, catalog: tuple[Engine, SchemaSet, dict[str, list[dict[str, Any]]]]
) -> None:
    engine, schema_set, sent = catalog
    with Session(engine) as session:
        datasets = {dataset.id: dataset for dataset in session.scalars(select(Dataset))}
    public = sorted(d for d, dataset in datasets.items() if dataset.classification == "public")
    hidden = sorted(d for d, dataset in datasets.items() if dataset.classification != "public")
    assert public and hidden
    # Another department with a grant of two fields of an internal dataset.
    internal = next(d for d in hidden if datasets[d].classification == "internal")
    owner = datasets[internal].department_id
    grantee = next(d for d in schema_set.departments if d != owner)
    key_field = datasets[internal].record_key
    shown = [key_field, next(n for n in schema_set.latest(internal).document["properties"] if n != key_field)]
    with session_factory(engine)() as session, session.begin():
        grant(session, caller=Caller(CallerKind.department, principal=owner), dataset_id=internal,
              grantee=grantee, fields=shown)  # fmt: skip
        developer = issue_key(
            session, owner_kind=OwnerKind.developer, owner_id="dev", purpose="t", actor="t"
        ).secret
        grantee_key = issue_key(
            session, owner_kind=OwnerKind.department, owner_id=grantee, purpose="t", actor="t"
        ).secret
    with (
        serve(engine, database_url, publish_anonymous_rate_per_minute=100_000) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        for dataset_id in public:
            properties = schema_set.latest(dataset_id).document["properties"]
            key = datasets[dataset_id].record_key
            path = f"/api/v1/datasets/{dataset_id}/export"
            answer = client.get(path, params={"format": "parquet"})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/vnd.apache.parquet"
            assert f'filename="{dataset_id}.parquet"' in answer.headers["content-disposition"]
            names, rows = _parquet_rows(answer.content, properties, key)
            assert set(names) == set(properties)
            source = client.get(path, params={"format": "json"}).json()
            assert len(rows) == len(source) == len(sent[dataset_id])
            assert rows == expected_rows(properties, source, key), dataset_id
            # A filter and a projection: the same records and columns as the CSV of that query.
            first = source[0]
            chosen = {"fields": f"{key},{list(properties)[-1]}", key: str(first[key])}
            narrowed = client.get(path, params={**chosen, "format": "parquet"})
            csv_header = client.get(path, params={**chosen, "format": "csv"}).text.splitlines()[0]
            table = pq.read_table(pa.BufferReader(narrowed.content))
            assert set(table.column_names) == set(csv_header.split(","))
            assert table.num_rows == 1 and table.column(key)[0].as_py() == first[key]

        for dataset_id in hidden:
            path = f"/api/v1/datasets/{dataset_id}/export"
            for headers in ({}, {"Authorization": f"Bearer {developer}"}):
                as_csv = client.get(path, params={"format": "csv"}, headers=headers)
                as_parquet = client.get(path, params={"format": "parquet"}, headers=headers)
                assert as_parquet.status_code == as_csv.status_code == 404
                assert as_parquet.headers["content-type"] == as_csv.headers["content-type"]
                assert as_parquet.content == as_csv.content

        # The grant's fields are the columns, as they are the CSV's.
        path = f"/api/v1/datasets/{internal}/export"
        headers = {"Authorization": f"Bearer {grantee_key}"}
        granted = client.get(path, params={"format": "parquet"}, headers=headers)
        assert granted.status_code == 200, granted.text
        csv_header = client.get(path, params={"format": "csv"}, headers=headers).text.splitlines()[0]
        table = pq.read_table(pa.BufferReader(granted.content))
        assert set(table.column_names) == set(csv_header.split(",")) == set(shown)
        assert table.num_rows == len(sent[internal])

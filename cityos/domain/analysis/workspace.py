"""A department's analysis workspace: one DuckDB file holding exactly what its caller may read.

Evidence-based policy making starts with joining one's own data to the city's: a department gets a
database it can open in DuckDB (the CLI, Python, R, DBeaver) and query with SQL, offline. The file is
built from the catalog for one ``Caller`` with the same decision as every read path
(``cityos.domain.access.read_access``):

* one table per readable dataset, named by the dataset's id, holding its current records; its
  columns are the dataset's JSON Schema properties (ja names, schema order, types from
  ``cityos.domain.analysis.columns``), and for a grant of some fields only those fields;
* ``_datasets``: what the file holds (ids, ja/en titles, classification, owner, the columns given,
  row counts, when it was built);
* ``_wards``: the city's wards (全国地方公共団体コード, ja/en names), for per-ward analysis;
* ``_record_wards``: the ward each record's position falls in (point in polygon against the ward
  boundaries, as the per-ward counts of the records API), for the datasets whose location fields
  the caller reads -- filled once the catalog holds the boundaries (``cityos geo load-wards``).

A personal dataset is never included raw, whatever the decision says (only anonymized releases
leave, and a partner release only for its applicant). A dataset the caller may not read leaves no
trace: no table, no row in ``_datasets``, no name in the manifest or an error.

Building reads each dataset in batches and appends them to DuckDB one Arrow batch at a time, so
memory stays flat however large a dataset is. The file appears complete or not at all: it is
written beside its final name and renamed. One audit entry (``workspace.built``) names what was
included; the per-dataset decisions are not audited one by one, as a catalog listing's are not.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cityos.domain.access import Caller, ReadAccess, read_access
from cityos.domain.analysis.columns import arrow_schema, record_batches
from cityos.domain.analysis.history import current_records
from cityos.domain.audit import record_audit
from cityos.domain.geo.index import WardIndex
from cityos.domain.geo.store import WardIndexCache
from cityos.domain.geo.wards import known_wards
from cityos.domain.readmodel import queries
from cityos.kernel.db.models import Dataset
from cityos.kernel.errors import CityOSError
from cityos.kernel.schemas import location_fields

log = logging.getLogger(__name__)

DATASETS_TABLE = "_datasets"
WARDS_TABLE = "_wards"
RECORD_WARDS_TABLE = "_record_wards"
AUDIT_ACTION = "workspace.built"
DEFAULT_BATCH_SIZE = 5000
# Classifications whose records never go into a workspace, whatever an access decision says.
NEVER_RAW = frozenset({"personal"})


class WorkspaceTooLarge(CityOSError):
    """The readable records exceed the build's row limit; nothing was written."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the workspace would hold more than {limit:,} records")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class WorkspaceDataset:
    """One dataset of a workspace, as ``_datasets`` describes it."""

    id: str
    title_ja: str
    title_en: str
    classification: str
    owner: str
    columns: tuple[str, ...]  # the table's columns, in schema order: only the readable fields
    granted: bool  # True when a grant of some fields narrowed the columns
    rows: int


@dataclass(frozen=True, slots=True)
class WorkspaceManifest:
    """What a built workspace holds, for whoever asked for it (CLI summary, HTTP headers)."""

    actor: str
    built_at: datetime
    path: Path
    size_bytes: int
    datasets: tuple[WorkspaceDataset, ...]

    @property
    def rows(self) -> int:
        return sum(dataset.rows for dataset in self.datasets)


@dataclass(frozen=True, slots=True)
class PlannedDataset:
    """A dataset the caller may read, with the schema and columns it gets."""

    dataset: Dataset
    access: ReadAccess
    schema: pa.Schema
    # (latitude, longitude) columns when the dataset declares a location and the caller reads both
    location: tuple[str, str] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)


# Called after each appended batch: (dataset id, rows of it so far).
Progress = Callable[[str, int], None]


def readable_columns(document: Mapping[str, Any], access: ReadAccess) -> list[str]:
    """The schema's properties the access covers, in schema order."""
    properties = access.schema(document).get("properties")
    return list(properties) if isinstance(properties, Mapping) else []


def plan_workspace(session: Session, caller: Caller) -> list[PlannedDataset]:
    """Every dataset ``caller`` may read, by id, with its columns; nothing else.

    The decision is ``read_access``'s, unaudited here: the one ``workspace.built`` entry records
    what was taken.
    """
    planned = []
    for dataset in queries.list_datasets(session, classification=None):
        if dataset.classification in NEVER_RAW:
            continue
        access = read_access(session, caller, dataset, audit=False)
        if access is None:
            continue
        latest = queries.latest_schema(session, dataset_id=dataset.id)
        if latest is None:  # registered metadata without a schema holds no records yet
            continue
        columns = readable_columns(latest.document, access)
        schema = arrow_schema(latest.document, fields=columns)
        location = access.location(location_fields(dataset.meta or {}))
        if location is not None and not all(name in schema.names for name in location):
            location = None
        planned.append(PlannedDataset(dataset, access, schema, location))
    return planned


def quoted(identifier: str) -> str:
    """An SQL identifier, quoted (dataset ids hold hyphens; ja column names are not bare words)."""
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _create_table(con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema) -> None:
    # The columns' DuckDB types are those DuckDB gives the Arrow types: create from an empty batch.
    empty = schema.empty_table()
    con.register("_empty", empty)
    try:
        con.execute(f"CREATE TABLE {quoted(table)} AS SELECT * FROM _empty")
    finally:
        con.unregister("_empty")


def _append(con: duckdb.DuckDBPyConnection, table: str, batch: pa.RecordBatch) -> None:
    # One batch at a time, from this thread: DuckDB pulls an Arrow stream on its own threads, and a
    # database session must not be read from another thread than its owner's.
    con.register("_batch", batch)
    try:
        con.execute(f"INSERT INTO {quoted(table)} SELECT * FROM _batch")
    finally:
        con.unregister("_batch")


def _record_wards(index: WardIndex, planned: PlannedDataset, batch: pa.RecordBatch) -> pa.Table:
    """(dataset, record key, ward code) of each record of ``batch``; the code is null for a position
    inside no ward, or none."""
    assert planned.location is not None
    latitude, longitude = planned.location
    positions = index.locate(batch.column(longitude).to_pylist(), batch.column(latitude).to_pylist())
    keys = batch.column(planned.dataset.record_key).to_pylist()
    return pa.table(
        {
            "dataset": pa.array([planned.dataset.id] * batch.num_rows, pa.string()),
            "record_key": pa.array([None if key is None else str(key) for key in keys], pa.string()),
            "ward_code": pa.array([index.wards[p].code if p >= 0 else None for p in positions], pa.string()),
        }
    )


def _comment(con: duckdb.DuckDBPyConnection, planned: PlannedDataset) -> None:
    """Titles and English names as comments, so a SQL client shows what each table and column is."""
    dataset = planned.dataset
    table = quoted(dataset.id)
    con.execute(f"COMMENT ON TABLE {table} IS {_literal(f'{dataset.title_ja} / {dataset.title_en}')}")
    for field in planned.schema:
        metadata = field.metadata or {}
        english = metadata.get(b"x-en", b"").decode()
        description = metadata.get(b"description", b"").decode()
        text = " — ".join(part for part in (english, description) if part)
        if text:
            con.execute(f"COMMENT ON COLUMN {table}.{quoted(field.name)} IS {_literal(text)}")


def _fill(
    con: duckdb.DuckDBPyConnection,
    session: Session,
    planned: PlannedDataset,
    *,
    batch_size: int,
    budget: int | None,
    progress: Progress | None,
    wards: WardIndex | None,
) -> int:
    table = planned.dataset.id
    _create_table(con, table, planned.schema)
    # Only where the caller reads the position: a record's ward is its location, coarsened.
    place = wards is not None and bool(wards.wards) and planned.location is not None
    key_readable = planned.dataset.record_key in planned.schema.names
    documents = current_records(session, dataset_id=table, batch_size=batch_size)
    rows = 0
    for batch in record_batches(planned.schema, _projected(documents, planned.access)):
        rows += batch.num_rows
        if budget is not None and rows > budget:
            raise WorkspaceTooLarge(budget)
        _append(con, table, batch)
        if place and key_readable and wards is not None:
            con.register("_placed", _record_wards(wards, planned, batch))
            try:
                con.execute(f"INSERT INTO {RECORD_WARDS_TABLE} SELECT * FROM _placed")
            finally:
                con.unregister("_placed")
        if progress is not None:
            progress(table, rows)
    _comment(con, planned)
    return rows


def _projected(batches: Iterable[list[dict[str, Any]]], access: ReadAccess) -> Iterator[list[dict[str, Any]]]:
    # The schema already holds only the readable columns; projecting the documents too means no
    # unreadable value is ever handed to the Arrow builder, whatever it does with extra keys.
    for documents in batches:
        yield [access.project(document) for document in documents]


def _write_catalog_tables(
    con: duckdb.DuckDBPyConnection, included: list[WorkspaceDataset], built_at: datetime
) -> None:
    con.execute(
        f"CREATE TABLE {DATASETS_TABLE} (id VARCHAR PRIMARY KEY, title_ja VARCHAR, title_en VARCHAR, "
        "classification VARCHAR, owner VARCHAR, fields VARCHAR[], granted BOOLEAN, row_count BIGINT, "
        "built_at TIMESTAMPTZ)"
    )
    con.executemany(
        f"INSERT INTO {DATASETS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [d.id, d.title_ja, d.title_en, d.classification, d.owner, list(d.columns), d.granted, d.rows,
             built_at]
            for d in included
        ],
    )  # fmt: skip
    con.execute(
        f"COMMENT ON TABLE {DATASETS_TABLE} IS 'このファイルのデータセット / the datasets in this file'"
    )
    con.execute(
        f"CREATE TABLE {WARDS_TABLE} (code VARCHAR PRIMARY KEY, n03_code VARCHAR, name_ja VARCHAR, "
        "name_en VARCHAR)"
    )
    con.executemany(
        f"INSERT INTO {WARDS_TABLE} VALUES (?, ?, ?, ?)",
        [
            [w.code, w.n03_code, w.name_ja, w.name_en]
            for w in sorted(known_wards().values(), key=lambda w: w.code)
        ],
    )
    con.execute(
        f"COMMENT ON TABLE {RECORD_WARDS_TABLE} IS '位置から求めた区 / the ward each record''s position is in'"
    )
    con.execute(
        f"COMMENT ON TABLE {WARDS_TABLE} IS '行政区（全国地方公共団体コード）/ the city''s wards (local government codes)'"
    )


def _audit(session: Session, caller: Caller, manifest: WorkspaceManifest) -> None:
    """One entry for the whole build, in a transaction of its own (the read session never commits)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    detail: dict[str, object] = {
        "datasets": [d.id for d in manifest.datasets],
        "fields": {d.id: list(d.columns) for d in manifest.datasets if d.granted},
        "rows": manifest.rows,
    }
    if caller.key_id:
        detail["key_id"] = caller.key_id
    with Session(engine) as audit_session, audit_session.begin():
        record_audit(
            audit_session,
            actor=caller.actor,
            action=AUDIT_ACTION,
            subject_kind="workspace",
            subject_id=caller.principal or caller.actor,
            detail=detail,
            at=manifest.built_at,
        )


def build_workspace(
    session: Session,
    caller: Caller,
    out: Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_rows: int | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> WorkspaceManifest:
    """Write ``caller``'s workspace to ``out`` (replaced whole if it exists) and audit it.

    ``session`` is a read session (its transaction gives every table one consistent view on
    PostgreSQL); the audit entry is written on an own session of the same engine. ``max_rows``
    caps the records of all tables together: beyond it, ``WorkspaceTooLarge`` and no file.
    """
    built_at = now or datetime.now(UTC)
    planned = plan_workspace(session, caller)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    included: list[WorkspaceDataset] = []
    try:
        con = duckdb.connect(str(partial))
        try:
            # Batches are appended one by one; DuckDB's own threads would only compete with the
            # catalog read for the machine.
            con.execute("SET threads = 1")
            # DuckDB keeps written blocks in its buffer until a checkpoint; a ceiling makes it write
            # them out instead of growing with the dataset.
            con.execute("SET memory_limit = '256MB'")
            con.execute(
                f"CREATE TABLE {RECORD_WARDS_TABLE} (dataset VARCHAR, record_key VARCHAR, ward_code VARCHAR)"
            )
            wards = WardIndexCache().index(session, "workspace") if any(p.location for p in planned) else None
            for item in planned:
                budget = None if max_rows is None else max_rows - sum(d.rows for d in included)
                rows = _fill(
                    con, session, item, batch_size=batch_size, budget=budget, progress=progress, wards=wards
                )
                dataset = item.dataset
                included.append(
                    WorkspaceDataset(
                        id=dataset.id,
                        title_ja=dataset.title_ja,
                        title_en=dataset.title_en,
                        classification=dataset.classification,
                        owner=dataset.department_id,
                        columns=item.columns,
                        granted=item.access.fields is not None,
                        rows=rows,
                    )
                )
            _write_catalog_tables(con, included, built_at)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        manifest = WorkspaceManifest(
            actor=caller.actor,
            built_at=built_at,
            path=out,
            size_bytes=partial.stat().st_size,
            datasets=tuple(included),
        )
        # Audited before the file is handed over: a workspace nobody can account for must not exist.
        _audit(session, caller, manifest)
        os.replace(partial, out)
    finally:
        with suppress(FileNotFoundError):
            partial.unlink()
        with suppress(FileNotFoundError):
            Path(f"{partial}.wal").unlink()
    log.info("workspace for %s: %d datasets, %d rows", caller.actor, len(included), manifest.rows)
    return manifest

"""Analysis-ready snapshots: a dataset's records on one day, as Parquet in a Hive layout.

``<root>/dataset=<id>/date=<YYYY-MM-DD>/part-0.parquet``: DuckDB's
``read_parquet('<root>/**/*.parquet', hive_partitioning = true)``, pandas and pyarrow datasets read
``dataset`` and ``date`` from the folder names as columns, so one query spans datasets and days. The
file itself holds the records' fields only (``columns.arrow_schema``), in record-key order.

``date`` is a day in Japan. The current state is written under today's date (JST) and replaced by
each later run of the same day; ``as_of`` writes the state at the end of that day (JST), read from
the catalog's change log (``history``), so a past day's file can be written, or written again, at any
time and holds the same rows.

Every classification is written: the snapshot folder is the city's own analysis store, to be kept
where only the city's analysts can read it, never published as it is.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.analysis import history
from cityos.domain.analysis.columns import BatchBuilder, arrow_schema, record_batches
from cityos.domain.analysis.parquet import with_metadata, write_file
from cityos.kernel.db.models import Dataset, SchemaVersionRow
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.timeutil import utc_now

log = logging.getLogger("cityos.analysis")

FILE_NAME = "part-0.parquet"
# Records read from the catalog at a time: a batch of the widest records stays a few megabytes.
READ_BATCH = 5_000
# A dataset id becomes a folder name: nothing that could climb out of the root or confuse a Hive
# reader's key=value parsing.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SnapshotError(Exception):
    """A snapshot that cannot be written (unknown dataset, no schema); the message says why."""


def japan_day(moment: datetime) -> date:
    """The calendar day in Japan at ``moment`` (aware)."""
    return moment.astimezone(history.TOKYO).date()


def snapshot_path(root: Path, dataset_id: str, day: date) -> Path:
    """Where the snapshot of ``dataset_id`` on ``day`` lives under ``root``."""
    if not _SAFE_ID.match(dataset_id) or ".." in dataset_id:
        raise SnapshotError(f"dataset id {dataset_id!r} cannot name a snapshot folder")
    return root / f"dataset={dataset_id}" / f"date={day.isoformat()}" / FILE_NAME


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    """One written snapshot: where, how many rows and bytes, and how long it took."""

    dataset_id: str
    classification: str
    day: date
    path: Path
    rows: int
    bytes: int
    seconds: float
    # Stored values that did not fit their column (written as null; see ``columns.BatchBuilder``).
    outside_schema: int = 0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1_000_000 / self.seconds if self.seconds > 0 else 0.0


def dataset_ids(session: Session) -> list[str]:
    """Every dataset of the catalog, whatever its classification, by id."""
    return list(session.scalars(select(Dataset.id).order_by(Dataset.id)))


def schema_at(session: Session, dataset_id: str, at: datetime | None) -> SchemaVersionRow | None:
    """The schema version the snapshot's columns come from: the newest one, or for a past state the
    newest registered by then (the oldest when even that came later, as for records loaded before
    their schema's registration was recorded)."""
    versions = select(SchemaVersionRow).where(SchemaVersionRow.dataset_id == dataset_id)
    if at is not None:
        before = session.scalars(
            versions.where(SchemaVersionRow.registered_at <= at).order_by(SchemaVersionRow.version.desc())
        ).first()
        if before is not None:
            return before
        return session.scalars(versions.order_by(SchemaVersionRow.version)).first()
    return session.scalars(versions.order_by(SchemaVersionRow.version.desc())).first()


# Schema URI -> its property names in the schema file's order.
PropertyOrder = Mapping[str, Sequence[str]]


def file_property_order(schemas_dir: Path) -> dict[str, list[str]]:
    """Each schema version's property order as its file gives it.

    PostgreSQL keeps a stored document (JSONB) with its object keys in an order of its own, so the
    catalog's copy of a schema no longer says in which order its author listed the properties;
    the schema files, from which every version is registered, do. Empty when the folder cannot
    be read: the stored order is used then.
    """
    try:
        schema_set = load_schema_dir(schemas_dir)
    except Exception:  # an unreadable folder costs the column order, never the snapshot
        log.warning("schema files in %s unreadable: columns in the catalog's stored order", schemas_dir)
        return {}
    return {
        uri: list(properties)
        for uri, version in schema_set.versions.items()
        if isinstance(properties := version.document.get("properties"), Mapping)
    }


def in_file_order(document: Mapping[str, Any], order: Sequence[str] | None) -> dict[str, Any]:
    """``document`` with its properties in ``order`` (any it does not name after, as stored)."""
    properties = document.get("properties")
    if order is None or not isinstance(properties, Mapping):
        return dict(document)
    ranked = {name: rank for rank, name in enumerate(order)}
    stored = {name: rank for rank, name in enumerate(properties)}
    names = sorted(properties, key=lambda name: (ranked.get(name, len(ranked)), stored[name]))
    return {**document, "properties": {name: properties[name] for name in names}}


def write_snapshot(
    session: Session,
    *,
    dataset_id: str,
    root: Path,
    as_of: date | None = None,
    now: datetime | None = None,
    batch_size: int = READ_BATCH,
    on_rows: Callable[[int], None] | None = None,
    property_order: PropertyOrder | None = None,
) -> SnapshotResult:
    """Write ``dataset_id``'s snapshot under ``root``: its current records under today's date in
    Japan, or with ``as_of`` its records at the end of that day (JST). Atomic: readers see the
    previous file of that day or the complete new one. ``property_order`` (``file_property_order``)
    puts the columns in the schema file's order whatever the catalog's database."""
    started = time.perf_counter()
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise SnapshotError(f"no dataset {dataset_id!r} in the catalog")
    moment = now or utc_now()
    at = None if as_of is None else history.end_of_day_jst(as_of)
    day = japan_day(moment) if as_of is None else as_of
    path = snapshot_path(root, dataset_id, day)
    version = schema_at(session, dataset_id, at)
    if version is None:
        raise SnapshotError(f"dataset {dataset_id!r} has no registered schema: its columns are unknown")
    order = None if property_order is None else property_order.get(version.uri)
    document = in_file_order(version.document, order)
    schema = with_metadata(arrow_schema(document), _provenance(dataset, version, day, at, moment))
    documents = (
        history.current_records(session, dataset_id=dataset_id, batch_size=batch_size)
        if at is None
        else history.records_as_of(session, dataset_id=dataset_id, at=at, batch_size=batch_size)
    )
    builder = BatchBuilder(schema)
    written = write_file(
        path,
        schema,
        record_batches(schema, documents, builder=builder),
        on_rows=on_rows,
        footer=lambda: _outside_schema(builder),
    )
    if builder.outside_schema:
        log.warning(
            "snapshot of %s: values that escaped the schema written as null: %s",
            dataset_id,
            dict(builder.outside_schema),
        )
    return SnapshotResult(
        dataset_id=dataset_id,
        classification=dataset.classification,
        day=day,
        path=path,
        rows=written.rows,
        bytes=written.bytes,
        seconds=time.perf_counter() - started,
        outside_schema=sum(builder.outside_schema.values()),
    )


def _outside_schema(builder: BatchBuilder) -> dict[str, str]:
    """Footer metadata naming the columns where values that escaped the schema were left null."""
    if not builder.outside_schema:
        return {}
    return {"cityos.outside_schema": json.dumps(dict(builder.outside_schema), ensure_ascii=False)}


def _provenance(
    dataset: Dataset, version: SchemaVersionRow, day: date, at: datetime | None, moment: datetime
) -> dict[str, str]:
    """Key-value metadata of the file: what it holds and as of when (read by ``pyarrow`` and
    DuckDB's ``parquet_kv_metadata``)."""
    meta: dict[str, Any] = dataset.meta if isinstance(dataset.meta, dict) else {}
    named = meta.get("title")
    title: dict[str, Any] = named if isinstance(named, dict) else {}
    return {
        "cityos.dataset": dataset.id,
        "cityos.title_ja": str(title.get("ja", dataset.title_ja)),
        "cityos.title_en": str(title.get("en", dataset.title_en)),
        "cityos.classification": dataset.classification,
        "cityos.record_key": dataset.record_key,
        "cityos.schema_version": str(version.version),
        "cityos.date": day.isoformat(),
        # The instant the rows stand for: the end of the day for a past state, the write otherwise.
        "cityos.as_of": (at or moment).isoformat(),
        "cityos.written_at": utc_now().isoformat(),
    }

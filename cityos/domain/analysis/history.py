"""A dataset's records now, and as they stood at any past instant, read in key order in batches.

The past comes from the catalog's change log (``record_changes``): for each record key, the change
that wins among those with an event time at or before the instant is the one with the greatest
(event time, partition, offset) -- the catalog's own rule for which event a record shows, so as of
the newest change the state equals ``records``. A deletion winning means the record was absent. A
version names one message of the validated topic, so two changes of a record never share one;
should they anyway (events written by hand), the one of the earlier batch wins, as in ``records``,
and within one batch the smaller (source, id).

Events applied through the catalog's batches are logged there, and so are an anonymized release's
records, written by the catalog itself in one go at the release's creation: a release reads as empty
before that instant and as it is now after it.

Both readers stream: the database sends rows as they are consumed (a server-side cursor on
PostgreSQL, SQLite's stepping cursor), and only ``batch_size`` of them are held at a time, so a
dataset of a million records is read in constant memory. They run on the caller's session and
transaction and change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, false, func, select
from sqlalchemy.orm import Session

from cityos.kernel.db.history_models import RecordChange
from cityos.kernel.db.models import Record
from cityos.kernel.timeutil import require_aware

__all__ = ["TOKYO", "as_of_query", "current_query", "current_records", "end_of_day_jst", "records_as_of"]

# The city's day: an as-of snapshot of a date stands for the end of that date in Japan.
TOKYO: Final = ZoneInfo("Asia/Tokyo")
# The smallest step of a stored instant (microseconds on both backends).
_TICK: Final = timedelta(microseconds=1)


def end_of_day_jst(day: date) -> datetime:
    """The last instant of ``day`` in Asia/Tokyo, as an aware UTC datetime.

    The microsecond before the next day's midnight, so that ``event_time <= end_of_day_jst(day)``
    takes every change of the day and none at the stroke of the next one.
    """
    midnight_after = datetime.combine(day + timedelta(days=1), time(0), tzinfo=TOKYO)
    return (midnight_after - _TICK).astimezone(UTC)


def as_of_query(dataset_id: str, at: datetime) -> Select[tuple[str, Any]]:
    """(record key, document) of each record of ``dataset_id`` present at ``at``, in key order."""
    moment = require_aware(at, "as-of instant")
    rank = (
        func.row_number()
        .over(
            partition_by=RecordChange.record_key,
            order_by=(
                RecordChange.event_time.desc(),
                RecordChange.kafka_partition.desc(),
                RecordChange.kafka_offset.desc(),
                # Ties cannot arise from the topic; if they do, the earlier batch wins (see above).
                RecordChange.applied_at.asc(),
                RecordChange.event_source.asc(),
                RecordChange.event_id.asc(),
            ),
        )
        .label("rank")
    )
    ranked = (
        select(RecordChange.record_key, RecordChange.data, RecordChange.deleted, rank)
        .where(RecordChange.dataset_id == dataset_id, RecordChange.event_time <= moment)
        .subquery("ranked")
    )
    return (
        select(ranked.c.record_key, ranked.c.data)
        .where(and_(ranked.c.rank == 1, ranked.c.deleted == false()))
        .order_by(ranked.c.record_key)
    )


def current_query(dataset_id: str) -> Select[tuple[str, Any]]:
    """(record key, document) of each live record of ``dataset_id``, in key order."""
    return (
        select(Record.record_key, Record.data)
        .where(Record.dataset_id == dataset_id, Record.deleted_at.is_(None))
        .order_by(Record.record_key)
    )


def _documents(
    session: Session, query: Select[tuple[str, Any]], batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    # Checked here, at the call, rather than at the first batch: the caller learns at once.
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    return _stream(session, query, batch_size)


def _stream(
    session: Session, query: Select[tuple[str, Any]], batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    connection = session.connection()
    result = connection.execution_options(stream_results=True, yield_per=batch_size).execute(query)
    try:
        for rows in result.partitions(batch_size):
            yield [data for _, data in rows]
    finally:
        # An abandoned read closes its cursor (a server-side one on PostgreSQL) when collected.
        result.close()


def records_as_of(
    session: Session, *, dataset_id: str, at: datetime, batch_size: int = 5000
) -> Iterator[list[dict[str, Any]]]:
    """The documents of the records of ``dataset_id`` as they stood at ``at`` (aware), in record-key
    order, ``batch_size`` at a time. Empty when the dataset had no records then (or is unknown)."""
    return _documents(session, as_of_query(dataset_id, at), batch_size)


def current_records(
    session: Session, *, dataset_id: str, batch_size: int = 5000
) -> Iterator[list[dict[str, Any]]]:
    """The documents of the live records of ``dataset_id`` (from ``records``), in record-key order,
    ``batch_size`` at a time."""
    return _documents(session, current_query(dataset_id), batch_size)

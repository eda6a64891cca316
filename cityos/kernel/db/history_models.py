"""The catalog's change log: every record event the catalog accepted, so a past state can be rebuilt.

``records`` keeps each record's current state only. ``record_changes`` keeps one row per event in the
ledger -- applied and stale alike: a stale event lost to a newer one, yet it still says what the record
was at its own time -- so a dataset as of any instant is, per record key, the change with the greatest
(event time, partition, offset) at or before that instant, absent when that change is a deletion
(``cityos.domain.analysis.history``). Written by ``services.catalog.store.apply_batch`` in the
transaction that writes the records and the ledger. Importing Base from cityos.kernel.db.models
registers the table on its metadata.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cityos.kernel.db.models import Base, UTCDateTime

__all__ = ["Base", "RecordChange"]

# As the catalog's documents (JSONB on PostgreSQL), but a deletion's missing document is SQL NULL on
# every write path, never the JSON value null.
_Document = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class RecordChange(Base):
    """One accepted record event: an upsert's document, or a deletion (``deleted``, no document).

    Keyed like the ledger (source + id): a redelivered event is a duplicate and writes nothing. No
    foreign key to ``datasets``: like the ledger, the log outlives any reorganisation of the rows it
    describes, and a bulk insert per batch checks nothing it does not have to.
    """

    __tablename__ = "record_changes"
    __table_args__ = (
        # A dataset's changes up to an instant: the as-of read's filter, and "what changed that day".
        Index("ix_record_changes_dataset_id_event_time", "dataset_id", "event_time"),
    )

    event_source: Mapped[str] = mapped_column(String(500), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(64))
    record_key: Mapped[str] = mapped_column(String(300))
    event_time: Mapped[datetime] = mapped_column(UTCDateTime())
    # Position in the validated topic: with the event time, the catalog's ordering of changes.
    kafka_partition: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(BigInteger)
    schema_version: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean)
    # The upsert's document; None for a deletion (a deleted record's data is not kept anywhere).
    data: Mapped[dict[str, Any] | None] = mapped_column(_Document, nullable=True)
    # When the catalog accepted the event (its batch's "now").
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())

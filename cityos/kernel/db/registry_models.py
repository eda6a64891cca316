"""Tables of the registry area: per-dataset compatibility levels and the record of dead-letter replays.

Dead-lettered messages themselves stay in the dead-letter topic (original bytes and headers, nothing
copied); the database only remembers which of them were replayed, so a replay is never sent twice
unless forced.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cityos.kernel.db.models import Base, UTCDateTime

__all__ = ["Base", "DeadLetterReplay", "DeadLetterReplayTally", "SchemaCompatibility"]


class SchemaCompatibility(Base):
    """A dataset's compatibility level, when set explicitly (otherwise BACKWARD)."""

    __tablename__ = "schema_compatibility"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(32))  # a cityos.domain.registry.compatibility.Mode value
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))


class DeadLetterReplay(Base):
    """One dead-lettered message (topic, partition, offset) sent back to its department topic."""

    __tablename__ = "deadletter_replays"

    deadletter_topic: Mapped[str] = mapped_column(String(300), primary_key=True)
    deadletter_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    deadletter_offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200))
    dataset_id: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    target_topic: Mapped[str] = mapped_column(String(300))
    replayed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    replayed_by: Mapped[str] = mapped_column(String(200))
    times: Mapped[int] = mapped_column(Integer)  # more than 1 only when forced


class DeadLetterReplayTally(Base):
    """Replay attempts by outcome (replayed, skipped, refused), counted by every process that replays
    (the CLI and the admin API alike), so the catalog's metric sees them all."""

    __tablename__ = "deadletter_replay_tally"

    outcome: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)

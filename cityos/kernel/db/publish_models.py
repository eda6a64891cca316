"""Tables of the publish area. Importing Base from cityos.kernel.db.models registers them on its metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cityos.kernel.db.models import Base, UTCDateTime

__all__ = ["Base", "UsageCounter"]


class UsageCounter(Base):
    """Served traffic aggregated per hour x dataset x caller x format.

    The publish service adds to these counters in memory and flushes them periodically, so the
    request path never waits for a write. ``key_id`` is a key's public id ('' for anonymous
    callers, who form one class): never a secret, never an address.
    """

    __tablename__ = "usage_counters"

    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_class: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    format: Mapped[str] = mapped_column(String(16), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    rows: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    bytes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))

"""Tables of the access area: grants of internal datasets to departments, and feed subscriptions.

Importing Base from cityos.kernel.db.models registers them on its metadata.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cityos.kernel.db.models import Base, JsonDoc, UTCDateTime

__all__ = ["AccessGrant", "Base", "FeedSubscription"]


class AccessGrant(Base):
    """An owning department (or an administrator) lets another department read an internal dataset.

    Rows are never deleted: a revoke sets ``revoked_at``, so the history stays answerable ("who
    could read what, when"). At most one unrevoked grant per (dataset, grantee) -- enforced by the
    service functions, since a partial unique index is not portable. ``fields`` None means every
    field; otherwise the granted field names (the record key is always readable: it is the
    record's identity and travels in every Kafka key).
    """

    __tablename__ = "access_grants"
    __table_args__ = (Index("ix_access_grants_dataset_grantee", "dataset_id", "grantee_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    grantee_id: Mapped[str] = mapped_column(ForeignKey("departments.id"), index=True)
    fields: Mapped[list[str] | None] = mapped_column(JsonDoc, nullable=True)
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class FeedSubscription(Base):
    """A department's feed of one dataset on the Kafka topic ``topic``.

    ``state``: ``active`` (the republisher delivers; whether it has started on a partition, and
    from which offset, is kept in the republisher's transactional state topic, not here) or
    ``cancelled``. At most one active subscription per (department, dataset): the feed topic is
    named after the pair, and the pair bounds the metrics label.
    """

    __tablename__ = "feed_subscriptions"
    __table_args__ = (Index("ix_feed_subscriptions_department_dataset", "department_id", "dataset_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    # Equality conditions on declared (and readable) fields; {} delivers every record.
    filter: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    # Field names to deliver; None means every readable field.
    projection: Mapped[list[str] | None] = mapped_column(JsonDoc, nullable=True)
    start_mode: Mapped[str] = mapped_column(String(16))  # snapshot | now
    topic: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16), index=True)  # active | cancelled
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

"""Tables of the release area: proposal calls, proposals, anonymized releases.

Importing Base from cityos.kernel.db.models registers them on its metadata. Rows are never deleted:
decisions, contracts and cancellations are columns, so the history stays answerable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cityos.kernel.db.models import Base, JsonDoc, UTCDateTime

__all__ = ["Base", "ProposalCall", "Release", "ReleaseProposal"]


class ProposalCall(Base):
    """提案募集: a department invites proposals for one personal dataset over a period (≥ 30 days)."""

    __tablename__ = "release_calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReleaseProposal(Base):
    """An applicant's proposal under a call: submitted → accepted | rejected → contracted → cancelled."""

    __tablename__ = "release_proposals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("release_calls.id"), index=True)
    applicant_id: Mapped[str] = mapped_column(String(200), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    items: Mapped[list[str]] = mapped_column(JsonDoc)
    use_period: Mapped[str] = mapped_column(String(100))
    safety_measures: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    contract_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    contracted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Release(Base):
    """One anonymized release: the verified file, the catalog dataset it became, who may read it.

    ``seed`` is unique: it drives the shuffle and the pseudonyms, so no two releases share row ids.
    The processing method (levels, suppression, profile hash) lives in the restricted audit record.
    """

    __tablename__ = "releases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), unique=True)
    classification: Mapped[str] = mapped_column(String(16))  # public | partner
    proposal_id: Mapped[str | None] = mapped_column(ForeignKey("release_proposals.id"), nullable=True)
    applicant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger, unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)  # the verified CSV, served byte for byte
    row_count: Mapped[int] = mapped_column(Integer)
    overview: Mapped[dict[str, Any]] = mapped_column(JsonDoc)  # the published 概要
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

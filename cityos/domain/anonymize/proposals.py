"""提案募集 and its proposals: call (≥ 30 days) → proposal → accept/reject with reasons →
contract → (cancel). Every step is audited; functions never commit (the caller owns the transaction).

Also the public 個人情報ファイル簿 entry of each personal dataset: its items, whether proposals are
invited, where to apply, and the 概要 of each release (never the processing method).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.anonymize.profile import PROFILES_DIR, ProfileError, load_profile, profile_path
from cityos.domain.anonymize.releases import ReleaseResult, create_release, latest_schema
from cityos.domain.audit import record_audit
from cityos.domain.wire import Instant
from cityos.kernel.db.models import Dataset
from cityos.kernel.db.release_models import ProposalCall, Release, ReleaseProposal

MIN_CALL_DAYS = 30  # 法111条 / 規則: a call stays open at least 30 days


class ProposalError(Exception):
    """A workflow step that is not allowed; ``reasons`` lists every reason."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def open_call(
    session: Session,
    *,
    dataset_id: str,
    title: str,
    opens_at: datetime,
    closes_at: datetime,
    actor: str,
    now: datetime | None = None,
) -> ProposalCall:
    dataset = session.get(Dataset, dataset_id)
    reasons = []
    if dataset is None or dataset.classification != "personal":
        reasons.append(f"{dataset_id} is not a personal dataset")
    if closes_at - opens_at < timedelta(days=MIN_CALL_DAYS):
        reasons.append(f"a call must stay open at least {MIN_CALL_DAYS} days")
    if reasons:
        raise ProposalError(reasons)
    call = ProposalCall(
        id=f"call-{secrets.token_hex(4)}",
        dataset_id=dataset_id,
        title=title,
        opens_at=opens_at,
        closes_at=closes_at,
        created_by=actor,
        created_at=now or datetime.now(UTC),
    )
    session.add(call)
    session.flush()
    _audit(
        session,
        actor,
        "proposal_call.opened",
        "proposal_call",
        call.id,
        {"dataset": dataset_id, "opens_at": opens_at.isoformat(), "closes_at": closes_at.isoformat()},
    )
    return call


def releasable_items(session: Session, dataset_id: str, profiles_dir: Path = PROFILES_DIR) -> list[str]:
    """The columns a release of this dataset can hold (its profile's output, minus the row id)."""
    try:
        profile = load_profile(profile_path(dataset_id, profiles_dir))
    except ProfileError:
        return []
    return [c for c in profile.output_columns if c != profile.row_id]


def submit_proposal(
    session: Session,
    *,
    call_id: str,
    applicant_id: str,
    purpose: str,
    items: list[str],
    use_period: str,
    safety_measures: str,
    now: datetime | None = None,
    profiles_dir: Path = PROFILES_DIR,
) -> ReleaseProposal:
    now = now or datetime.now(UTC)
    call = session.get(ProposalCall, call_id)
    if call is None:
        raise ProposalError([f"no call {call_id}"])
    reasons = []
    if not call.opens_at <= now < call.closes_at:
        reasons.append(
            f"call {call_id} is not open now (open {call.opens_at:%Y-%m-%d} to {call.closes_at:%Y-%m-%d})"
        )
    allowed = releasable_items(session, call.dataset_id, profiles_dir)
    unknown = [item for item in items if item not in allowed]
    if unknown:
        reasons.append(f"items not offered by this dataset: {', '.join(unknown)}")
    for name, text in (
        ("purpose", purpose),
        ("use_period", use_period),
        ("safety_measures", safety_measures),
    ):
        if not text.strip():
            reasons.append(f"{name} is required")
    if not items:
        reasons.append("items: name at least one")
    if reasons:
        raise ProposalError(reasons)
    proposal = ReleaseProposal(
        id=f"prop-{secrets.token_hex(4)}",
        call_id=call_id,
        applicant_id=applicant_id,
        purpose=purpose,
        items=items,
        use_period=use_period,
        safety_measures=safety_measures,
        status="submitted",
        submitted_at=now,
    )
    session.add(proposal)
    session.flush()
    _audit(
        session,
        applicant_id,
        "proposal.submitted",
        "proposal",
        proposal.id,
        {"call": call_id, "items": items},
    )
    return proposal


def _proposal(session: Session, proposal_id: str) -> ReleaseProposal:
    proposal = session.get(ReleaseProposal, proposal_id)
    if proposal is None:
        raise ProposalError([f"no proposal {proposal_id}"])
    return proposal


def decide(
    session: Session, *, proposal_id: str, accept: bool, reason: str, actor: str, now: datetime | None = None
) -> ReleaseProposal:
    """Accept or reject a submitted proposal; the reason is required either way (it is notified)."""
    proposal = _proposal(session, proposal_id)
    reasons = []
    if proposal.status != "submitted":
        reasons.append(f"proposal {proposal_id} is {proposal.status}, not submitted")
    if not reason.strip():
        reasons.append("a decision needs its reason")
    if reasons:
        raise ProposalError(reasons)
    proposal.status = "accepted" if accept else "rejected"
    proposal.decided_by, proposal.decided_at, proposal.decision_reason = (
        actor,
        now or datetime.now(UTC),
        reason,
    )
    _audit(session, actor, f"proposal.{proposal.status}", "proposal", proposal.id, {"reason": reason})
    return proposal


def record_contract(
    session: Session, *, proposal_id: str, contract_ref: str, actor: str, now: datetime | None = None
) -> ReleaseProposal:
    proposal = _proposal(session, proposal_id)
    if proposal.status != "accepted":
        raise ProposalError(
            [f"proposal {proposal_id} is {proposal.status}: only an accepted proposal is contracted"]
        )
    proposal.status, proposal.contract_ref, proposal.contracted_at = (
        "contracted",
        contract_ref,
        now or datetime.now(UTC),
    )
    _audit(session, actor, "proposal.contracted", "proposal", proposal.id, {"contract": contract_ref})
    return proposal


def cancel(
    session: Session, *, proposal_id: str, reason: str, actor: str, now: datetime | None = None
) -> ReleaseProposal:
    """Cancel (契約の解除): the applicant's release stops being readable at once."""
    proposal = _proposal(session, proposal_id)
    if proposal.status not in ("accepted", "contracted"):
        raise ProposalError([f"proposal {proposal_id} is {proposal.status}: nothing to cancel"])
    if not reason.strip():
        raise ProposalError(["a cancellation needs its reason"])
    proposal.status, proposal.cancelled_at, proposal.cancel_reason = (
        "cancelled",
        now or datetime.now(UTC),
        reason,
    )
    _audit(session, actor, "proposal.cancelled", "proposal", proposal.id, {"reason": reason})
    return proposal


def release_for_proposal(
    session: Session, *, proposal_id: str, actor: str, now: datetime | None = None
) -> ReleaseResult:
    """The accepted (or contracted) proposal's partner release, readable by its applicant only: it
    holds exactly the items the proposal asked for (and the row id), not the profile's every column."""
    proposal = _proposal(session, proposal_id)
    if proposal.status not in ("accepted", "contracted"):
        raise ProposalError(
            [f"proposal {proposal_id} is {proposal.status}: only an accepted proposal gets a release"]
        )
    call = session.get(ProposalCall, proposal.call_id)
    assert call is not None  # foreign key
    return create_release(
        session,
        source_dataset_id=call.dataset_id,
        classification="partner",
        operator=actor,
        applicant_id=proposal.applicant_id,
        proposal_id=proposal.id,
        items=list(proposal.items),
        now=now,
    )


class ProposalView(BaseModel):
    """A proposal as the admin API and ``cityos release`` show it, with its whole history."""

    id: str
    call: str
    applicant: str
    purpose: str
    items: list[str]
    use_period: str
    safety_measures: str
    status: str
    submitted_at: Instant
    decided_at: Instant | None
    decision_reason: str | None
    contract_ref: str | None
    contracted_at: Instant | None
    cancelled_at: Instant | None
    cancel_reason: str | None

    @classmethod
    def of(cls, proposal: ReleaseProposal) -> ProposalView:
        return cls(
            id=proposal.id,
            call=proposal.call_id,
            applicant=proposal.applicant_id,
            purpose=proposal.purpose,
            items=proposal.items,
            use_period=proposal.use_period,
            safety_measures=proposal.safety_measures,
            status=proposal.status,
            submitted_at=proposal.submitted_at,
            decided_at=proposal.decided_at,
            decision_reason=proposal.decision_reason,
            contract_ref=proposal.contract_ref,
            contracted_at=proposal.contracted_at,
            cancelled_at=proposal.cancelled_at,
            cancel_reason=proposal.cancel_reason,
        )


class CallView(BaseModel):
    """A call for proposals: which dataset, and when proposals are accepted."""

    id: str
    dataset: str
    title: str
    opens_at: Instant
    closes_at: Instant

    @classmethod
    def of(cls, call: ProposalCall) -> CallView:
        return cls(
            id=call.id,
            dataset=call.dataset_id,
            title=call.title,
            opens_at=call.opens_at,
            closes_at=call.closes_at,
        )


def file_register(
    session: Session, *, profiles_dir: Path = PROFILES_DIR, now: datetime | None = None
) -> list[dict[str, Any]]:
    """個人情報ファイル簿: one public entry per personal dataset (items, calls, where to apply, 概要)."""
    now = now or datetime.now(UTC)
    entries = []
    for dataset in session.scalars(
        select(Dataset).where(Dataset.classification == "personal").order_by(Dataset.id)
    ):
        schema = latest_schema(session, dataset.id) or {}
        register = _register_info(dataset.id, profiles_dir)
        calls = session.scalars(select(ProposalCall).where(ProposalCall.dataset_id == dataset.id)).all()
        releases = session.scalars(select(Release).where(Release.source_dataset_id == dataset.id)).all()
        entries.append(
            {
                "dataset": dataset.id,
                "名称": register.get("名称", dataset.title_ja),
                "利用目的": register.get("利用目的"),
                "記録項目": [prop.get("title", name) for name, prop in schema.get("properties", {}).items()],
                "提案募集の対象": bool(releasable_items(session, dataset.id, profiles_dir)),
                "提案の提出先": register.get("提案の提出先"),
                "募集中": [
                    CallView.of(c).model_dump(mode="json") for c in calls if c.opens_at <= now < c.closes_at
                ],
                "匿名加工情報の概要": [r.overview for r in releases],
            }
        )
    return entries


def _register_info(dataset_id: str, profiles_dir: Path) -> dict[str, Any]:
    path = profiles_dir / f"{dataset_id}.register.json"
    if not path.exists():
        return {}
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _audit(
    session: Session, actor: str, action: str, kind: str, subject: str, detail: dict[str, Any]
) -> None:
    record_audit(session, actor=actor, action=action, subject_kind=kind, subject_id=subject, detail=detail)

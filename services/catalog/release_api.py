"""Catalog admin API for anonymized releases: calls, proposals, decisions, contracts, releases.

Who may do what, from the ``Authorization: Bearer`` credential (``admin_auth``): an administrator's
personal credential, or a department key for the department owning the personal dataset, runs calls, decisions, contracts,
cancellations and releases; an applicant key submits its own proposals. The actor in the audit log
is the credential's owner, never a name from the body. A refused step answers 409 with every
reason; the method of a release never appears here (only its 概要 and checksum).
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.access import Caller, CallerKind
from cityos.domain.anonymize import proposals as workflow
from cityos.domain.anonymize.gate import OffendingRecords
from cityos.domain.anonymize.releases import (
    ReleaseError,
    ReleaseResult,
    ReleaseSummary,
    create_release,
    list_releases,
)
from cityos.kernel.db.models import Dataset
from cityos.kernel.db.release_models import ProposalCall, ReleaseProposal
from cityos.kernel.settings import Settings
from services.catalog.admin_auth import credential_of
from services.catalog.context import RouterContext, app_context
from services.catalog.error_responses import refusals

OUTCOMES = ("passed", "refused")
STEPS = ("call", "proposal", "decision", "contract", "cancel")


class ReleaseMetrics:
    """Gate runs by outcome and their duration; workflow steps by kind. Labels are fixed sets."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gate_runs = Counter(
            "cityos_release_gate_runs",
            "Release gate runs over the admin API, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.gate_seconds = Histogram(
            "cityos_release_gate_seconds",
            "Duration of a release gate run (search, write, verify, store).",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.steps = Counter(
            "cityos_release_workflow_steps",
            "Proposal workflow steps accepted by the admin API.",
            ["step"],
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.gate_runs.labels(outcome)
        for step in STEPS:
            self.steps.labels(step)


class CallIn(BaseModel):
    dataset: str
    title: str
    opens_at: datetime
    closes_at: datetime


class ProposalIn(BaseModel):
    call: str
    purpose: str
    items: list[str]
    use_period: str
    safety_measures: str


class DecisionIn(BaseModel):
    accept: bool
    reason: str


class ContractIn(BaseModel):
    contract_ref: str


class CancelIn(BaseModel):
    reason: str


class ReleaseIn(BaseModel):
    """No seed: a release's row order and pseudonyms come from the OS's cryptographic generator,
    so a caller who could choose (or learn) a seed could never re-link rows to residents."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = "resident-moves"
    classification: str = "public"


class ProposalReleaseIn(BaseModel):
    """Nothing to choose: the release holds the approved proposal's items."""

    model_config = ConfigDict(extra="forbid")


_Done = TypeVar("_Done")


def _refused(reasons: list[str], records: Sequence[OffendingRecords] = ()) -> HTTPException:
    """409 with every reason; a gate that records stopped also names them (counts and first keys),
    so the operator knows what to correct or delete."""
    detail: dict[str, Any] = {"error": "refused", "reasons": reasons}
    if records:
        detail["records"] = [found.as_json() for found in records]
    return HTTPException(status_code=409, detail=detail)


@dataclass(frozen=True)
class ReleaseContext(RouterContext):
    metrics: ReleaseMetrics

    @classmethod
    def create(
        cls, sessions: sessionmaker[Session], registry: CollectorRegistry, settings: Settings
    ) -> "ReleaseContext":
        return cls(sessions, settings, ReleaseMetrics(registry))


STATE = "releases"  # the attribute of ``app.state`` holding the ReleaseContext

router = APIRouter(prefix="/api/v1/admin", tags=["anonymized releases"], responses=refusals(403, 404, 409))


def _context(request: Request) -> ReleaseContext:
    return app_context(request, STATE, ReleaseContext)


ContextDep = Annotated[ReleaseContext, Depends(_context)]


def _transaction(context: ContextDep) -> Iterator[Session]:
    # Each write endpoint commits before answering (a refusal's audit entry too); anything
    # else -- an exception, a read -- ends with the session closed, which rolls back.
    yield from context.session()


TxDep = Annotated[Session, Depends(_transaction)]


def _credential(request: Request, context: ContextDep, session: TxDep) -> Caller:
    """The caller behind the Bearer credential (an administrator is audited by name)."""
    return credential_of(request, session, context.settings).caller


CallerDep = Annotated[Caller, Depends(_credential)]


def _owner_actor(caller: Caller, session: Session, dataset_id: str) -> str:
    """The acting department (or administrator) for a dataset; 403 for anyone else."""
    if caller.kind is CallerKind.admin:
        return caller.actor
    dataset = session.get(Dataset, dataset_id)
    if (
        caller.kind is CallerKind.department
        and dataset is not None
        and caller.principal == dataset.department_id
    ):
        return caller.principal
    raise HTTPException(403, "only the owning department or an administrator may do this")


def _proposal_dataset(session: Session, proposal_id: str) -> str:
    proposal = session.get(ReleaseProposal, proposal_id)
    call = session.get(ProposalCall, proposal.call_id) if proposal is not None else None
    if call is None:
        raise HTTPException(404, f"no proposal {proposal_id}")
    return call.dataset_id


def _workflow_step(
    context: ReleaseContext, session: Session, step: str, action: Callable[[], _Done]
) -> _Done:
    """One proposal workflow step: a refusal answers 409; success is committed and counted."""
    try:
        done = action()
    except workflow.ProposalError as exc:
        raise _refused(exc.reasons) from exc
    session.commit()
    context.metrics.steps.labels(step).inc()
    return done


def _gate_outcome(context: ReleaseContext, session: Session, result: ReleaseResult) -> ReleaseSummary:
    """After a gate run: commit (the release, or the refusal's audit entry), count, answer."""
    session.commit()
    context.metrics.gate_runs.labels("refused" if result.release is None else "passed").inc()
    if result.release is None:
        raise _refused(result.reasons, result.outcome.offending)
    return ReleaseSummary.of(result.release)


@router.post("/proposal-calls", status_code=201)
def open_call(body: CallIn, context: ContextDep, session: TxDep, caller: CallerDep) -> workflow.CallView:
    actor = _owner_actor(caller, session, body.dataset)
    call = _workflow_step(
        context,
        session,
        "call",
        lambda: workflow.open_call(
            session,
            dataset_id=body.dataset,
            title=body.title,
            opens_at=body.opens_at,
            closes_at=body.closes_at,
            actor=actor,
        ),
    )
    return workflow.CallView.of(call)


@router.get("/proposal-calls")
def calls(session: TxDep, _caller: CallerDep) -> list[workflow.CallView]:
    return [
        workflow.CallView.of(c) for c in session.scalars(select(ProposalCall).order_by(ProposalCall.opens_at))
    ]


@router.post("/proposals", status_code=201)
def submit(body: ProposalIn, context: ContextDep, session: TxDep, caller: CallerDep) -> workflow.ProposalView:
    if caller.kind is not CallerKind.applicant or caller.principal is None:
        raise HTTPException(403, "proposals are submitted with the applicant's own key")
    applicant = caller.principal
    proposal = _workflow_step(
        context,
        session,
        "proposal",
        lambda: workflow.submit_proposal(
            session,
            call_id=body.call,
            applicant_id=applicant,
            purpose=body.purpose,
            items=body.items,
            use_period=body.use_period,
            safety_measures=body.safety_measures,
        ),
    )
    return workflow.ProposalView.of(proposal)


@router.get("/proposals")
def proposals(session: TxDep, caller: CallerDep) -> list[workflow.ProposalView]:
    query = select(ReleaseProposal).order_by(ReleaseProposal.submitted_at)
    if caller.kind is CallerKind.applicant:
        query = query.where(ReleaseProposal.applicant_id == caller.principal)  # its own only
    elif caller.kind is CallerKind.department:
        # A department sees the proposals for the datasets it owns.
        owned = select(Dataset.id).where(Dataset.department_id == caller.principal)
        calls_of_owner = select(ProposalCall.id).where(ProposalCall.dataset_id.in_(owned))
        query = query.where(ReleaseProposal.call_id.in_(calls_of_owner))
    elif caller.kind is not CallerKind.admin:
        raise HTTPException(403, "not allowed")
    return [workflow.ProposalView.of(p) for p in session.scalars(query)]


@router.post("/proposals/{proposal_id}/decision")
def decide(
    proposal_id: str, body: DecisionIn, context: ContextDep, session: TxDep, caller: CallerDep
) -> workflow.ProposalView:
    actor = _owner_actor(caller, session, _proposal_dataset(session, proposal_id))
    proposal = _workflow_step(
        context,
        session,
        "decision",
        lambda: workflow.decide(
            session, proposal_id=proposal_id, accept=body.accept, reason=body.reason, actor=actor
        ),
    )
    return workflow.ProposalView.of(proposal)


@router.post("/proposals/{proposal_id}/contract")
def contract(
    proposal_id: str, body: ContractIn, context: ContextDep, session: TxDep, caller: CallerDep
) -> workflow.ProposalView:
    actor = _owner_actor(caller, session, _proposal_dataset(session, proposal_id))
    proposal = _workflow_step(
        context,
        session,
        "contract",
        lambda: workflow.record_contract(
            session, proposal_id=proposal_id, contract_ref=body.contract_ref, actor=actor
        ),
    )
    return workflow.ProposalView.of(proposal)


@router.post("/proposals/{proposal_id}/cancel")
def cancel(
    proposal_id: str, body: CancelIn, context: ContextDep, session: TxDep, caller: CallerDep
) -> workflow.ProposalView:
    actor = _owner_actor(caller, session, _proposal_dataset(session, proposal_id))
    proposal = _workflow_step(
        context,
        session,
        "cancel",
        lambda: workflow.cancel(session, proposal_id=proposal_id, reason=body.reason, actor=actor),
    )
    return workflow.ProposalView.of(proposal)


@router.post("/proposals/{proposal_id}/release", status_code=201)
def proposal_release(
    proposal_id: str, body: ProposalReleaseIn, context: ContextDep, session: TxDep, caller: CallerDep
) -> ReleaseSummary:
    actor = _owner_actor(caller, session, _proposal_dataset(session, proposal_id))
    try:
        with context.metrics.gate_seconds.time():
            result = workflow.release_for_proposal(session, proposal_id=proposal_id, actor=actor)
    except (workflow.ProposalError, ReleaseError) as exc:
        raise _refused(exc.reasons) from exc
    return _gate_outcome(context, session, result)


@router.post("/releases", status_code=201)
def run_release(body: ReleaseIn, context: ContextDep, session: TxDep, caller: CallerDep) -> ReleaseSummary:
    actor = _owner_actor(caller, session, body.dataset)
    try:
        with context.metrics.gate_seconds.time():
            result = create_release(
                session,
                source_dataset_id=body.dataset,
                classification=body.classification,
                operator=actor,
            )
    except ReleaseError as exc:
        raise _refused(exc.reasons) from exc
    return _gate_outcome(context, session, result)


@router.get("/releases")
def releases(session: TxDep, caller: CallerDep) -> list[ReleaseSummary]:
    if caller.kind not in (CallerKind.admin, CallerKind.department):
        raise HTTPException(403, "not allowed")
    return [ReleaseSummary.of(r) for r in list_releases(session)]

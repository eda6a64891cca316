"""Releases and proposals against the catalog database (SQLite and PostgreSQL), without services:
the rules of each workflow step, every refusal with its reasons, and who may read a release."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityos.domain.access import ANONYMOUS, Caller, CallerKind, read_access
from cityos.domain.analysis.history import current_records, records_as_of
from cityos.domain.anonymize import proposals as workflow
from cityos.domain.anonymize.releases import RESTRICTED_ACTION, ReleaseError, create_release
from cityos.domain.audit import list_audit
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.db.models import Dataset, Record
from tests.support.releases import store_synthetic_moves

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ACME = Caller(CallerKind.applicant, principal="acme", key_id="cos_00000001")
OTHER = Caller(CallerKind.applicant, principal="other", key_id="cos_00000002")


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    migrate(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        store_synthetic_moves(session, count=600, seed=8, now=NOW)
        yield session
    engine.dispose()


def _call(session: Session) -> str:
    call = workflow.open_call(
        session,
        dataset_id="resident-moves",
        title="募集",
        opens_at=NOW - timedelta(days=1),
        closes_at=NOW + timedelta(days=30),
        actor="citizens",
        now=NOW,
    )
    return call.id


def _proposal(session: Session, call_id: str, applicant: str = "acme") -> str:
    proposal = workflow.submit_proposal(
        session,
        call_id=call_id,
        applicant_id=applicant,
        purpose="分析",
        items=["年齢", "地域"],
        use_period="1年",
        safety_measures="管理",
        now=NOW,
    )
    return proposal.id


def test_calls_and_proposals_refuse_with_every_reason(session: Session) -> None:
    with pytest.raises(workflow.ProposalError) as short:
        workflow.open_call(
            session,
            dataset_id="aed",
            title="x",
            opens_at=NOW,
            closes_at=NOW + timedelta(days=29),
            actor="citizens",
        )
    assert short.value.reasons == ["aed is not a personal dataset", "a call must stay open at least 30 days"]
    call_id = _call(session)
    with pytest.raises(workflow.ProposalError) as bad:
        workflow.submit_proposal(
            session,
            call_id=call_id,
            applicant_id="acme",
            purpose=" ",
            items=["氏名", "年齢"],
            use_period="1年",
            safety_measures="管理",
            now=NOW + timedelta(days=31),
        )
    assert len(bad.value.reasons) == 3  # closed, 氏名 not offered, no purpose
    assert "items not offered by this dataset: 氏名" in bad.value.reasons
    proposal_id = _proposal(session, call_id)
    with pytest.raises(workflow.ProposalError, match="needs its reason"):
        workflow.decide(session, proposal_id=proposal_id, accept=False, reason="", actor="citizens")
    with pytest.raises(workflow.ProposalError, match="only an accepted proposal is contracted"):
        workflow.record_contract(session, proposal_id=proposal_id, contract_ref="K", actor="citizens")
    workflow.decide(session, proposal_id=proposal_id, accept=False, reason="目的が不明確", actor="citizens")
    with pytest.raises(workflow.ProposalError, match="only an accepted proposal gets a release"):
        workflow.release_for_proposal(session, proposal_id=proposal_id, actor="citizens")


def test_partner_release_is_readable_by_its_applicant_until_cancelled(session: Session) -> None:
    proposal_id = _proposal(session, _call(session))
    workflow.decide(session, proposal_id=proposal_id, accept=True, reason="適合", actor="citizens")
    result = workflow.release_for_proposal(session, proposal_id=proposal_id, actor="citizens", now=NOW)
    assert result.release is not None
    session.commit()
    dataset = session.get(Dataset, result.release.dataset_id)
    assert dataset is not None and dataset.classification == "partner"
    assert dataset.meta["概要"]["本人の数"] == result.release.row_count == dataset.record_count
    stored = session.scalar(select(func.count()).select_from(Record).where(Record.dataset_id == dataset.id))
    assert stored == result.release.row_count
    assert read_access(session, ACME, dataset, audit=False) is not None
    for caller in (OTHER, ANONYMOUS, Caller(CallerKind.department, principal="citizens")):
        assert read_access(session, caller, dataset, audit=False) is None
    workflow.cancel(session, proposal_id=proposal_id, reason="契約違反", actor="citizens")
    assert read_access(session, ACME, dataset, audit=False) is None
    method = list_audit(session, action=RESTRICTED_ACTION, subject_id=result.release.id)
    assert method[0].detail["levels"] and method[0].detail["config_hash"]
    assert method[0].detail["achieved_k"] >= 5 and method[0].detail["suppressed"] <= 30


def test_public_release_is_open_data_for_everyone(session: Session) -> None:
    result = create_release(
        session,
        source_dataset_id="resident-moves",
        classification="public",
        operator="citizens",
        now=NOW,
    )
    assert result.release is not None
    dataset = session.get(Dataset, result.release.dataset_id)
    assert dataset is not None and read_access(session, ANONYMOUS, dataset, audit=False) is not None
    # The release reads the same through the change log (snapshots, workspaces) as it does now, and
    # is absent before it was made.
    now_rows = [row for batch in current_records(session, dataset_id=dataset.id) for row in batch]
    logged = [row for batch in records_as_of(session, dataset_id=dataset.id, at=NOW) for row in batch]
    before = [
        row
        for batch in records_as_of(session, dataset_id=dataset.id, at=NOW - timedelta(seconds=1))
        for row in batch
    ]
    assert len(now_rows) == result.release.row_count > 0
    assert logged == now_rows and before == []
    with pytest.raises(ReleaseError) as again:
        create_release(
            session,
            source_dataset_id="resident-moves",
            classification="public",
            operator="citizens",
            applicant_id="acme",
            items=["年齢"],
        )
    assert again.value.reasons == [
        "a public release is for everyone: no applicant",
        "a public release holds every item of its profile: no item list",
    ]
    with pytest.raises(ReleaseError, match="accepted proposal"):  # no partner release without approval
        create_release(
            session,
            source_dataset_id="resident-moves",
            classification="partner",
            operator="citizens",
            applicant_id="acme",
        )
    with pytest.raises(ReleaseError, match="not personal"):
        create_release(session, source_dataset_id="aed", classification="public", operator="citizens")


def test_a_refused_release_publishes_nothing_and_is_audited(session: Session) -> None:
    for record in session.scalars(select(Record).where(Record.dataset_id == "resident-moves")).all()[:400]:
        record.data = {**record.data, "要介護度": "要介護5"}  # two thirds in one care level: no class passes
    session.flush()
    before = session.scalar(select(func.count()).select_from(Dataset))
    result = create_release(
        session, source_dataset_id="resident-moves", classification="public", operator="citizens", now=NOW
    )
    assert result.release is None and "no generalisation meets" in result.reasons[0]
    assert session.scalar(select(func.count()).select_from(Dataset)) == before
    refused = list_audit(session, action="release.refused")
    assert refused and refused[0].detail["reasons"] == result.reasons

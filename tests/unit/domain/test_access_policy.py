"""The access policy and the grant/subscription rules on a real SQLite catalog with the
repository's schemas: who reads what, with which fields, and what the audit log keeps."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cityos.domain import grants as admin
from cityos.domain.access import ANONYMOUS, FULL, Caller, CallerKind, ReadAccess, decide_read, read_access
from cityos.domain.audit import list_audit
from cityos.domain.grants import AccessRefused, StartMode, SubscriptionRequest
from cityos.kernel.db.models import Dataset

ADMIN = Caller(CallerKind.admin)


def dept(name: str) -> Caller:
    return Caller(CallerKind.department, principal=name, key_id="cos_00000000")


def dataset(session: Session, dataset_id: str) -> Dataset:
    row = session.get(Dataset, dataset_id)
    assert row is not None
    return row


@pytest.mark.parametrize(
    ("classification", "caller", "grant", "expected"),
    [
        ("public", ANONYMOUS, False, FULL),
        ("public", dept("fire"), False, FULL),
        ("internal", ANONYMOUS, False, None),
        ("internal", Caller(CallerKind.developer, key_id="cos_1"), False, None),
        ("internal", ADMIN, False, None),
        ("internal", dept("digital"), False, FULL),  # the owner
        ("internal", dept("fire"), False, None),
        ("internal", dept("fire"), None, FULL),
        ("internal", dept("fire"), ["部局コード"], ReadAccess(frozenset({"部局コード", "ID"}))),
        ("personal", dept("digital"), None, None),  # even the owner and a grant: never raw
        ("personal", ANONYMOUS, False, None),
        ("partner-or-anything-new", dept("digital"), None, None),
    ],
)
def test_decide_read(
    classification: str, caller: Caller, grant: list[str] | None | bool, expected: ReadAccess | None
) -> None:
    decided = decide_read(
        classification=classification, owner="digital", record_key="ID", caller=caller, grant_fields=grant
    )
    assert decided == expected


def reads(engine: Engine, caller: Caller, dataset_id: str) -> ReadAccess | None:
    # A session of its own, as a read path has: read_access audits in a separate transaction,
    # and SQLite would not let this session write after that (it read an older snapshot).
    with Session(engine) as session:
        return read_access(session, caller, dataset(session, dataset_id))


def change(engine: Engine, action: str, caller: Caller, **kwargs: object) -> None:
    with Session(engine) as session, session.begin():
        getattr(admin, action)(session, caller=caller, **kwargs)


def test_grant_read_revoke_with_audit_trail(engine: Engine) -> None:
    assert reads(engine, dept("fire"), "copier-usage") is None
    change(engine, "grant", dept("digital"), dataset_id="copier-usage", grantee="fire", fields=["年月"])
    assert reads(engine, dept("fire"), "copier-usage") == ReadAccess(frozenset({"年月", "ID"}))
    assert reads(engine, dept("planning"), "copier-usage") is None
    change(engine, "revoke", dept("digital"), dataset_id="copier-usage", grantee="fire")
    assert reads(engine, dept("fire"), "copier-usage") is None
    assert reads(engine, ANONYMOUS, "copier-usage") is None
    assert reads(engine, dept("fire"), "aed") == FULL
    with Session(engine) as session:
        actions = [(e.actor, e.action) for e in list_audit(session)]
    assert actions == [
        ("department:fire", "access.denied"),
        ("department:digital", "grant.created"),
        ("department:fire", "access.read"),
        ("department:planning", "access.denied"),
        ("department:digital", "grant.revoked"),
        ("department:fire", "access.denied"),
    ], "anonymous refusals are not audited; everything else is"


def test_a_new_grant_replaces_the_old_one_and_both_stay_in_history(engine: Engine) -> None:
    with Session(engine) as session:
        admin.grant(session, caller=ADMIN, dataset_id="copier-usage", grantee="fire")
        admin.grant(session, caller=ADMIN, dataset_id="copier-usage", grantee="fire", fields=["年月"])
        session.commit()
        rows = admin.list_grants(session, caller=ADMIN, dataset_id="copier-usage", include_revoked=True)
        assert [(r.fields, r.revoked_at is None) for r in rows] == [(None, False), (["年月"], True)]
        assert len(admin.list_grants(session, caller=ADMIN, dataset_id="copier-usage")) == 1


@pytest.mark.parametrize(
    ("caller", "dataset_id", "status"),
    [
        (dept("fire"), "copier-usage", 404),  # cannot even see it
        (dept("planning"), "aed", 403),  # sees it (public) but does not own it
        (dept("fire"), "aed", 409),  # owner, but public data takes no grants
        (dept("citizens"), "resident-moves", 409),  # owner, but personal data is never shared raw
        (ADMIN, "resident-moves", 409),
        (ADMIN, "no-such-dataset", 404),
        (ANONYMOUS, "copier-usage", 404),
    ],
)
def test_who_may_not_manage_grants(engine: Engine, caller: Caller, dataset_id: str, status: int) -> None:
    with Session(engine) as session:
        with pytest.raises(AccessRefused) as refused:
            admin.grant(session, caller=caller, dataset_id=dataset_id, grantee="planning")
        assert refused.value.status == status
        session.commit()
        assert [e.action for e in list_audit(session, action="grant.refused")] == ["grant.refused"]


def test_grant_fields_must_be_declared_and_grantee_must_exist(engine: Engine) -> None:
    with Session(engine) as session:
        with pytest.raises(AccessRefused, match="氏名"):
            admin.grant(session, caller=ADMIN, dataset_id="copier-usage", grantee="fire", fields=["氏名"])
        with pytest.raises(AccessRefused) as unknown:
            admin.grant(session, caller=ADMIN, dataset_id="copier-usage", grantee="no-such-dept")
        assert unknown.value.status == 404
        with pytest.raises(AccessRefused) as owner:
            admin.grant(session, caller=ADMIN, dataset_id="copier-usage", grantee="digital")
        assert owner.value.status == 409


def request(dataset_id: str, **kwargs: object) -> SubscriptionRequest:
    return SubscriptionRequest(
        dataset_id=dataset_id,
        filter=kwargs.get("filter", {}),  # type: ignore[arg-type]
        fields=kwargs.get("fields"),  # type: ignore[arg-type]
        start=StartMode.snapshot,
    )


def test_subscription_rules(engine: Engine) -> None:
    with Session(engine) as session:
        sub = admin.subscribe(
            session, caller=dept("fire"), department=None, request=request("aed"), topic_prefix="p."
        )
        assert (sub.topic, sub.state, sub.projection) == ("p.feed.fire.aed", "active", None)
        with pytest.raises(AccessRefused) as twice:
            admin.subscribe(
                session, caller=dept("fire"), department=None, request=request("aed"), topic_prefix="p."
            )
        assert twice.value.status == 409
        for dataset_id in ("copier-usage", "resident-moves", "nope"):
            with pytest.raises(AccessRefused) as hidden:
                admin.subscribe(
                    session,
                    caller=dept("fire"),
                    department=None,
                    request=request(dataset_id),
                    topic_prefix="",
                )
            assert hidden.value.status == 404
        with pytest.raises(AccessRefused) as other:
            admin.subscribe(
                session, caller=dept("fire"), department="planning", request=request("aed"), topic_prefix=""
            )
        assert other.value.status == 403
        with pytest.raises(AccessRefused) as anonymous:
            admin.subscribe(
                session, caller=ANONYMOUS, department=None, request=request("aed"), topic_prefix=""
            )
        assert anonymous.value.status == 403


def test_filter_and_projection_only_on_granted_fields(engine: Engine) -> None:
    """A filter on an ungranted field would leak its values by inference: refused like a projection."""
    with Session(engine) as session:
        admin.grant(
            session, caller=ADMIN, dataset_id="copier-usage", grantee="fire", fields=["年月", "部局コード"]
        )
        for bad in ({"filter": {"備考": "x"}}, {"fields": ["枚数_カラー"]}, {"filter": {"nope": 1}}):
            with pytest.raises(AccessRefused) as refused:
                admin.subscribe(
                    session,
                    caller=dept("fire"),
                    department=None,
                    request=request("copier-usage", **bad),
                    topic_prefix="",
                )
            assert refused.value.status == 400
        sub = admin.subscribe(
            session,
            caller=ADMIN,
            department="fire",
            request=request("copier-usage", filter={"部局コード": "fire"}, fields=["年月"]),
            topic_prefix="",
        )
        assert (sub.filter, sub.projection, sub.created_by) == ({"部局コード": "fire"}, ["年月"], "admin")
        admin.cancel_subscription(session, caller=dept("fire"), subscription_id=sub.id)
        assert sub.state == "cancelled"
        with pytest.raises(AccessRefused):
            admin.cancel_subscription(session, caller=dept("planning"), subscription_id=sub.id)

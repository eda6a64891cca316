"""Credential lifetimes and scopes on a real SQLite catalog: department and administrator
credentials always expire, each kind gets the scopes it exists for, administrators are named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cityos.domain.access import CallerKind
from cityos.domain.apikeys import (
    DEFAULT_CREDENTIAL_DAYS,
    DEPARTMENT_SCOPES,
    SCOPE_READ,
    ApiKeyView,
    Credential,
    KeyRefusal,
    OwnerKind,
    authenticate_credential,
    issue_key,
)
from cityos.kernel.db.models import ApiKey

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "scopes", "lifetime"),
    [
        (OwnerKind.department, set(DEPARTMENT_SCOPES), timedelta(days=DEFAULT_CREDENTIAL_DAYS)),
        (OwnerKind.admin, {"admin"}, timedelta(days=DEFAULT_CREDENTIAL_DAYS)),
        (OwnerKind.developer, {SCOPE_READ}, None),
        (OwnerKind.applicant, {SCOPE_READ}, None),
    ],
)
def test_each_kind_gets_its_scopes_and_the_powerful_ones_an_expiry(
    engine: Engine, kind: OwnerKind, scopes: set[str], lifetime: timedelta | None
) -> None:
    with Session(engine) as session, session.begin():
        issued = issue_key(session, owner_kind=kind, owner_id="alice", purpose="t", actor="admin:t", now=NOW)
    with Session(engine) as session:
        row = session.get(ApiKey, issued.key_id)
        assert row is not None
        assert set(row.scopes) == scopes
        assert row.expires_at == (NOW + lifetime if lifetime else None)
        found = authenticate_credential(session, issued.secret, now=NOW)
    assert isinstance(found, Credential) and found.scopes == frozenset(scopes)


def test_an_administrator_is_audited_by_name(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        issued = issue_key(
            session, owner_kind=OwnerKind.admin, owner_id="alice", purpose="t", actor="admin:cli"
        )
    with Session(engine) as session:
        found = authenticate_credential(session, issued.secret)
    assert isinstance(found, Credential)
    assert (found.caller.kind, found.caller.actor) == (CallerKind.admin, "admin:alice")


def test_expired_and_never_expiring_department_credentials_are_refused(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        expiring = issue_key(
            session, owner_kind=OwnerKind.department, owner_id="fire", purpose="t", actor="admin:t",
            expires_at=NOW + timedelta(days=1), now=NOW,
        )  # fmt: skip
        legacy = issue_key(session, owner_kind=OwnerKind.department, owner_id="fire", purpose="t", actor="t")
        developer = issue_key(session, owner_kind=OwnerKind.developer, owner_id="dev", purpose="t", actor="t")
        # Rows from before expiry was required carry none.
        for key_id in (legacy.key_id, developer.key_id):
            row = session.get(ApiKey, key_id)
            assert row is not None
            row.expires_at = None
    with Session(engine) as session:
        assert isinstance(authenticate_credential(session, expiring.secret, now=NOW), Credential)
        later = NOW + timedelta(days=1)
        assert authenticate_credential(session, expiring.secret, now=later) is KeyRefusal.expired
        assert authenticate_credential(session, legacy.secret, now=NOW) is KeyRefusal.expired
        assert isinstance(authenticate_credential(session, developer.secret, now=NOW), Credential)
        legacy_row = session.get(ApiKey, legacy.key_id)
        assert legacy_row is not None and ApiKeyView.of(legacy_row, NOW).state == "expired"

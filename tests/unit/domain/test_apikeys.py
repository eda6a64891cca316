"""API keys on a real SQLite catalog: issued once, stored as a digest, revocable, expiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from cityos.domain.access import CallerKind
from cityos.domain.apikeys import (
    KeyRefusal,
    OwnerKind,
    authenticate,
    issue_key,
    key_id_of,
    list_keys,
    revoke_key,
)
from cityos.domain.audit import list_audit
from cityos.kernel.db.models import ApiKey

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_issued_key_authenticates_as_its_owner_and_only_its_digest_is_stored(engine: Engine) -> None:
    with Session(engine) as session:
        issued = issue_key(
            session, owner_kind=OwnerKind.department, owner_id="welfare", purpose="feeds", actor="admin"
        )
        session.commit()
    assert key_id_of(issued.secret) == issued.key_id
    with Session(engine) as session:
        caller = authenticate(session, issued.secret, now=NOW)
        assert not isinstance(caller, KeyRefusal)
        assert (caller.kind, caller.principal, caller.key_id) == (
            CallerKind.department,
            "welfare",
            issued.key_id,
        )
        stored = session.scalars(select(ApiKey)).one()
        # The secret part appears nowhere in the database: not in the key row, not in the audit log.
        secret_part = issued.secret.rpartition("_")[2]
        dump = "\n".join(str(row) for row in session.execute(text("SELECT * FROM api_keys")))
        dump += "\n".join(str(row) for row in session.execute(text("SELECT * FROM audit_events")))
        assert secret_part not in dump
        assert stored.id == issued.key_id
        assert [entry.action for entry in list_audit(session, subject_id=issued.key_id)] == ["key.issued"]


def test_developer_keys_carry_no_principal(engine: Engine) -> None:
    with Session(engine) as session:
        issued = issue_key(
            session, owner_kind=OwnerKind.developer, owner_id="dev@example.org", purpose="app", actor="admin"
        )
        session.commit()
        caller = authenticate(session, issued.secret)
        assert not isinstance(caller, KeyRefusal)
        assert (caller.kind, caller.principal) == (CallerKind.developer, None)


@pytest.mark.parametrize(
    "presented", ["", "secret", "cos_", "cos_12345678", "cos_1234567_x", "Bearer cos_12345678_x"]
)
def test_malformed_keys_are_refused(engine: Engine, presented: str) -> None:
    with Session(engine) as session:
        assert authenticate(session, presented) is KeyRefusal.malformed


def test_wrong_secret_revoked_and_expired_keys_are_refused(engine: Engine) -> None:
    with Session(engine) as session:
        good = issue_key(session, owner_kind=OwnerKind.developer, owner_id="a", purpose="p", actor="admin")
        expiring = issue_key(
            session,
            owner_kind=OwnerKind.applicant,
            owner_id="applicant-1",
            purpose="p",
            actor="admin",
            expires_at=NOW + timedelta(hours=1),
        )
        session.commit()
        assert authenticate(session, good.secret[:-1] + ("A" if good.secret[-1] != "A" else "B")) is (
            KeyRefusal.unknown
        )
        assert authenticate(session, "cos_00000000_whatever") is KeyRefusal.unknown
        assert not isinstance(authenticate(session, expiring.secret, now=NOW), KeyRefusal)
        assert authenticate(session, expiring.secret, now=NOW + timedelta(hours=1)) is KeyRefusal.expired
        assert revoke_key(session, good.key_id, actor="admin", now=NOW)
        assert revoke_key(session, good.key_id, actor="admin", now=NOW)  # twice: no second entry
        assert not revoke_key(session, "cos_ffffffff", actor="admin")
        session.commit()
        assert authenticate(session, good.secret) is KeyRefusal.revoked
        assert [e.action for e in list_audit(session, subject_id=good.key_id)] == [
            "key.issued",
            "key.revoked",
        ]
        assert [k.id for k in list_keys(session, owner_kind=OwnerKind.applicant)] == [expiring.key_id]


def test_naive_expiry_is_refused(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(ValueError, match="timezone-aware"):
        issue_key(
            session,
            owner_kind=OwnerKind.developer,
            owner_id="a",
            purpose="p",
            actor="admin",
            expires_at=datetime(2027, 1, 1),
        )

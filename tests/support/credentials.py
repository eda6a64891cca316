"""Credentials issued straight into a catalog database, as `cityos keys|admins issue` would: the
catalog is migrated first, and the secret is returned this once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.engine import make_engine, migrate


def issue_credential(
    database_url: str,
    *,
    owner_kind: OwnerKind,
    owner_id: str,
    purpose: str,
    actor: str,
    scopes: Sequence[str] | None = None,
) -> str:
    """A credential for ``owner_id`` (``scopes`` or the owner kind's default ones); the secret."""
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            issued = issue_key(
                session,
                owner_kind=owner_kind,
                owner_id=owner_id,
                purpose=purpose,
                actor=actor,
                scopes=None if scopes is None else list(scopes),
            )
    finally:
        engine.dispose()
    return issued.secret

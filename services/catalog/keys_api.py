"""Admin endpoints for API keys on the catalog admin API: issue (secret shown once), list, revoke.

Administrators only (a personal ``admin`` credential, see ``admin_auth``), audited by name; the
``cityos keys`` and ``cityos admins`` CLIs do the same on the database directly. Department and
administrator keys always expire (``expires_in_days`` omitted: the domain's default lifetime).
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from cityos.domain.apikeys import ApiKeyView, OwnerKind, issue_key, list_keys, revoke_key
from cityos.domain.wire import Instant
from cityos.kernel.db.models import ApiKey
from services.catalog.admin_auth import admin_actor, credential_of
from services.catalog.context import RouterContext, app_context
from services.catalog.error_responses import refusals


class KeyRequest(BaseModel):
    owner_kind: OwnerKind = OwnerKind.developer
    owner_id: str = Field(min_length=1, max_length=200, examples=["dev@example.com"])
    purpose: str = Field(min_length=1, max_length=2000, examples=["Evacuation-site map app"])
    expires_in_days: int | None = Field(default=365, ge=1, le=3650)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)


class IssuedKey(BaseModel):
    """A new key: ``key`` is the secret, shown in this answer only."""

    id: str
    key: str
    expires_at: Instant | None


STATE = "keys"  # the attribute of ``app.state`` holding the keys router's RouterContext

router = APIRouter(prefix="/api/v1/admin/keys", tags=["API keys"], responses=refusals(404))


def _context(request: Request) -> RouterContext:
    return app_context(request, STATE, RouterContext)


ContextDep = Annotated[RouterContext, Depends(_context)]


def _session(context: ContextDep) -> Iterator[Session]:
    yield from context.session()


SessionDep = Annotated[Session, Depends(_session)]


def _admin(request: Request, context: ContextDep, session: SessionDep) -> str:
    return admin_actor(credential_of(request, session, context.settings))


AdminDep = Annotated[str, Depends(_admin)]


@router.post("", status_code=201, summary="Issue a key; the secret is in this answer only")
def issue(request: KeyRequest, session: SessionDep, actor: AdminDep) -> IssuedKey:
    now = datetime.now(UTC)
    expires = now + timedelta(days=request.expires_in_days) if request.expires_in_days else None
    with session.begin():
        issued = issue_key(
            session, owner_kind=request.owner_kind, owner_id=request.owner_id, purpose=request.purpose,
            actor=actor, expires_at=expires, rate_limit_per_minute=request.rate_limit_per_minute, now=now,
        )  # fmt: skip
    return IssuedKey(id=issued.key_id, key=issued.secret, expires_at=expires)


@router.get("", summary="Keys (ids and metadata only)")
def listing(session: SessionDep, _: AdminDep, owner_id: str | None = None) -> list[ApiKeyView]:
    return [ApiKeyView.of(row) for row in list_keys(session, owner_id=owner_id)]


@router.delete("/{key_id}", summary="Revoke a key (takes effect on the next request)")
def revoke(key_id: str, session: SessionDep, actor: AdminDep) -> ApiKeyView:
    with session.begin():
        if not revoke_key(session, key_id, actor=actor):
            raise HTTPException(404, f"no key {key_id!r}")
        row = session.get(ApiKey, key_id)
        assert row is not None
        return ApiKeyView.of(row)

"""Admin endpoints for API keys on the catalog admin API: issue (secret shown once), list, revoke.

Guarded by the administrator token (``CITYOS_ADMIN_TOKEN``), like the other admin routers; without
one, HTTP administration is off and the ``cityos keys`` CLI is the way.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.apikeys import OwnerKind, issue_key, key_view, list_keys, revoke_key
from cityos.kernel.db.models import ApiKey
from cityos.kernel.settings import Settings, get_settings
from services.catalog.admin_auth import require_admin


class KeyRequest(BaseModel):
    owner_kind: OwnerKind = OwnerKind.developer
    owner_id: str = Field(min_length=1, max_length=200, examples=["dev@example.com"])
    purpose: str = Field(min_length=1, max_length=2000, examples=["Evacuation-site map app"])
    expires_in_days: int | None = Field(default=365, ge=1, le=3650)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)


def create_keys_router(sessions: sessionmaker[Session], settings: Settings | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1/admin/keys", tags=["API keys"])
    configured = settings

    def session_dep() -> Iterator[Session]:
        with sessions() as session:
            yield session

    def admin_dep(authorization: Annotated[str | None, Header()] = None) -> str:
        return require_admin(
            authorization, (configured or get_settings()).admin_token, cli_hint="`cityos keys`"
        )

    SessionDep = Annotated[Session, Depends(session_dep)]
    AdminDep = Annotated[str, Depends(admin_dep)]

    @router.post("", status_code=201, summary="Issue a key; the secret is in this answer only")
    def issue(request: KeyRequest, session: SessionDep, actor: AdminDep) -> dict[str, Any]:
        now = datetime.now(UTC)
        expires = now + timedelta(days=request.expires_in_days) if request.expires_in_days else None
        with session.begin():
            issued = issue_key(
                session, owner_kind=request.owner_kind, owner_id=request.owner_id, purpose=request.purpose,
                actor=actor, expires_at=expires, rate_limit_per_minute=request.rate_limit_per_minute, now=now,
            )  # fmt: skip
        return {
            "id": issued.key_id,
            "key": issued.secret,
            "expires_at": expires.isoformat() if expires else None,
        }

    @router.get("", summary="Keys (ids and metadata only)")
    def listing(session: SessionDep, _: AdminDep, owner_id: str | None = None) -> list[dict[str, Any]]:
        return [key_view(row) for row in list_keys(session, owner_id=owner_id)]

    @router.delete("/{key_id}", summary="Revoke a key (takes effect on the next request)")
    def revoke(key_id: str, session: SessionDep, actor: AdminDep) -> dict[str, Any]:
        with session.begin():
            if not revoke_key(session, key_id, actor=actor):
                raise HTTPException(404, f"no key {key_id!r}")
            row = session.get(ApiKey, key_id)
            assert row is not None
            return key_view(row)

    return router

"""API keys: issued once, stored as a digest, revocable, expiring; resolved to an access ``Caller``.

Every credential of the platform is one of these: an external developer's key, a department's
credential, an applicant's key, and an administrator's personal credential (owner kind ``admin``,
owner id the administrator's name, so the audit log names who acted). Department and administrator
credentials always expire: issued without an expiry they get ``DEFAULT_CREDENTIAL_DAYS``, and an
old row without one no longer authenticates.

A key reads ``cos_<8 hex>_<secret>``. The ``cos_<8 hex>`` part is the key's id: shown in listings,
logs, metrics labels and the audit log. The whole key is returned exactly once, by ``issue_key``;
the database keeps only its SHA-256 digest, so neither a log nor a database dump can replay it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.access import Caller, CallerKind
from cityos.domain.audit import record_audit
from cityos.domain.wire import Instant
from cityos.kernel.db.models import ApiKey

KEY_PREFIX = "cos_"
_ID_HEX_CHARS = 8


class OwnerKind(StrEnum):
    developer = "developer"
    department = "department"
    applicant = "applicant"
    admin = "admin"  # an operator's personal credential; owner_id is the operator's name


_CALLER_KIND = {
    OwnerKind.developer: CallerKind.developer,
    OwnerKind.department: CallerKind.department,
    OwnerKind.applicant: CallerKind.applicant,
    OwnerKind.admin: CallerKind.admin,
}

# What a department key may do: read records, subscribe to feeds, manage the grants (and releases)
# of its datasets. Keys are issued with every department scope by default; a narrower key (e.g. only
# records:read for a reporting tool) is refused with 403 where it lacks the scope.
SCOPE_READ = "records:read"
SCOPE_MANAGE = "access:manage"
SCOPE_SUBSCRIBE = "feeds:subscribe"
DEPARTMENT_SCOPES = [SCOPE_READ, SCOPE_SUBSCRIBE, SCOPE_MANAGE]
# Sending events over HTTP (the ingest-http service): never a default, a department's sending system
# gets a key of its own with only this scope (`cityos keys issue --kind department --scope ingest:write`).
SCOPE_INGEST = "ingest:write"
# An administrator acts on the catalog's administration; it reads no raw data anywhere.
SCOPE_ADMIN = "admin"
# Scopes a key gets when its issuer names none: what its kind exists for.
DEFAULT_SCOPES: dict[OwnerKind, tuple[str, ...]] = {
    OwnerKind.developer: (SCOPE_READ,),
    OwnerKind.department: tuple(DEPARTMENT_SCOPES),
    OwnerKind.applicant: (SCOPE_READ,),
    OwnerKind.admin: (SCOPE_ADMIN,),
}
# Credentials that open more than open data never live forever: a leaked one stops working on its
# own. The services and the CLI pass ``Settings.credential_lifetime_days``; this is the floor's default.
DEFAULT_CREDENTIAL_DAYS = 90
EXPIRING_KINDS = frozenset({OwnerKind.department, OwnerKind.admin})


class KeyRefusal(StrEnum):
    """Why a presented key does not authenticate; the HTTP layer maps each to 401."""

    malformed = "malformed"
    unknown = "unknown"
    revoked = "revoked"
    expired = "expired"


# What a refused credential is told (en / ja): clear enough to act on, naming nothing secret.
REFUSAL_TEXT = {
    KeyRefusal.malformed: "the credential is not in the form cos_<id>_<secret> / 形式が正しくありません",
    KeyRefusal.unknown: "the credential is not known / 認証情報が登録されていません",
    KeyRefusal.revoked: "the credential has been revoked / 認証情報は失効しています",
    KeyRefusal.expired: "the credential has expired; ask for a new one / 有効期限が切れています。再発行を依頼してください",
}


@dataclass(frozen=True)
class Credential:
    """An authenticated credential: who (``caller``), what it may do (``scopes``), its own limit."""

    caller: Caller
    scopes: frozenset[str]
    rate_limit_per_minute: int | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    secret: str  # the whole key: give it to the owner once, never store or log it


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The id part of a presented key, or None when it is not shaped like one of ours."""
    if not presented.startswith(KEY_PREFIX):
        return None
    head, sep, rest = presented[len(KEY_PREFIX) :].partition("_")
    if not sep or len(head) != _ID_HEX_CHARS or not rest:
        return None
    return KEY_PREFIX + head


def issue_key(
    session: Session,
    *,
    owner_kind: OwnerKind,
    owner_id: str,
    purpose: str,
    actor: str,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
    now: datetime | None = None,
) -> IssuedKey:
    """Create a key and audit it (caller commits). The secret is in the result only.

    ``scopes`` None: the kind's ``DEFAULT_SCOPES``. A department or administrator credential without
    ``expires_at`` expires after ``DEFAULT_CREDENTIAL_DAYS``."""
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    key_id = KEY_PREFIX + secrets.token_hex(_ID_HEX_CHARS // 2)
    secret = f"{key_id}_{secrets.token_urlsafe(32)}"
    created = now or datetime.now(UTC)
    scopes = list(DEFAULT_SCOPES[OwnerKind(owner_kind)]) if scopes is None else scopes
    if expires_at is None and OwnerKind(owner_kind) in EXPIRING_KINDS:
        expires_at = created + timedelta(days=DEFAULT_CREDENTIAL_DAYS)
    session.add(
        ApiKey(
            id=key_id,
            secret_sha256=_digest(secret),
            owner_kind=str(owner_kind),
            owner_id=owner_id,
            purpose=purpose,
            scopes=list(scopes or []),
            rate_limit_per_minute=rate_limit_per_minute,
            created_at=created,
            expires_at=expires_at,
        )
    )
    record_audit(
        session,
        actor=actor,
        action="key.issued",
        subject_kind="api_key",
        subject_id=key_id,
        detail={
            "owner_kind": str(owner_kind),
            "owner_id": owner_id,
            "purpose": purpose,
            "scopes": list(scopes or []),
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        at=created,
    )
    return IssuedKey(key_id=key_id, secret=secret)


def revoke_key(session: Session, key_id: str, *, actor: str, now: datetime | None = None) -> bool:
    """Revoke a key (caller commits); False when there is no such key. Revoking twice is a no-op."""
    row = session.get(ApiKey, key_id)
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = now or datetime.now(UTC)
        record_audit(
            session,
            actor=actor,
            action="key.revoked",
            subject_kind="api_key",
            subject_id=key_id,
            at=row.revoked_at,
        )
    return True


def list_keys(
    session: Session, *, owner_kind: OwnerKind | None = None, owner_id: str | None = None
) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if owner_kind is not None:
        query = query.where(ApiKey.owner_kind == str(owner_kind))
    if owner_id is not None:
        query = query.where(ApiKey.owner_id == owner_id)
    return list(session.scalars(query))


def authenticate(session: Session, presented: str, *, now: datetime | None = None) -> Caller | KeyRefusal:
    """The caller a presented key stands for, or why it does not count."""
    found = authenticate_credential(session, presented, now=now)
    return found if isinstance(found, KeyRefusal) else found.caller


def authenticate_credential(
    session: Session, presented: str, *, now: datetime | None = None
) -> Credential | KeyRefusal:
    """The credential a presented key stands for (caller, scopes, limit), or why it does not count."""
    key_id = key_id_of(presented)
    if key_id is None:
        return KeyRefusal.malformed
    row = session.get(ApiKey, key_id)
    # Constant-time comparison of digests: the id is public, the secret must not leak by timing.
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(presented)):
        return KeyRefusal.unknown
    refusal = lifetime_refusal(row, now or datetime.now(UTC))
    if refusal is not None:
        return refusal
    return Credential(caller_of(row), frozenset(row.scopes or ()), row.rate_limit_per_minute)


def lifetime_refusal(row: ApiKey, now: datetime) -> KeyRefusal | None:
    """Why a known key no longer counts at ``now``: revoked, expired, or a department or
    administrator credential issued without an expiry (before expiry was required) -- None if live."""
    if row.revoked_at is not None:
        return KeyRefusal.revoked
    if row.expires_at is None:
        return KeyRefusal.expired if OwnerKind(row.owner_kind) in EXPIRING_KINDS else None
    return KeyRefusal.expired if row.expires_at <= now else None


def caller_of(row: ApiKey) -> Caller:
    kind = _CALLER_KIND[OwnerKind(row.owner_kind)]
    principal = None if kind is CallerKind.developer else row.owner_id
    return Caller(kind=kind, principal=principal, key_id=row.id)


class ApiKeyView(BaseModel):
    """A key as listings show it: id (the visible prefix) and metadata, never a digest or secret.
    ``/api/v1/admin/keys`` and ``cityos keys list`` answer with it; a department's credential
    listing answers with its ``CredentialView`` projection."""

    id: str
    owner_kind: str
    owner_id: str
    purpose: str
    rate_limit_per_minute: int | None
    created_at: Instant
    expires_at: Instant | None
    revoked_at: Instant | None
    state: Literal["active", "revoked", "expired"]

    @classmethod
    def of(cls, row: ApiKey, now: datetime | None = None) -> ApiKeyView:
        refusal = lifetime_refusal(row, now or datetime.now(UTC))
        state: Literal["active", "revoked", "expired"] = "active"
        if refusal is KeyRefusal.revoked:
            state = "revoked"
        elif refusal is not None:
            state = "expired"
        return cls(
            id=row.id,
            owner_kind=row.owner_kind,
            owner_id=row.owner_id,
            purpose=row.purpose,
            rate_limit_per_minute=row.rate_limit_per_minute,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            state=state,
        )


class CredentialView(BaseModel):
    """A department's credential as its listing shows it: the key view's id (as ``key_id``),
    purpose and lifetime, plus the scopes, which decide what the department may do with it."""

    key_id: str
    purpose: str
    scopes: list[str] | None
    created_at: Instant
    expires_at: Instant | None
    revoked_at: Instant | None

    @classmethod
    def of(cls, row: ApiKey) -> CredentialView:
        key = ApiKeyView.of(row)
        return cls(
            key_id=key.id,
            purpose=key.purpose,
            scopes=row.scopes,
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )

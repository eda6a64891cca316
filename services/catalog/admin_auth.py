"""Credentials of the catalog's API: one gate in front of every route, and the dependencies the
routers read the authenticated credential through.

Every request except the probes and ``/metrics`` (``route_policy.OPEN_PATHS``) carries
``Authorization: Bearer <credential>``: an administrator's personal credential (``cityos admins
issue NAME``; audited as ``admin:NAME``), a department's credential or an applicant's key. The
break-glass token (``CITYOS_ADMIN_TOKEN``, empty by default) also acts as an administrator, audited
as ``admin:break-glass`` and logged at every use: it is for regaining access, not for daily work.

``CatalogGate`` answers refusals before any handler runs: 401 (no credential, or one that is
unknown, revoked or expired -- the answer says which), 403 (``route_policy`` refuses the kind or
scope), 429 (over the limit: per credential, and per address for refused or missing credentials,
so guessing credentials is throttled).
"""

# No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations at runtime.

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
import orjson
from fastapi import HTTPException, Request
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from cityos.domain.access import Caller, CallerKind
from cityos.domain.apikeys import (
    REFUSAL_TEXT,
    SCOPE_ADMIN,
    Credential,
    KeyRefusal,
    authenticate_credential,
    key_id_of,
)
from cityos.kernel.ratelimit import Decision, RateLimiter
from cityos.kernel.settings import Settings
from services.catalog.route_policy import OPEN_PATHS, refusal, rule_for

log = logging.getLogger(__name__)

CREDENTIAL_STATE_KEY = "credential"
BREAK_GLASS = Credential(Caller(CallerKind.admin, principal="break-glass"), frozenset({SCOPE_ADMIN}))
_MISSING = "a Bearer credential is required / Bearer 認証情報が必要です"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_break_glass(token: str, admin_token: str) -> bool:
    """Whether `token` is the break-glass token; never when none is configured. Constant-time,
    so the comparison does not tell an attacker how much of a guess was right."""
    return bool(admin_token) and hmac.compare_digest(token.encode(), admin_token.encode())


def resolve(session: Session, token: str, settings: Settings) -> Credential | KeyRefusal:
    """The credential a presented token stands for, or why it does not count."""
    if is_break_glass(token, settings.admin_token):
        log.warning("break-glass administrator token used (CITYOS_ADMIN_TOKEN); audited as admin:break-glass")
        return BREAK_GLASS
    return authenticate_credential(session, token)


def credential_of(request: Request, session: Session, settings: Settings) -> Credential:
    """The request's credential: as ``CatalogGate`` resolved it, or resolved here when a router
    runs without the gate (its unit tests); 401 when there is none or it does not count."""
    found = request.scope.get("state", {}).get(CREDENTIAL_STATE_KEY)
    if isinstance(found, Credential):
        return found
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise HTTPException(401, _MISSING, _CHALLENGE)
    result = resolve(session, token, settings)
    if isinstance(result, KeyRefusal):
        raise HTTPException(401, REFUSAL_TEXT[result], _CHALLENGE)
    return result


def admin_actor(credential: Credential) -> str:
    """The acting administrator's audit name; 403 for any other credential."""
    if credential.caller.kind is not CallerKind.admin:
        raise HTTPException(403, "administrators only / 管理者のみ")
    return credential.caller.actor


@dataclass(frozen=True, slots=True)
class GateSettings:
    per_credential_per_minute: int
    per_unauthenticated_address_per_minute: int


class CatalogGate:
    """Pure ASGI middleware in front of every catalog route: authenticate, limit, authorize."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: Callable[[], Session],
        settings: Settings,
        routes: list[BaseRoute],
        limiter: RateLimiter,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.settings = settings
        self.routes = routes
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        token = bearer(_header(scope, b"authorization"))
        if token is None:
            await self._unauthenticated(scope, send, _MISSING)
            return
        result = await anyio.to_thread.run_sync(self._resolve, token)
        if isinstance(result, KeyRefusal):
            log.info("refused catalog credential %s: %s", key_id_of(token) or "(not a key)", result)
            await self._unauthenticated(scope, send, REFUSAL_TEXT[result])
            return
        identity = f"key:{result.caller.key_id or result.caller.actor}"
        limit = result.rate_limit_per_minute or self.settings.catalog_rate_per_minute
        decision = self.limiter.check(identity, limit)
        if not decision.allowed:
            await _too_many(send, decision)
            return
        why = refusal(rule_for(scope["method"], self._route(scope)), result)
        if why is not None:
            await _send_json(send, 403, {"error": "forbidden", "detail": why})
            return
        scope.setdefault("state", {})[CREDENTIAL_STATE_KEY] = result
        await self.app(scope, receive, send)

    def _resolve(self, token: str) -> Credential | KeyRefusal:
        with self.sessions() as session:
            return resolve(session, token, self.settings)

    def _route(self, scope: Scope) -> str | None:
        """The template of the route the request matches (its path, whatever the method), if any."""
        for candidate in self.routes:
            match, _ = candidate.matches(scope)
            path = getattr(candidate, "path", None)
            if match is Match.FULL and isinstance(path, str):
                return path
        return None

    async def _unauthenticated(self, scope: Scope, send: Send, detail: str) -> None:
        """401, counted against the sender's address: once its allowance is spent, 429."""
        client = scope.get("client")
        # The address only keys an in-memory bucket: it is never logged, stored or used as a label.
        address = client[0] if client else "unknown"
        decision = self.limiter.check(
            f"addr:{address}", self.settings.catalog_unauthenticated_rate_per_minute
        )
        if not decision.allowed:
            await _too_many(send, decision)
            return
        await _send_json(send, 401, {"error": "unauthenticated", "detail": detail}, _CHALLENGE)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _too_many(send: Send, decision: Decision) -> None:
    detail = f"over {decision.limit} requests per minute; retry after {decision.retry_after_s} s"
    await _send_json(send, 429, {"error": "rate_limited", "detail": detail}, decision.headers())


async def _send_json(
    send: Send, status: int, body: dict[str, str], headers: dict[str, str] | None = None
) -> None:
    payload = orjson.dumps(body)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})

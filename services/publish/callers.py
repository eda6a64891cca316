"""Who is calling, and may they call now: API-key resolution and rate limits for every data route.

A pure ASGI middleware so that refusals (401, 403, 429) are answered before any handler runs, and the
resolved ``Caller`` reaches every handler through ``request.state.caller``. Keys come from
``Authorization: Bearer <key>`` or ``X-API-Key``, else from the site's login cookie; only the key's
id is ever logged or counted.

Anonymous callers read public data. A presented credential must be valid and carry ``records:read``
(everything publish serves is a read), whatever its kind. A refused credential counts against its
sender's address like an anonymous request, so guessing keys runs into 429 like any flood.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
import orjson
from sqlalchemy.orm import Session
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityos.domain.access import ANONYMOUS, Caller, CallerKind
from cityos.domain.apikeys import (
    REFUSAL_TEXT,
    SCOPE_READ,
    Credential,
    KeyRefusal,
    authenticate_credential,
    key_id_of,
)
from cityos.kernel.ratelimit import Decision, RateLimiter
from services.publish.metrics import PublishMetrics

log = logging.getLogger(__name__)

CALLER_STATE_KEY = "caller"
# The site's login keeps the department's credential in this cookie (HttpOnly, SameSite=Strict),
# read like ``Authorization: Bearer`` when a request carries no key in its headers.
SESSION_COOKIE = "cityos_key"
CLEAR_SESSION_COOKIE = f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
# Operational routes stay reachable without a key and unthrottled: probes and Prometheus must work
# even when a client floods the API.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Static files (the site's stylesheet and scripts, the vendored map and docs libraries) are the same
# bytes for everyone and cost nothing to serve: one page view must not spend a visitor's allowance.
UNLIMITED_PREFIX = "/static/"


@dataclass(frozen=True, slots=True)
class LimitSettings:
    anonymous_per_minute: int
    registered_per_minute: int


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key a request carries, if any: ``Authorization: Bearer`` first, then ``X-API-Key``."""
    bearer = api_key = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
        elif name == b"x-api-key" and value.strip():
            api_key = value.decode("latin-1").strip()
    return bearer or api_key


def cookie_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key the site's login cookie carries, if any."""
    for name, value in headers:
        if name == b"cookie":
            key = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE, "").strip()
            if key:
                return key
    return None


# Where the middleware leaves, for a handler that checks a credential itself (the site's login
# form), the charge of one refused credential against the sender's address.
REFUSAL_CHARGE_KEY = "cityos.charge_refusal"


def _resolve(sessions: Callable[[], Session], key: str) -> Credential | KeyRefusal:
    with sessions() as session:
        return authenticate_credential(session, key)


def scope_refusal(credential: Credential) -> str | None:
    """Why a valid credential may not read here (None: it may): every publish route reads data."""
    if credential.allows(SCOPE_READ):
        return None
    return f"this credential lacks the {SCOPE_READ} scope / この認証情報には {SCOPE_READ} の権限がありません"


class CallerMiddleware:
    """Resolves the caller, enforces its rate limit, and adds ``RateLimit-*`` headers to answers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: Callable[[], Session],
        limiter: RateLimiter,
        limits: LimitSettings,
        metrics: PublishMetrics,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.sessions = sessions
        self.limiter = limiter
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in UNLIMITED_PATHS or path.startswith(UNLIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        headers = scope.get("headers", [])
        key = presented_key(headers)
        from_cookie = key is None and (key := cookie_key(headers)) is not None
        caller, own_limit, credential = ANONYMOUS, None, None
        stale_cookie = False
        if key is not None:
            result = await anyio.to_thread.run_sync(_resolve, self.sessions, key)
            if isinstance(result, KeyRefusal) and not from_cookie:
                await self._refuse_key(scope, send, key, result)
                return
            if isinstance(result, KeyRefusal):
                # A login cookie whose credential was revoked or expired since: the visitor goes on
                # as anonymous (counted against the address as any anonymous request) and the
                # browser is told to forget the cookie, rather than every page answering 401.
                log.info("refused login cookie %s: %s", key_id_of(key) or "(malformed)", result)
                stale_cookie = True
            else:
                caller, own_limit, credential = result.caller, result.rate_limit_per_minute, result
        state[CALLER_STATE_KEY] = caller
        state[REFUSAL_CHARGE_KEY] = lambda: self.limiter.check(*self._identity(scope, ANONYMOUS, None))
        decision = self.limiter.check(*self._identity(scope, caller, own_limit))
        if not decision.allowed:
            await self._too_many(send, caller, decision)
            return
        refusal = scope_refusal(credential) if credential is not None else None
        if refusal is not None:
            await _send_json(send, 403, {"error": "missing_scope", "detail": refusal}, decision.headers())
            return

        async def with_limit_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]
                if stale_cookie:
                    extra.append((b"set-cookie", CLEAR_SESSION_COOKIE.encode()))
                headers = list(message.get("headers", []))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, with_limit_headers)

    async def _refuse_key(self, scope: Scope, send: Send, key: str, refusal: KeyRefusal) -> None:
        """401 for a refused key, counted against the sender's address: once that address's
        anonymous allowance is spent, further guesses get 429 (with ``Retry-After``) instead."""
        # The id part only: never the secret, not even in a log line.
        log.info("refused API key %s: %s", key_id_of(key) or "(malformed)", refusal)
        decision = self.limiter.check(*self._identity(scope, ANONYMOUS, None))
        if not decision.allowed:
            await self._too_many(send, ANONYMOUS, decision)
            return
        await _send_json(send, 401, {"error": "invalid_api_key", "detail": REFUSAL_TEXT[refusal]},
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip

    async def _too_many(self, send: Send, caller: Caller, decision: Decision) -> None:
        self.metrics.rate_limited.labels(str(caller.kind)).inc()
        await _send_json(
            send,
            429,
            {"error": "rate_limited", "detail": f"over {decision.limit} requests per minute; "
             f"retry after {decision.retry_after_s} s, or use an API key for a higher limit"},
            decision.headers(),
        )  # fmt: skip

    def _identity(self, scope: Scope, caller: Caller, own_limit: int | None) -> tuple[str, int]:
        if caller.kind is CallerKind.anonymous:
            client = scope.get("client")
            address = client[0] if client else "unknown"
            # The address only keys an in-memory bucket: it is never logged, stored or used as a label.
            return f"anon:{address}", self.limits.anonymous_per_minute
        return f"key:{caller.key_id}", own_limit or self.limits.registered_per_minute


async def _send_json(send: Send, status: int, body: dict[str, str], headers: dict[str, str]) -> None:
    payload = orjson.dumps(body)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})

"""Who is calling, and may they call now: API-key resolution and rate limits for every data route.

A pure ASGI middleware so that refusals (401, 429) are answered before any handler runs, and the
resolved ``Caller`` reaches every handler through ``request.state.caller``. Keys come from
``Authorization: Bearer <key>`` or ``X-API-Key``; only the key's id is ever logged or counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
import orjson
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityos.domain.access import ANONYMOUS, Caller, CallerKind
from cityos.domain.apikeys import KeyRefusal, authenticate, key_id_of
from cityos.kernel.db.models import ApiKey
from services.publish.limits import RateLimiter
from services.publish.metrics import PublishMetrics

log = logging.getLogger(__name__)

CALLER_STATE_KEY = "caller"
# Operational routes stay reachable without a key and unthrottled: probes and Prometheus must work
# even when a client floods the API.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_REFUSAL_TEXT = {
    KeyRefusal.malformed: "the API key is not in the form cos_<id>_<secret>",
    KeyRefusal.unknown: "the API key is not known",
    KeyRefusal.revoked: "the API key has been revoked",
    KeyRefusal.expired: "the API key has expired",
}


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


def _resolve(sessions: Callable[[], Session], key: str) -> tuple[Caller | KeyRefusal, int | None]:
    with sessions() as session:
        result = authenticate(session, key)
        limit = None
        if isinstance(result, Caller) and result.key_id is not None:
            row = session.get(ApiKey, result.key_id)
            limit = row.rate_limit_per_minute if row is not None else None
        return result, limit


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
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        key = presented_key(scope.get("headers", []))
        caller, own_limit = ANONYMOUS, None
        if key is not None:
            result, own_limit = await anyio.to_thread.run_sync(_resolve, self.sessions, key)
            if isinstance(result, KeyRefusal):
                # The id part only: never the secret, not even in a log line.
                log.info("refused API key %s: %s", key_id_of(key) or "(malformed)", result)
                await _send_json(send, 401, {"error": "invalid_api_key", "detail": _REFUSAL_TEXT[result]},
                                 {"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip
                return
            caller = result
        state[CALLER_STATE_KEY] = caller
        decision = self.limiter.check(*self._identity(scope, caller, own_limit))
        if not decision.allowed:
            self.metrics.rate_limited.labels(str(caller.kind)).inc()
            await _send_json(
                send,
                429,
                {"error": "rate_limited", "detail": f"over {decision.limit} requests per minute; "
                 f"retry after {decision.retry_after_s} s, or use an API key for a higher limit"},
                decision.headers(),
            )  # fmt: skip
            return

        async def with_limit_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]
                headers = list(message.get("headers", []))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, with_limit_headers)

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

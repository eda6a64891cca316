"""One cap on the size of a request body, for every HTTP service, enforced before anything parses it.

A service that reads a whole body into memory (JSON, forms) can be made to hold whatever a client
sends: a single 500 MB POST once took the open-data API from 150 MB to over 1 GB. This ASGI
middleware refuses such a request with 413 while reading it, so no handler ever sees more than the
cap. ``Content-Length`` is only a promise: a body without one (chunked) or longer than it declared
is counted as it streams in and cut off at the cap just the same.

Plain ASGI (no web framework), so every service's app can wrap itself with it in one line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Enough for any JSON document the services take (the largest dataset schema is about 14 kB), far
# below what would strain a process's memory.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# More digits than any real body length has: refused without converting the text to a number.
_MAX_LENGTH_DIGITS = 18


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The body length the client declares; None when it declares none (or nothing readable, which
    the HTTP server refuses by itself). Absurdly long digit strings count as "too large" lengths."""
    for name, value in headers:
        if name.lower() == b"content-length":
            text = value.strip()
            if not text.isdigit():
                return None
            return int(text) if len(text) <= _MAX_LENGTH_DIGITS else 10**_MAX_LENGTH_DIGITS
    return None


def too_large_body(max_body_bytes: int) -> bytes:
    """The 413's JSON body: says what the cap is, in English and Japanese."""
    return orjson.dumps(
        {
            "error": "request_too_large",
            "detail": f"the request body is larger than {max_body_bytes} bytes",
            "detail_ja": f"リクエスト本文が上限（{max_body_bytes} バイト）を超えています",
            "max_body_bytes": max_body_bytes,
        }
    )


async def _send_refusal(send: Send, max_body_bytes: int) -> None:
    body = too_large_body(max_body_bytes)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read, so this connection cannot carry another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyGuard:
    """One request's view of the body: counts what arrives and answers 413 at the cap."""

    def __init__(self, receive: Receive, send: Send, max_body_bytes: int) -> None:
        self._receive = receive
        self._send = send
        self._max = max_body_bytes
        self._received = 0
        self.response_started = False
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._max:
                self.refused = True
                if not self.response_started:
                    await _send_refusal(self._send, self._max)
                # To the handler the client is gone: it stops reading and whatever it answers is dropped.
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)


class BodyLimitMiddleware:
    """Refuses, with 413, every HTTP request whose body is larger than ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope["headers"])
        if declared is not None and declared > self.max_body_bytes:
            # Refused before a byte of the body is read.
            await _send_refusal(send, self.max_body_bytes)
            return
        guard = _BodyGuard(receive, send, self.max_body_bytes)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            # A handler that fails on the cut-off body ("client disconnected") was already answered.
            if not guard.refused:
                raise

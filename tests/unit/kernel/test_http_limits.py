"""The body cap as ASGI: refused before the handler reads, whatever the client declares."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from cityos.kernel.http_limits import BodyLimitMiddleware, Message, Receive, Scope, Send, declared_length

CAP = 1_000


class EchoApp:
    """Reads the whole body the way a framework does, then answers 200 with its length."""

    def __init__(self) -> None:
        self.called = False
        self.read: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionError("client went away")  # what a framework raises here
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.read = len(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


def _run(
    app: EchoApp, chunks: Sequence[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[list[Message], int]:
    """The messages the client gets, and how many body chunks the server was asked for."""
    sent: list[Message] = []
    pending = list(chunks)
    asked = 0

    async def receive() -> Message:
        nonlocal asked
        asked += 1
        chunk = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodyLimitMiddleware(app, max_body_bytes=CAP)(scope, receive, send))
    return sent, asked


def _status(sent: list[Message]) -> int:
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def _body(sent: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_read() -> None:
    app = EchoApp()
    sent, asked = _run(app, [b"x" * 10], [(b"content-length", b"500000000")])
    assert _status(sent) == 413
    assert asked == 0 and not app.called
    refusal = orjson.loads(_body(sent))
    assert refusal["max_body_bytes"] == CAP
    assert "1000" in refusal["detail"] and "バイト" in refusal["detail_ja"]
    assert (b"connection", b"close") in next(m for m in sent if m["type"] == "http.response.start")["headers"]


def test_a_streamed_body_without_a_length_is_cut_off_at_the_cap() -> None:
    app = EchoApp()
    sent, asked = _run(app, [b"x" * 400] * 10, [(b"transfer-encoding", b"chunked")])
    assert _status(sent) == 413
    assert asked == 3  # 1,200 bytes: over the cap at the third chunk, and nothing more is read
    assert app.read is None
    # Only the refusal reaches the client, not what the failing handler tried to say.
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_a_body_longer_than_its_declared_length_is_counted_too() -> None:
    app = EchoApp()
    sent, _ = _run(app, [b"x" * 600, b"x" * 600], [(b"content-length", b"10")])
    assert _status(sent) == 413


def test_a_body_within_the_cap_reaches_the_handler_whole() -> None:
    app = EchoApp()
    sent, _ = _run(app, [b"x" * 500, b"x" * 500], [(b"content-length", b"1000")])
    assert _status(sent) == 200
    assert _body(sent) == b"1000"


def test_other_scopes_pass_untouched() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    asyncio.run(BodyLimitMiddleware(app, max_body_bytes=CAP)({"type": "lifespan"}, receive, send))
    assert seen == ["lifespan"]


def test_declared_length_reads_the_header_and_bounds_absurd_ones() -> None:
    assert declared_length([(b"Content-Length", b"42")]) == 42
    assert declared_length([(b"host", b"x")]) is None
    assert declared_length([(b"content-length", b"-1")]) is None  # the server refuses it itself
    assert declared_length([(b"content-length", b"9" * 5000)]) == 10**18

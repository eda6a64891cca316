"""Helpers of the security tests that try to stall a service: a stack with open data in it, raw HTTP
requests that lie about their bodies, and latency figures of the probes sent meanwhile."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from cityos.kernel.settings import REPO_ROOT
from tests.support.publish import events, load, yaizu_aed_rows
from tests.support.publish_catalog import TOILETS
from tests.support.stack import Stack

T = TypeVar("T")
SCHEMAS = REPO_ROOT / "schemas"


def fill_and_start(stack: Stack, *services: str) -> None:
    """The real Yaizu AED file and a few public toilets in the stack's catalog, then ``services``
    started; the anonymous rate limit is lifted so that it never answers in place of the service."""
    rows = yaizu_aed_rows(SCHEMAS)
    toilets = [(str(t["ID"]), t) for t in TOILETS]
    engine = load(
        stack.database_url, SCHEMAS, events("aed", rows) + events("public-toilet", toilets, start=1_000)
    )
    engine.dispose()
    stack.extra_env["CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE"] = "10000000"
    stack.start(*services)


@dataclass(frozen=True)
class RawAnswer:
    status: int
    body: bytes
    seconds: float


def raw_post(port: int, path: str, headers: dict[str, str], chunks: Iterable[bytes]) -> RawAnswer:
    """A POST written byte by byte on a socket: headers as given (a false or missing length), then
    ``chunks`` until the server answers or stops reading; then its answer."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed while we were still sending: what we test for
        return _read_answer(sock, started)


def _read_answer(sock: socket.socket, started: float) -> RawAnswer:
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    length = next(
        (int(line.split(":", 1)[1]) for line in header_lines if line.lower().startswith("content-length:")), 0
    )
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            break
        body += data
    return RawAnswer(int(status_line.split()[1]), body, time.perf_counter() - started)


def chunked(total: int, size: int = 64 * 1024) -> Iterable[bytes]:
    """``total`` bytes as HTTP/1.1 chunks (no length declared up front), then the last chunk."""
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        yield f"{part:x}\r\n".encode() + b"x" * part + b"\r\n"
        sent += part
    yield b"0\r\n\r\n"


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass(frozen=True)
class Latencies:
    """Seconds each probe took."""

    seconds: list[float]

    def quantile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    @property
    def worst(self) -> float:
        return max(self.seconds)

    def line(self, label: str) -> str:
        return (
            f"{label}: n={len(self.seconds)} p50={self.p50 * 1000:.1f} ms p99={self.p99 * 1000:.1f} ms "
            f"max={self.worst * 1000:.1f} ms"
        )


def probe_while(work: Callable[[], T], probe_url: str, interval_s: float = 0.02) -> tuple[T, Latencies]:
    """Runs ``work`` in a thread while GETting ``probe_url`` every ``interval_s``: its result, and how
    long each probe took meanwhile (each probe asserted 200)."""
    outcome: list[T] = []
    thread = threading.Thread(target=lambda: outcome.append(work()), daemon=True)
    seconds: list[float] = []
    with httpx.Client(timeout=10) as client:
        thread.start()
        while thread.is_alive() or not seconds:
            started = time.perf_counter()
            assert client.get(probe_url).status_code == 200
            seconds.append(time.perf_counter() - started)
            time.sleep(interval_s)
    thread.join()
    return outcome[0], Latencies(seconds)

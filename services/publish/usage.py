"""Usage accounting: requests, rows and bytes served per dataset, format and caller.

Handlers open a ``Tally`` for the dataset they serve (only after ``read_access`` allowed it, so a
hidden dataset never appears); ``UsageMiddleware`` counts the body bytes actually sent and, once the
response is finished, adds the tally to Prometheus and to the in-memory ``UsageBuffer``. The buffer
is flushed to ``usage_counters`` by a background thread: one upsert per (hour, dataset, caller,
format) and flush interval, never one write per request.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityos.domain.access import Caller
from cityos.kernel.db.publish_models import UsageCounter
from cityos.kernel.secret_store import read_or_create_secret
from services.publish.callers import CALLER_STATE_KEY
from services.publish.metrics import PublishMetrics

log = logging.getLogger(__name__)

TALLY_STATE_KEY = "usage_tally"
ANONYMOUS_KEY_ID = ""

_Key = tuple[datetime, str, str, str, str]  # hour, dataset, key class, key id, format


@dataclass(slots=True)
class Tally:
    """What one response served; handlers (and streaming generators) add rows as they go."""

    dataset_id: str
    format: str
    rows: int = 0


def open_tally(state: Any, dataset_id: str, response_format: str) -> Tally:
    """Start counting a response of ``dataset_id``; call only after ``read_access`` allowed it."""
    tally = Tally(dataset_id, response_format)
    setattr(state, TALLY_STATE_KEY, tally)
    return tally


def key_class(caller: Caller) -> str:
    return str(caller.kind)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class UsageBuffer:
    """Counters added in memory, drained into the database by ``flush``."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[_Key, list[int]] = {}

    def add(self, caller: Caller, tally: Tally, sent_bytes: int) -> None:
        key = (
            hour_of(self._clock()),
            tally.dataset_id,
            key_class(caller),
            caller.key_id or ANONYMOUS_KEY_ID,
            tally.format,
        )
        with self._lock:
            counts = self._pending.setdefault(key, [0, 0, 0])
            counts[0] += 1
            counts[1] += tally.rows
            counts[2] += sent_bytes

    def drain(self) -> dict[_Key, list[int]]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def restore(self, pending: dict[_Key, list[int]]) -> None:
        """Put back counts whose flush failed, so a database outage loses nothing."""
        with self._lock:
            for key, (requests, rows, sent) in pending.items():
                counts = self._pending.setdefault(key, [0, 0, 0])
                counts[0] += requests
                counts[1] += rows
                counts[2] += sent

    def flush(self, sessions: Callable[[], Session]) -> int:
        """Write pending counts (one transaction); returns the number of counter rows touched."""
        pending = self.drain()
        if not pending:
            return 0
        try:
            with sessions() as session, session.begin():
                add_counts(session, pending)
        except Exception:
            self.restore(pending)
            raise
        return len(pending)


def add_counts(session: Session, pending: dict[_Key, list[int]]) -> None:
    """Upsert: add to existing counters (several publish processes may flush the same hour)."""
    dialect = session.get_bind(mapper=UsageCounter.__mapper__).dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = UsageCounter.__table__
    assert isinstance(table, Table)
    for (hour, dataset_id, klass, key_id, fmt), (requests, rows, sent) in sorted(pending.items()):
        statement = insert(table).values(
            hour=hour, dataset_id=dataset_id, key_class=klass, key_id=key_id, format=fmt,
            requests=requests, rows=rows, bytes=sent,
        )  # fmt: skip
        statement = statement.on_conflict_do_update(
            index_elements=["hour", "dataset_id", "key_class", "key_id", "format"],
            set_={
                "requests": table.c.requests + statement.excluded.requests,
                "rows": table.c.rows + statement.excluded.rows,
                "bytes": table.c.bytes + statement.excluded.bytes,
            },
        )
        session.execute(statement)


class Flusher:
    """Background thread that flushes the buffer every ``interval_s`` and once more on stop."""

    def __init__(self, buffer: UsageBuffer, sessions: Callable[[], Session], interval_s: float) -> None:
        self.buffer = buffer
        self.sessions = sessions
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _flush_logged(self) -> None:
        try:
            self.buffer.flush(self.sessions)
        except Exception:  # the counts were restored; try again next interval
            log.exception("usage flush failed; counts kept in memory for the next attempt")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._flush_logged()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._flush_logged()


class UsageMiddleware:
    """Counts body bytes of responses that opened a tally and records them when the body is done."""

    def __init__(self, app: ASGIApp, *, buffer: UsageBuffer, metrics: PublishMetrics) -> None:
        self.app = app
        self.buffer = buffer
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        sent = 0
        status = 0

        async def counting(message: Message) -> None:
            nonlocal sent, status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            tally = state.get(TALLY_STATE_KEY)
            caller = state.get(CALLER_STATE_KEY)
            # Only successful answers count as served data (a 304 serves no body, but is a request).
            if isinstance(tally, Tally) and isinstance(caller, Caller) and status in (200, 304):
                klass = key_class(caller)
                labels = (tally.dataset_id, tally.format, klass)
                self.metrics.dataset_requests_series(*labels).inc()
                self.metrics.rows_served_series(*labels).inc(tally.rows)
                self.metrics.bytes_served_series(*labels).inc(sent)
                self.buffer.add(caller, tally, sent)


# --- report -----------------------------------------------------------------------------------


PSEUDONYM_SECRET = "usage-pseudonym-key"


@functools.cache
def pseudonym_key(secrets_dir: Path) -> bytes:
    """The server's secret behind usage pseudonyms, created on first use (``secret_store``)."""
    return read_or_create_secret(secrets_dir, PSEUDONYM_SECRET).encode()


def hashed_key(key_id: str, secret: bytes) -> str:
    """A stable pseudonym for a key in the public report: counts per key, without naming it.

    Keyed (HMAC-SHA256 with a server secret): a key's public id is short enough that a plain hash
    of every possible id could be computed, which would name every key in the open report.
    """
    if not key_id:
        return ""
    return hmac.new(secret, key_id.encode(), hashlib.sha256).hexdigest()[:16]


REPORT_COLUMNS = ("hour", "dataset", "key_class", "key", "format", "requests", "rows", "bytes")


def usage_rows(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    dataset_ids: Iterable[str],
    pseudonym_secret: bytes,
    key_id: str | None = None,
) -> list[dict[str, Any]]:
    """Counters in [start, end) for the given (visible) datasets, optionally one key, by hour; keys
    appear as their pseudonyms under ``pseudonym_secret``."""
    ids = list(dataset_ids)
    if not ids:
        return []
    statement = (
        select(UsageCounter)
        .where(UsageCounter.hour >= hour_of(start), UsageCounter.hour < end)
        .where(UsageCounter.dataset_id.in_(ids))
        .order_by(UsageCounter.hour, UsageCounter.dataset_id, UsageCounter.key_class, UsageCounter.key_id,
                  UsageCounter.format)
    )  # fmt: skip
    if key_id is not None:
        statement = statement.where(UsageCounter.key_id == key_id)
    return [
        {
            "hour": row.hour.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "dataset": row.dataset_id,
            "key_class": row.key_class,
            "key": hashed_key(row.key_id, pseudonym_secret),
            "format": row.format,
            "requests": row.requests,
            "rows": row.rows,
            "bytes": row.bytes,
        }
        for row in session.scalars(statement)
    ]

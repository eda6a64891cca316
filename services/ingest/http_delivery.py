"""What the HTTP ingestion service needs from the outside world: the broker and the credential store.

``KafkaDelivery`` produces accepted events with the idempotent, fully acknowledged producer every
ingest process uses and tells the request handler once the broker acknowledged *every* one of them
(a 202 is a promise that nothing is lost). It also watches whether the broker answers, so the
service says "not ready" (503) instead of taking events it could not deliver.

``CredentialCache`` resolves API keys against the catalog's database, remembering a good key for a
few seconds so a busy sender costs one lookup per interval, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread
from confluent_kafka import KafkaException, Producer
from sqlalchemy.orm import Session

from cityos.domain.apikeys import Credential, KeyRefusal, authenticate_credential
from services.ingest.routing import OutboundMessage

log = logging.getLogger(__name__)

# How long the producer keeps trying one event before reporting it failed; the request waits a
# little longer, then answers 503 so the sender retries (the catalog's ledger absorbs repeats).
DELIVERY_TIMEOUT_MS = 15_000
_ANSWER_GRACE_S = 5.0
# How often broker reachability is checked, and how long one check may take.
READINESS_EVERY_S = 1.0
READINESS_TIMEOUT_S = 2.0
# A full local queue is waited out for at most this long before the request answers 503.
QUEUE_FULL_WAIT_S = 5.0


class _Pending:
    """Acknowledgements still awaited for one request; settles its future once all arrived."""

    __slots__ = ("_lock", "failed", "future", "loop", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[bool] = loop.create_future()
        self.remaining = count
        self.failed = False
        self._lock = threading.Lock()

    def done(self, error: Any, _message: Any = None) -> None:
        """Delivery report (producer's poll thread) or a local failure (event loop thread)."""
        with self._lock:
            if error is not None:
                self.failed = True
            self.remaining -= 1
            finished = self.remaining == 0
        if finished:
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self.future.done():
            self.future.set_result(not self.failed)


class KafkaDelivery:
    """Produces to the validated topic; ``deliver`` answers True only when every event is durable."""

    def __init__(self, producer: Producer, readiness_topic: str) -> None:
        self._producer = producer
        self._topic = readiness_topic
        self._stop = threading.Event()
        self._ready = False
        self._threads = [
            threading.Thread(target=self._serve_reports, name="delivery-reports", daemon=True),
            threading.Thread(target=self._watch_broker, name="broker-readiness", daemon=True),
        ]

    @property
    def ready(self) -> bool:
        return self._ready

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Deliver what is in flight, then stop (a clean stop loses nothing either)."""
        self._stop.set()
        self._producer.flush(DELIVERY_TIMEOUT_MS / 1000)

    async def deliver(self, messages: Sequence[OutboundMessage]) -> bool:
        if not messages:
            return True
        pending = _Pending(asyncio.get_running_loop(), len(messages))
        for message in messages:
            await self._produce(message, pending)
        try:
            return await asyncio.wait_for(pending.future, DELIVERY_TIMEOUT_MS / 1000 + _ANSWER_GRACE_S)
        except TimeoutError:
            return False

    async def _produce(self, message: OutboundMessage, pending: _Pending) -> None:
        deadline = time.monotonic() + QUEUE_FULL_WAIT_S
        while True:
            try:
                self._producer.produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=message.headers,
                    timestamp=message.timestamp_ms or 0,
                    on_delivery=pending.done,
                )
                return
            except BufferError:
                if time.monotonic() > deadline:
                    pending.done("local queue full")
                    return
                await asyncio.sleep(0.01)  # the reports thread drains the queue meanwhile
            except KafkaException as exc:
                pending.done(exc)
                return

    def _serve_reports(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _watch_broker(self) -> None:
        while not self._stop.is_set():
            self._ready = self._broker_answers()
            self._stop.wait(READINESS_EVERY_S)

    def _broker_answers(self) -> bool:
        try:
            metadata = self._producer.list_topics(self._topic, timeout=READINESS_TIMEOUT_S)
        except KafkaException:
            return False
        found = metadata.topics.get(self._topic)
        return found is not None and found.error is None and bool(metadata.brokers)


# A good key is trusted this long without asking the database again: a revoked key stops
# working within this time.
CREDENTIAL_TTL_S = 5.0
_MAX_CACHED = 10_000


class CredentialCache:
    """``authenticate_credential`` against the catalog database, good answers kept ``ttl_s``."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        *,
        ttl_s: float = CREDENTIAL_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._clock = clock
        self._known: dict[str, tuple[Credential, float]] = {}

    async def resolve(self, presented: str) -> Credential | KeyRefusal:
        cached = self._known.get(presented)
        now = self._clock()
        if cached is not None and now - cached[1] < self._ttl_s:
            return cached[0]
        found = await anyio.to_thread.run_sync(self._lookup, presented)
        if isinstance(found, Credential):
            if len(self._known) >= _MAX_CACHED:
                self._known.clear()
            self._known[presented] = (found, now)
        else:
            self._known.pop(presented, None)
        return found

    def _lookup(self, presented: str) -> Credential | KeyRefusal:
        with self._sessions() as session:
            return authenticate_credential(session, presented)

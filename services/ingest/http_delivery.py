"""What the HTTP ingestion service needs from the outside world: the broker and the credential store.

``KafkaDelivery`` produces accepted events with the idempotent, fully acknowledged producers every
ingest process uses and tells the request handler once the broker acknowledged *every* one of them
(a 202 is a promise that nothing is lost). It also watches whether the broker answers, so the
service says "not ready" (503) instead of taking events it could not deliver.

``CredentialCache`` resolves API keys against the catalog's database, remembering a good key for a
few seconds so a busy sender costs one lookup per interval, not one per request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import anyio.to_thread
from confluent_kafka import KafkaException, Producer
from sqlalchemy.orm import Session

from cityos.domain.apikeys import Credential, KeyRefusal, authenticate_credential
from services.ingest.routing import OutboundMessage

# How long the producer keeps trying one event before reporting it failed; the request waits a
# little longer, then answers 503 so the sender retries (the catalog's ledger absorbs repeats).
DELIVERY_TIMEOUT_MS = 15_000
_ANSWER_GRACE_S = 5.0
# How often broker reachability is checked, and how long one check may take.
READINESS_EVERY_S = 1.0
READINESS_TIMEOUT_S = 2.0
# A full local queue is waited out for at most this long before the request answers 503.
QUEUE_FULL_WAIT_S = 5.0


class KafkaDelivery:
    """Produces to the validated topic; ``deliver`` answers True only when every event is durable.

    Each request borrows one producer of a small pool, produces its events and flushes that
    producer: the flush returns once the broker acknowledged every one of them, so success costs no
    per-event report (the producers report failures only, and any failure refuses the 202)."""

    def __init__(self, producers: Sequence[Producer], readiness_topic: str) -> None:
        self._producers = list(producers)
        self._idle: asyncio.Queue[Producer] = asyncio.Queue()
        for producer in self._producers:
            self._idle.put_nowait(producer)
        self._topic = readiness_topic
        self._stop = threading.Event()
        self._ready = False
        self._watcher = threading.Thread(target=self._watch_broker, name="broker-readiness", daemon=True)

    @property
    def ready(self) -> bool:
        return self._ready

    def start(self) -> None:
        self._watcher.start()

    def close(self) -> None:
        """Deliver what is in flight, then stop (a clean stop loses nothing either)."""
        self._stop.set()
        for producer in self._producers:
            producer.flush(DELIVERY_TIMEOUT_MS / 1000)

    async def deliver(self, messages: Sequence[OutboundMessage]) -> bool:
        if not messages:
            return True
        producer = await self._idle.get()
        try:
            # Off the event loop: other requests are read and judged while this one waits.
            return await anyio.to_thread.run_sync(_produce_all, producer, messages)
        finally:
            self._idle.put_nowait(producer)

    def _watch_broker(self) -> None:
        while not self._stop.is_set():
            self._ready = self._broker_answers()
            self._stop.wait(READINESS_EVERY_S)

    def _broker_answers(self) -> bool:
        try:
            metadata = self._producers[0].list_topics(self._topic, timeout=READINESS_TIMEOUT_S)
        except KafkaException:
            return False
        found = metadata.topics.get(self._topic)
        return found is not None and found.error is None and bool(metadata.brokers)


def _produce_all(producer: Producer, messages: Sequence[OutboundMessage]) -> bool:
    """Produces every message and waits for the broker's acknowledgements: True only when all of
    them are durable. A full local queue is waited out (its reports served) for a while, then the
    request fails and its sender retries."""
    failures: list[object] = []

    def failed(error: object, _message: object) -> None:  # called for failed deliveries only
        failures.append(error)

    for message in messages:
        deadline = time.monotonic() + QUEUE_FULL_WAIT_S
        while True:
            try:
                producer.produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=message.headers,
                    timestamp=message.timestamp_ms or 0,
                    on_delivery=failed,
                )
                break
            except BufferError:
                if time.monotonic() > deadline:
                    return False
                producer.poll(0.01)
            except KafkaException:
                return False
    # Waits until everything produced is acknowledged or given up on (a failure is reported then).
    remaining = producer.flush(DELIVERY_TIMEOUT_MS / 1000 + _ANSWER_GRACE_S)
    return remaining == 0 and not failures


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

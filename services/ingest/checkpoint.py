"""Which consumed offsets are safe to commit: those whose outputs the broker has acknowledged.

Ingest produces asynchronously (pipelined), so output of several batches is in flight at once.
Rather than a Python callback per message to count acknowledgements, a checkpoint waits -- every
``interval_s``, when idle, and before giving partitions away -- until the producer has nothing
outstanding, and then releases every input position recorded before it. The producer reports
only failed deliveries (``delivery.report.only.error``); a failure seen by then stops the process
before its input offsets move, so a restart re-delivers rather than loses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, Message, Producer, TopicPartition

from cityos.kernel.errors import DeliveryFailed

# Producer settings the checkpoint relies on: the broker's acknowledgements are counted by the
# client itself, and only a failure reaches Python (without it every delivery does, just slower).
PRODUCER_SETTINGS = {"delivery.report.only.error": True}


class Checkpoint:
    """Input positions (topic, partition) -> next offset, released once their output is durable."""

    def __init__(
        self, producer: Producer, *, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._producer = producer
        self._interval_s = interval_s
        self._clock = clock
        self._next = clock() + interval_s
        self._failed: str | None = None
        # Written directly by the hot loop: one dict store per consumed message.
        self.positions: dict[tuple[str, int], int] = {}

    def on_delivery(self, err: KafkaError | None, _message: Message) -> None:
        """The producer's delivery report (only failures, with ``PRODUCER_SETTINGS``)."""
        if err is not None and self._failed is None:
            self._failed = str(err)

    def due(self) -> bool:
        return self._clock() >= self._next

    def release(self, timeout_s: float) -> list[TopicPartition]:
        """Wait up to ``timeout_s`` for every output produced so far to be acknowledged; then the
        positions recorded so far, once ([] while some output is still unacknowledged: they are
        kept for the next checkpoint). Raises DeliveryFailed once a delivery failed."""
        self._next = self._clock() + self._interval_s
        outstanding = self._producer.flush(timeout_s) if len(self._producer) else 0
        if self._failed is not None:
            raise DeliveryFailed(f"produce not acknowledged: {self._failed}")
        if outstanding or not self.positions:
            return []
        released = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in self.positions.items()
        ]
        self.positions = {}
        return released

    @property
    def in_flight(self) -> int:
        """Produced messages not acknowledged yet (the client's own count)."""
        return len(self._producer)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop positions of partitions given away (their output was made durable before)."""
        for tp in partitions:
            self.positions.pop((tp.topic, tp.partition), None)

"""The consume loop every Kafka-fed service runs: poll a batch, hand it to the service, keep the
consumer-lag gauge fresh, and drain once asked to stop.

What a batch means for delivery stays with the service: ingest stores offsets only after the
broker acknowledged its outputs, the catalog commits them after its database transaction, the feed
republisher sends them inside its Kafka transaction. The loop only fixes the order of the steps
around that, so all three stop, report lag and treat consumer errors the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException, Message

from cityos.kernel.kafka import check_consume_error, consumer_lag
from cityos.kernel.kafka_start import COORDINATOR_ERRORS, kafka_error_code

_log = logging.getLogger(__name__)

# How often the consumer-lag gauge is recomputed. The lag comes from the client's cached
# watermarks, so this only bounds how stale the gauge is; Prometheus scrapes every 15 s.
LAG_REFRESH_S = 5.0


def _nothing() -> None:
    return None


class Periodic:
    """Runs ``action`` at most once per ``interval_s`` when called; the first call always runs it,
    so a service starts from fresh state (lag, schemas, grants) rather than one interval late."""

    def __init__(
        self, interval_s: float, action: Callable[[], None], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._action = action
        self._clock = clock
        self._next = float("-inf")

    def __call__(self) -> None:
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval_s
        self._action()


def usable(messages: list[Message]) -> list[Message]:
    """The polled messages that carry data. End-of-partition markers are dropped and transient
    errors logged (the client retries them); a fatal error raises KafkaUnavailable before any of
    the batch is processed, so none of its offsets can move."""
    kept: list[Message] = []
    for message in messages:
        error = message.error()
        if error is None:
            kept.append(message)
        else:
            check_consume_error(error)
    return kept


class ConsumeLoop:
    """Poll → process → lag, turn after turn, until a stop event; then drain.

    Each turn: ``before_poll()`` (time-driven set-up such as following schemas or reloading
    grants), one ``consume`` of up to ``batch_size`` messages waiting at most ``poll_timeout_s``,
    ``process(messages)`` with the usable messages -- an empty list when the poll timed out, so
    the service can still do its time-driven work (delivery reports, feed activations) -- and,
    every ``lag_refresh_s``, the consumer lag to ``report_lag``.

    ``drain()`` runs once when the loop ends, by the stop event or by an error, so output already
    handed to a producer is made durable and what is durable is committed before the consumer
    closes. The stop event is only checked between turns: a batch is always finished whole.
    """

    def __init__(
        self,
        consumer: Consumer,
        process: Callable[[list[Message]], None],
        *,
        report_lag: Callable[[int], None],
        batch_size: int,
        poll_timeout_s: float,
        before_poll: Callable[[], None] = _nothing,
        drain: Callable[[], None] = _nothing,
        lag_refresh_s: float = LAG_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._process = process
        self._report_lag = report_lag
        self._batch_size = batch_size
        self._poll_timeout_s = poll_timeout_s
        self._before_poll = before_poll
        self._drain = drain
        self._refresh_lag = Periodic(lag_refresh_s, self._measure_lag, clock=clock)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.turn()
        finally:
            self._drain()

    def turn(self) -> None:
        """One poll and its processing."""
        self._before_poll()
        try:
            messages = self._consumer.consume(num_messages=self._batch_size, timeout=self._poll_timeout_s)
        except KafkaException as exc:
            # The group's coordinator moved (a broker restarted or lost leadership) while the client
            # fetched its committed offsets: the poll raises instead of returning messages. Nothing
            # was consumed, so nothing is lost; the next poll asks the new coordinator.
            if kafka_error_code(exc) not in COORDINATOR_ERRORS:
                raise
            _log.warning("poll: %s; polling again", exc)
            time.sleep(self._poll_timeout_s)
            return
        self._process(usable(messages))
        self._refresh_lag()

    def _measure_lag(self) -> None:
        lag = consumer_lag(self._consumer)
        if lag is not None:
            self._report_lag(lag)

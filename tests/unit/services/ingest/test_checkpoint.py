"""Input positions are released only once the producer has nothing outstanding and no delivery
failed; positions still waiting for output are kept for the next checkpoint."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, TopicPartition

from cityos.kernel.errors import DeliveryFailed
from services.ingest.checkpoint import Checkpoint


class Outstanding:
    """The two producer calls a checkpoint makes: how many messages are unacknowledged, and a flush
    that acknowledges up to ``acks_per_flush`` of them."""

    def __init__(self, outstanding: int, acks_per_flush: int) -> None:
        self.outstanding = outstanding
        self.acks_per_flush = acks_per_flush
        self.flushes = 0

    def __len__(self) -> int:
        return self.outstanding

    def flush(self, _timeout: float) -> int:
        self.flushes += 1
        self.outstanding = max(self.outstanding - self.acks_per_flush, 0)
        return self.outstanding


def checkpoint(producer: Outstanding) -> Checkpoint:
    return Checkpoint(producer, interval_s=0.25, clock=lambda: 0.0)  # type: ignore[arg-type]


def released(points: list[TopicPartition]) -> dict[tuple[str, int], int]:
    return {(tp.topic, tp.partition): tp.offset for tp in points}


def test_positions_wait_for_every_outstanding_output() -> None:
    producer = Outstanding(outstanding=3, acks_per_flush=2)
    point = checkpoint(producer)
    point.positions[("t", 0)] = 11
    assert point.release(1.0) == []  # one output still unacknowledged: kept
    point.positions[("t", 1)] = 6
    assert released(point.release(1.0)) == {("t", 0): 11, ("t", 1): 6}
    assert point.release(1.0) == []  # released once
    assert producer.flushes == 2


def test_nothing_outstanding_needs_no_flush() -> None:
    producer = Outstanding(outstanding=0, acks_per_flush=0)
    point = checkpoint(producer)
    point.positions[("t", 2)] = 4  # e.g. a duplicate dead letter: no output of its own
    assert released(point.release(1.0)) == {("t", 2): 4}
    assert producer.flushes == 0


def test_a_failed_delivery_stops_before_any_position_moves() -> None:
    producer = Outstanding(outstanding=0, acks_per_flush=0)
    point = checkpoint(producer)
    point.positions[("t", 0)] = 11
    point.on_delivery(None, None)  # type: ignore[arg-type]  # a success reported anyway
    point.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed):
        point.release(1.0)


def test_positions_of_partitions_given_away_are_forgotten() -> None:
    point = checkpoint(Outstanding(outstanding=0, acks_per_flush=0))
    point.positions.update({("t", 0): 11, ("t", 1): 6})
    point.forget([TopicPartition("t", 0)])
    assert released(point.release(1.0)) == {("t", 1): 6}

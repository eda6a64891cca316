"""Offsets are released only when all output of a batch, and of every earlier batch, is acked."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from cityos.kernel.errors import DeliveryFailed
from cityos.kernel.kafka import OffsetTracker


def positions(tracker: OffsetTracker) -> dict[tuple[str, int], int]:
    return {(tp.topic, tp.partition): tp.offset for tp in tracker.ready()}


def test_nothing_is_released_before_acknowledgement() -> None:
    tracker = OffsetTracker()
    batch = tracker.open()
    batch.expect("t", 0, 10)
    batch.expect("t", 1, 5)
    tracker.seal(batch)
    assert positions(tracker) == {}
    batch.ack(None, None)  # type: ignore[arg-type]
    assert positions(tracker) == {}
    batch.ack(None, None)  # type: ignore[arg-type]
    assert positions(tracker) == {("t", 0): 11, ("t", 1): 6}
    assert tracker.in_flight == 0


def test_a_later_batch_waits_for_an_earlier_one() -> None:
    tracker = OffsetTracker()
    first, second = tracker.open(), None
    first.expect("t", 0, 1)
    tracker.seal(first)
    second = tracker.open()
    second.expect("t", 0, 2)
    tracker.seal(second)
    second.ack(None, None)  # type: ignore[arg-type]
    assert positions(tracker) == {}, "offset 3 must not be committed while offset 1's output is unacked"
    first.ack(None, None)  # type: ignore[arg-type]
    assert positions(tracker) == {("t", 0): 3}


def test_an_unsealed_batch_is_not_released() -> None:
    tracker = OffsetTracker()
    batch = tracker.open()
    batch.expect("t", 0, 1)
    batch.ack(None, None)  # type: ignore[arg-type]
    assert positions(tracker) == {}


def test_a_failed_delivery_stops_the_line() -> None:
    tracker = OffsetTracker()
    batch = tracker.open()
    batch.expect("t", 0, 1)
    tracker.seal(batch)
    batch.ack(KafkaError(KafkaError._MSG_TIMED_OUT), None)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed):
        tracker.ready()


def test_revoked_partitions_are_forgotten() -> None:
    from confluent_kafka import TopicPartition

    tracker = OffsetTracker()
    batch = tracker.open()
    batch.expect("t", 0, 1)
    batch.expect("t", 1, 1)
    tracker.seal(batch)
    tracker.forget([TopicPartition("t", 1)])
    batch.ack(None, None)  # type: ignore[arg-type]
    batch.ack(None, None)  # type: ignore[arg-type]
    assert positions(tracker) == {("t", 0): 2}


def test_input_without_output_is_committed_only_behind_earlier_output() -> None:
    # A duplicate dead letter is not written again: its offset still moves, but never past the
    # unacknowledged output of the event it repeats.
    tracker = OffsetTracker()
    first = tracker.open()
    first.expect("t", 0, 4)
    tracker.seal(first)
    second = tracker.open()
    second.settle("t", 0, 9)
    tracker.seal(second)
    assert positions(tracker) == {}
    first.ack(None, None)  # type: ignore[arg-type]
    assert positions(tracker) == {("t", 0): 10}
    assert tracker.in_flight == 0

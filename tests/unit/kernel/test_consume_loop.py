"""The consume loop's own logic: order of the steps in a turn, consumer errors, lag refresh
schedule, stop and drain. The Kafka consumer is only a collaborator here, played by a scripted
stand-in; the services' delivery guarantees are proven against the broker in tests/integration."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from cityos.kernel.consume import ConsumeLoop, Periodic, usable
from cityos.kernel.errors import KafkaUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedConsumer:
    """Hands out the scripted batches one poll at a time (then empty polls); each poll takes one
    second of the fake clock, like a poll that waited for its timeout. No partitions are
    assigned, so the measured lag is 0."""

    def __init__(self, batches: list[list[Message] | Exception], clock: Clock, log: list[str]) -> None:
        self._batches = list(batches)
        self._clock = clock
        self._log = log
        self.polls: list[tuple[int, float]] = []

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        self.polls.append((num_messages, timeout))
        self._log.append("poll")
        self._clock.now += 1.0
        batch = self._batches.pop(0) if self._batches else []
        if isinstance(batch, Exception):
            raise batch
        return batch

    def assignment(self) -> list[TopicPartition]:
        return []


# The client builds messages in C; its type stubs do not declare the Python constructor, which
# is public and takes the fields as keywords.
_message: Any = Message


def data(offset: int) -> Message:
    built: Message = _message(topic="t", partition=0, offset=offset, value=b"{}")
    return built


def failed(error: KafkaError) -> Message:
    built: Message = _message(topic="t", partition=0, offset=-1, error=error)
    return built


class Recorder:
    """Collects what the loop hands to the service, and stops it after ``turns`` turns."""

    def __init__(self, log: list[str], stop: threading.Event, turns: int) -> None:
        self.log = log
        self.stop = stop
        self.turns = turns
        self.batches: list[list[int | None]] = []
        self.lags: list[tuple[int, float]] = []

    def before_poll(self) -> None:
        self.log.append("before_poll")

    def process(self, messages: list[Message]) -> None:
        self.log.append("process")
        self.batches.append([message.offset() for message in messages])
        if len(self.batches) >= self.turns:
            self.stop.set()

    def drain(self) -> None:
        self.log.append("drain")


def make_loop(
    batches: list[list[Message] | Exception], *, turns: int, lag_refresh_s: float = 5.0
) -> tuple[ConsumeLoop, ScriptedConsumer, Recorder, Clock, threading.Event]:
    log: list[str] = []
    clock = Clock()
    stop = threading.Event()
    consumer = ScriptedConsumer(batches, clock, log)
    recorder = Recorder(log, stop, turns)

    def report_lag(lag: int) -> None:
        log.append("lag")
        recorder.lags.append((lag, clock.now))

    loop = ConsumeLoop(
        cast(Consumer, consumer),
        recorder.process,
        report_lag=report_lag,
        batch_size=7,
        poll_timeout_s=0.25,
        before_poll=recorder.before_poll,
        drain=recorder.drain,
        lag_refresh_s=lag_refresh_s,
        clock=clock,
    )
    return loop, consumer, recorder, clock, stop


def test_each_turn_prepares_polls_processes_then_the_loop_drains_once() -> None:
    loop, consumer, recorder, _clock, stop = make_loop([[data(0), data(1)], [data(2)]], turns=2)

    loop.run(stop)

    assert recorder.log == [
        "before_poll",
        "poll",
        "process",
        "lag",
        "before_poll",
        "poll",
        "process",
        "drain",
    ]
    assert recorder.batches == [[0, 1], [2]]
    assert consumer.polls == [(7, 0.25), (7, 0.25)]


def test_an_empty_poll_is_still_a_turn_for_time_driven_work() -> None:
    loop, _consumer, recorder, _clock, stop = make_loop([[], [data(5)], []], turns=3)

    loop.run(stop)

    assert recorder.batches == [[], [5], []]


def test_a_stop_already_requested_polls_nothing_but_still_drains() -> None:
    loop, consumer, recorder, _clock, stop = make_loop([[data(0)]], turns=1)
    stop.set()

    loop.run(stop)

    assert consumer.polls == []
    assert recorder.log == ["drain"]


def test_a_stop_requested_mid_batch_finishes_the_batch_and_polls_no_more() -> None:
    loop, consumer, recorder, _clock, stop = make_loop([[data(0)], [data(1)]], turns=1)

    loop.run(stop)

    assert recorder.batches == [[0]]
    assert len(consumer.polls) == 1
    assert recorder.log[-1] == "drain"


def test_partition_end_markers_and_transient_errors_never_reach_the_service() -> None:
    eof = failed(KafkaError(KafkaError._PARTITION_EOF))
    transient = failed(KafkaError(KafkaError._TRANSPORT))
    loop, _consumer, recorder, _clock, stop = make_loop([[data(0), eof, transient, data(1)]], turns=1)

    loop.run(stop)

    assert recorder.batches == [[0, 1]]


def test_a_fatal_consumer_error_stops_before_the_batch_is_processed_and_still_drains() -> None:
    fatal = failed(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
    loop, _consumer, recorder, _clock, stop = make_loop([[data(0), fatal, data(1)]], turns=5)

    with pytest.raises(KafkaUnavailable):
        loop.run(stop)

    assert recorder.batches == []
    assert recorder.log == ["before_poll", "poll", "drain"]


def test_a_coordinator_moving_during_the_poll_is_polled_through() -> None:
    moved = KafkaException(KafkaError(KafkaError.NOT_COORDINATOR, "Failed to get committed offsets"))
    loop, consumer, recorder, _clock, stop = make_loop([moved, [data(0), data(1)]], turns=1)

    loop.run(stop)

    assert recorder.batches == [[0, 1]]
    assert len(consumer.polls) == 2


def test_any_other_error_raised_by_the_poll_ends_the_loop_after_draining() -> None:
    other = KafkaException(KafkaError(KafkaError.INVALID_CONFIG, "broken"))
    loop, _consumer, recorder, _clock, stop = make_loop([other, [data(0)]], turns=1)

    with pytest.raises(KafkaException):
        loop.run(stop)

    assert recorder.batches == []
    assert recorder.log[-1] == "drain"


def test_an_error_from_the_service_ends_the_loop_after_draining() -> None:
    log: list[str] = []
    clock = Clock()
    drained: list[bool] = []

    def broken(_messages: list[Message]) -> None:
        raise RuntimeError("database gone")

    loop = ConsumeLoop(
        cast(Consumer, ScriptedConsumer([[data(0)]], clock, log)),
        broken,
        report_lag=lambda _lag: None,
        batch_size=1,
        poll_timeout_s=0.1,
        drain=lambda: drained.append(True),
        clock=clock,
    )

    with pytest.raises(RuntimeError, match="database gone"):
        loop.run(threading.Event())

    assert drained == [True]


def test_lag_is_reported_on_the_first_turn_then_once_per_refresh_interval() -> None:
    # Every poll takes one second: turns end at 101, 102, ... 107.
    loop, _consumer, recorder, _clock, stop = make_loop([], turns=7, lag_refresh_s=2.5)

    loop.run(stop)

    assert recorder.lags == [(0, 101.0), (0, 104.0), (0, 107.0)]


def test_periodic_runs_at_once_then_not_before_its_interval_has_passed() -> None:
    clock = Clock()
    runs: list[float] = []
    every = Periodic(2.5, lambda: runs.append(clock.now), clock=clock)

    for step in (0.0, 1.0, 1.0, 1.0, 3.0, 2.0):
        clock.now += step
        every()

    assert runs == [100.0, 103.0, 106.0]


def test_usable_keeps_the_order_of_data_messages() -> None:
    eof = failed(KafkaError(KafkaError._PARTITION_EOF))

    kept = usable([data(3), eof, data(4), data(5)])

    assert [message.offset() for message in kept] == [3, 4, 5]

"""Follow what ingest decided for a set of events: validated or dead-lettered, and why.

The import CLI uses it to close its summary with the real outcome of every row it sent.

Ingest writes a refused event's dead letter once: when an unchanged file is imported again, its bad
rows are handled without any new output. The watcher tells them apart by ingest's committed
position on the department topic -- a row ingest has passed without writing anything was a
duplicate of a dead letter written before -- and then reads that earlier dead letter back, so every
import of the file reports the same rows as refused, for the same reasons.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition

from cityos.kernel.deadletter import parse_verdict
from cityos.kernel.kafka import headers_list
from cityos.kernel.kafka_access import KafkaAccess

# (topic, partition) -> {offset: event id}: where the import's events landed.
Positions = Mapping[tuple[str, int], Mapping[int, str]]

# The earlier dead letters keep the Kafka timestamps of the messages they refused, which were sent
# after the file's time; the search starts this much before it, for clocks that disagree.
EARLIER_MARGIN = timedelta(minutes=5)
# Most dead letters read while looking for earlier ones: past that the row says it was not found.
EARLIER_SEARCH_LIMIT = 200_000
# How often ingest's committed position is asked (ingest commits about once a second).
CHECK_EVERY_S = 1.0
NOT_FOUND_REASON = "deadlettered_earlier"
NOT_FOUND_DETAIL = (
    "refused on an earlier import, so ingest wrote no new dead letter; the earlier one was not found"
    " / 以前の取り込みで受け付けなかった行です（以前の dead letter は見つかりませんでした）"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    event_id: str
    valid: bool
    reason: str = ""
    detail: str = ""
    pointer: str = ""
    earlier: bool = False  # dead-lettered on an earlier import: ingest wrote nothing new this time


@dataclass(frozen=True, slots=True)
class SentRows:
    """What the watcher needs to recognise rows ingest handled without writing anything."""

    positions: Positions
    ingest_group: str
    deadletter_topic: str
    event_time: datetime  # the events' time: an earlier import sent them, and was refused, after it


def handled_without_output(positions: Positions, committed: Mapping[tuple[str, int], int]) -> set[str]:
    """Event ids below ingest's committed offset on their partition: ingest is done with them."""
    return {
        event_id
        for partition, offsets in positions.items()
        for offset, event_id in offsets.items()
        if offset < committed.get(partition, -1)
    }


def caught_up(read_to: Mapping[tuple[str, int], int], marks: Mapping[tuple[str, int], int]) -> bool:
    """True once every output partition has been read up to its mark."""
    return all(read_to.get(partition, -1) >= mark for partition, mark in marks.items())


def earlier_outcomes(event_ids: Iterable[str], found: Mapping[str, Message]) -> dict[str, Outcome]:
    """The outcome of rows ingest had dead-lettered before: the earlier verdict, or "not found"."""
    outcomes: dict[str, Outcome] = {}
    for event_id in event_ids:
        message = found.get(event_id)
        if message is None:
            outcomes[event_id] = Outcome(
                event_id, valid=False, reason=NOT_FOUND_REASON, detail=NOT_FOUND_DETAIL, earlier=True
            )
            continue
        verdict = parse_verdict(headers_list(message.headers()))
        outcomes[event_id] = Outcome(
            event_id,
            valid=False,
            reason=str(verdict.reason),
            detail=verdict.detail,
            pointer=verdict.pointer or "",
            earlier=True,
        )
    return outcomes


def _body_id(value: bytes | None) -> str:
    """Event id of a validated-topic message (structured CloudEvent JSON)."""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return ""
    return str(body.get("id", "")) if isinstance(body, dict) else ""


def _outcome(message: Message, event_ids: set[str]) -> Outcome | None:
    """The verdict a validated or dead-letter message gives one of ``event_ids``, else None."""
    # A validated event carries no verdict: its reason reads back empty.
    verdict = parse_verdict(headers_list(message.headers()))
    event_id = verdict.event_id or _body_id(message.value())
    if event_id not in event_ids:
        return None
    reason = str(verdict.reason)
    return Outcome(
        event_id, valid=not reason, reason=reason, detail=verdict.detail, pointer=verdict.pointer or ""
    )


def _reader(kafka: KafkaAccess, group_id: str | None = None) -> Consumer:
    return Consumer(
        {
            **kafka.client_config(),
            "group.id": group_id
            or kafka.reader_group(
                "outcome-watcher"
            ),  # never commits, never subscribes: assign() and committed() only
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )


class OutcomeWatcher:
    """Remembers the ends of the validated and dead-letter topics, then reads on from there."""

    def __init__(self, kafka: KafkaAccess, topics: Iterable[str]) -> None:
        self._kafka = kafka
        self._consumer = _reader(kafka)
        self._start: list[TopicPartition] = []
        metadata = self._consumer.list_topics(timeout=30)
        for topic in topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                continue
            for partition in info.partitions:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=30
                )
                self._start.append(TopicPartition(topic, partition, high if high >= 0 else OFFSET_END))

    def wait(
        self,
        event_ids: set[str],
        *,
        timeout_s: float,
        on_progress: Callable[[int], None] | None = None,
        sent: SentRows | None = None,
    ) -> dict[str, Outcome]:
        """Outcomes of ``event_ids`` seen within the timeout (missing ids were not decided yet).
        With ``sent``, rows ingest handled without output get the verdict of their earlier dead letter."""
        outcomes: dict[str, Outcome] = {}
        self._consumer.assign(self._start)
        deadline = time.monotonic() + timeout_s
        silent = _SilentRows(self._kafka, sent, self._start) if sent is not None else None
        try:
            while len(outcomes) < len(event_ids) and time.monotonic() < deadline:
                for message in self._consumer.consume(num_messages=1000, timeout=0.5):
                    found = _outcome(message, event_ids) if message.error() is None else None
                    if found is not None and found.event_id not in outcomes:
                        outcomes[found.event_id] = found
                if silent is not None:
                    # Only rows still undecided: an earlier dead letter never overrides a verdict.
                    for event_id, outcome in silent.check(self._consumer, outcomes, deadline).items():
                        outcomes.setdefault(event_id, outcome)
                if on_progress:
                    on_progress(len(outcomes))
        finally:
            self._consumer.close()
            if silent is not None:
                silent.close()
        return outcomes


class _SilentRows:
    """Finds the rows ingest handled without writing anything: once ingest's committed offset is past
    a row, and the outputs written until then have been read, a row still without a verdict was a
    duplicate of an earlier dead letter."""

    def __init__(self, kafka: KafkaAccess, sent: SentRows, outputs: list[TopicPartition]) -> None:
        self._kafka = kafka
        self._sent = sent
        self._start = {(tp.topic, tp.partition): tp.offset for tp in outputs}
        self._group = _reader(kafka, sent.ingest_group)  # reads ingest's committed offsets only
        self._next_check = 0.0
        self._pending: tuple[set[str], dict[tuple[str, int], int]] | None = None

    def close(self) -> None:
        self._group.close()

    def check(
        self, watcher: Consumer, outcomes: Mapping[str, Outcome], deadline: float
    ) -> dict[str, Outcome]:
        if self._pending is None:
            if time.monotonic() >= self._next_check:
                self._next_check = time.monotonic() + CHECK_EVERY_S
                self._note_handled(outcomes)
            return {}
        passed, marks = self._pending
        if not caught_up(self._read_to(watcher), marks):
            return {}
        self._pending = None
        silent = passed - outcomes.keys()
        if not silent:
            return {}
        found = find_dead_letters(self._kafka, self._sent, silent, deadline=deadline)
        return earlier_outcomes(silent, found)

    def _note_handled(self, outcomes: Mapping[str, Outcome]) -> None:
        # The committed offsets first, the ends of the outputs second: every output of a row ingest
        # had committed is then below those ends.
        asked = [TopicPartition(topic, partition) for topic, partition in self._sent.positions]
        committed = {(tp.topic, tp.partition): tp.offset for tp in self._group.committed(asked, timeout=10)}
        passed = handled_without_output(self._sent.positions, committed) - outcomes.keys()
        if passed:
            self._pending = (passed, self._ends())

    def _ends(self) -> dict[tuple[str, int], int]:
        ends: dict[tuple[str, int], int] = {}
        for topic, partition in self._start:
            _low, high = self._group.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            ends[(topic, partition)] = high
        return ends

    def _read_to(self, watcher: Consumer) -> dict[tuple[str, int], int]:
        # A partition nothing was read from yet reports no position: it stands where reading began.
        positions = watcher.position([TopicPartition(t, p) for t, p in self._start])
        return {
            (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else self._start[(tp.topic, tp.partition)]
            for tp in positions
        }


def find_dead_letters(
    kafka: KafkaAccess, sent: SentRows, event_ids: set[str], *, deadline: float
) -> dict[str, Message]:
    """The newest dead letter of each of ``event_ids`` written since the events' time, reading at
    most ``EARLIER_SEARCH_LIMIT`` dead letters and stopping at ``deadline``."""
    consumer = _reader(kafka)
    found: dict[str, Message] = {}
    try:
        since_ms = int((sent.event_time - EARLIER_MARGIN).timestamp() * 1000)
        ends = _search_from(consumer, sent.deadletter_topic, since_ms)
        read = 0
        while ends and read < EARLIER_SEARCH_LIMIT and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is not None:
                    continue
                read += 1
                event_id = parse_verdict(headers_list(message.headers())).event_id
                if event_id in event_ids:
                    found[event_id] = message  # later ones win: the newest verdict
            # Positions, not the last offset read: transaction markers take offsets too.
            for tp in consumer.position([TopicPartition(t, p) for t, p in ends]):
                if tp.offset >= ends[(tp.topic, tp.partition)]:
                    del ends[(tp.topic, tp.partition)]
    finally:
        consumer.close()
    return found


def _search_from(consumer: Consumer, topic: str, since_ms: int) -> dict[tuple[str, int], int]:
    """Assign ``consumer`` to ``topic`` from ``since_ms`` on; the end of each partition to read to."""
    metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return {}
    asked = [TopicPartition(topic, partition, since_ms) for partition in metadata.partitions]
    starts = consumer.offsets_for_times(asked, timeout=10)
    ends: dict[tuple[str, int], int] = {}
    assigned: list[TopicPartition] = []
    for start in starts:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, start.partition), timeout=10)
        if start.offset >= 0 and start.offset < high:
            ends[(topic, start.partition)] = high
            assigned.append(start)
    consumer.assign(assigned)
    return ends

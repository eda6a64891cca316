"""Dead-letter repair: browse the dead-letter topic, show one message, replay after a fix.

The dead-letter topic is the store: each message keeps the original key, bytes, headers and Kafka
timestamp, plus ``cityos_*`` headers saying why and where from. Nothing is copied elsewhere; the
database only records which dead letters were replayed (``deadletter_replays``), so a second replay
skips them unless forced, and counts replay attempts by outcome (``deadletter_replay_tally``).

A replay re-produces the original key, bytes, headers (without the ``cityos_*`` ones) and timestamp
to the department topic the message came from: it takes the normal ingest path, validated against
the schema versions registered now. (A dead letter of the catalog goes back to the validated topic
it came from.) Even a forced replay changes nothing downstream for an event
already applied: the catalog's ledger by CloudEvent source and id makes redelivery a no-op.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Final

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.audit import record_audit
from cityos.kernel import deadletter as contract
from cityos.kernel.db.registry_models import DeadLetterReplay, DeadLetterReplayTally
from cityos.kernel.errors import CityOSError
from cityos.kernel.kafka import headers_list
from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.settings import Settings

REPLAY_OUTCOMES: Final = ("replayed", "skipped", "refused", "failed")
_ID = re.compile(r"^(?P<partition>[0-9]{1,9})-(?P<offset>[0-9]{1,19})$")


class BadDeadLetterId(CityOSError, ValueError):
    """A dead-letter id is ``<partition>-<offset>``."""


def parse_id(text: str) -> tuple[int, int]:
    match = _ID.match(text.strip())
    if match is None:
        raise BadDeadLetterId(f"{text!r} is not a dead-letter id (<partition>-<offset>, e.g. 0-42)")
    return int(match["partition"]), int(match["offset"])


# What listings, `show` and replays answer (HTTP and CLI print the same shapes).


class DeadLetterSource(BaseModel):
    """Where the event was read before it was dead-lettered (header values, as sent)."""

    topic: str | None
    partition: str | None
    offset: str | None


class DeadLetterSummary(BaseModel):
    """A dead letter as listings show it: why it was refused and where from, not its bytes."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    id: str = Field(description="<partition>-<offset> in the dead-letter topic")
    time: str | None
    reason: str | None
    detail: str | None
    pointer: str | None
    dataset: str | None
    department: str | None
    schema_: str | None = Field(alias="schema")
    event_id: str | None
    source: DeadLetterSource
    replays: int


class TextBytes(BaseModel):
    """Bytes that are UTF-8, as text."""

    model_config = ConfigDict(extra="forbid")

    text: str


class Base64Bytes(BaseModel):
    """Bytes that are not UTF-8, in base64."""

    model_config = ConfigDict(extra="forbid")

    base64: str


RawBytes = TextBytes | Base64Bytes


class DeadLetterHeader(BaseModel):
    name: str
    value: RawBytes | None


class DeadLetterDetails(DeadLetterSummary):
    """A dead letter with everything: the original key, value and headers."""

    key: RawBytes | None
    value: RawBytes | None
    headers: list[DeadLetterHeader]


class DeadLetterList(BaseModel):
    count: int
    deadletters: list[DeadLetterSummary]


class ReplayCounts(BaseModel):
    replayed: int
    skipped: int
    refused: int
    failed: int


class ReplayProblem(BaseModel):
    id: str
    why: str


class ReplayReportView(BaseModel):
    """What a replay did with each selected dead letter."""

    counts: ReplayCounts
    replayed: list[str]
    skipped: list[str] = Field(description="replayed before, not forced")
    refused: list[ReplayProblem] = Field(description="cannot be replayed")
    failed: list[ReplayProblem] = Field(description="the broker did not take it")


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]

    @property
    def id(self) -> str:
        return f"{self.partition}-{self.offset}"

    @cached_property
    def verdict(self) -> contract.Verdict:
        """Why it was refused and where from, as ingest or the catalog wrote it."""
        return contract.parse_verdict(self.headers)

    @property
    def reason(self) -> str:
        return str(self.verdict.reason)

    @property
    def dataset(self) -> str:
        return self.verdict.dataset or ""

    @property
    def department(self) -> str:
        return self.verdict.department or ""

    @property
    def source_topic(self) -> str:
        return self.verdict.origin.topic

    @property
    def event_id(self) -> str:
        return self.verdict.event_id or ""

    @property
    def time(self) -> datetime | None:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC) if self.timestamp_ms else None

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The headers the department sent (the ``cityos_*`` ones were added on the way)."""
        return contract.original_headers(self.headers)

    def summary(self, replays: int = 0) -> DeadLetterSummary:
        moment, verdict = self.time, self.verdict
        return DeadLetterSummary(
            id=self.id,
            time=moment.isoformat() if moment else None,
            reason=self.reason,
            detail=verdict.detail,
            pointer=verdict.pointer or "",
            dataset=self.dataset,
            department=self.department,
            schema_=verdict.schema or "",
            event_id=self.event_id,
            source=DeadLetterSource(
                topic=self.source_topic,
                partition=_number_text(verdict.origin.partition),
                offset=_number_text(verdict.origin.offset),
            ),
            replays=replays,
        )

    def details(self, replays: int = 0) -> DeadLetterDetails:
        """Everything, the original bytes included (as text when they are UTF-8, else base64)."""
        return DeadLetterDetails(
            **self.summary(replays).model_dump(),
            key=_raw_bytes(self.key),
            value=_raw_bytes(self.value),
            headers=[DeadLetterHeader(name=k, value=_raw_bytes(v)) for k, v in self.headers],
        )


def _number_text(number: int | None) -> str:
    # Listed as text, as in the header; "" when the header is missing or not a number.
    return "" if number is None else str(number)


def _raw_bytes(data: bytes | None) -> RawBytes | None:
    if data is None:
        return None
    try:
        return TextBytes(text=data.decode("utf-8"))
    except UnicodeDecodeError:
        return Base64Bytes(base64=base64.b64encode(data).decode("ascii"))


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to select; every given criterion must hold."""

    dataset: str | None = None
    reason: str | None = None
    department: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: frozenset[tuple[int, int]] | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.ids is not None and (letter.partition, letter.offset) not in self.ids:
            return False
        if self.dataset is not None and letter.dataset != self.dataset:
            return False
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.department is not None and letter.department != self.department:
            return False
        moment = letter.time
        if self.since is not None and (moment is None or moment < self.since):
            return False
        return not (self.until is not None and (moment is None or moment >= self.until))


def _letter(message: Message) -> DeadLetter:
    kind, stamp = message.timestamp()
    return DeadLetter(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        timestamp_ms=stamp if kind != 0 else None,
        key=message.key(),
        value=message.value() or b"",
        headers=headers_list(message.headers()),
    )


def read_deadletters(
    kafka: KafkaAccess,
    topic: str,
    *,
    where: DeadLetterFilter | None = None,
    limit: int | None = None,
    timeout_s: float = 30.0,
) -> list[DeadLetter]:
    """Dead letters matching ``where``, oldest first per partition, read up to the topic's end as it
    was when the call began (messages arriving meanwhile wait for the next call)."""
    where = where or DeadLetterFilter()
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": kafka.reader_group("dlq-browser"),  # required by the client; never used (assign only)
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    found: list[DeadLetter] = []
    try:
        ends, starts = _read_ranges(consumer, topic, where, timeout_s)
        if not starts:
            return []
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=500, timeout=0.5)
            if not batch:
                _drop_exhausted(consumer, topic, ends)
            for message in batch:
                letter = _take_until_end(consumer, topic, message, ends)
                if letter is not None and where.matches(letter):
                    found.append(letter)
            if limit is not None and len(found) >= limit and where.ids is None:
                break
    finally:
        consumer.close()
    found.sort(key=lambda letter: (letter.timestamp_ms or 0, letter.partition, letter.offset))
    return found[:limit] if limit is not None else found


def _read_ranges(
    consumer: Consumer, topic: str, where: DeadLetterFilter, timeout_s: float
) -> tuple[dict[int, int], list[TopicPartition]]:
    """Per partition worth reading: its end (the high watermark now) and where to start, skipping
    partitions that are empty or hold none of the wanted ids."""
    ends: dict[int, int] = {}
    starts: list[TopicPartition] = []
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return ends, starts
    for partition in sorted(metadata.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        wanted = [o for p, o in where.ids or () if p == partition] if where.ids is not None else None
        if wanted == [] or high <= low:
            continue
        first = max(low, min(wanted)) if wanted else low
        if first < high:
            ends[partition] = high
            starts.append(TopicPartition(topic, partition, first))
    return ends, starts


def _drop_exhausted(consumer: Consumer, topic: str, ends: dict[int, int]) -> None:
    # The last offsets below the high watermark may be transaction markers, which are never
    # delivered: a partition whose position reached its end is done too.
    for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
        if tp.offset >= ends[tp.partition]:
            del ends[tp.partition]
            consumer.incremental_unassign([TopicPartition(topic, tp.partition)])


def _take_until_end(
    consumer: Consumer, topic: str, message: Message, ends: dict[int, int]
) -> DeadLetter | None:
    """The dead letter of ``message`` if it lies before its partition's end; the partition is
    released once its last offset is read, so later messages of it are not waited for."""
    error = message.error()
    if error is not None:
        if error.code() != KafkaError._PARTITION_EOF:
            raise CityOSError(f"reading {topic}: {error}")
        return None
    partition, offset = message.partition() or 0, message.offset() or 0
    end = ends.get(partition)
    if end is None:
        return None
    if offset >= end - 1:
        del ends[partition]
        consumer.incremental_unassign([TopicPartition(topic, partition)])
    return _letter(message) if offset < end else None


def replay_counts(session: Session, topic: str, letters: Sequence[DeadLetter]) -> dict[tuple[int, int], int]:
    """How often each of ``letters`` was replayed already."""
    if not letters:
        return {}
    partitions = sorted({letter.partition for letter in letters})
    wanted = {(letter.partition, letter.offset) for letter in letters}
    rows = session.execute(
        select(
            DeadLetterReplay.deadletter_partition, DeadLetterReplay.deadletter_offset, DeadLetterReplay.times
        )
        .where(DeadLetterReplay.deadletter_topic == topic)
        .where(DeadLetterReplay.deadletter_partition.in_(partitions))
    )
    return {(p, o): times for p, o, times in rows if (p, o) in wanted}


@dataclass(frozen=True)
class ReplayTargets:
    """Where dead letters go back to: always a department topic of this environment, so every
    repaired event passes ingest's checks again. A letter ingest refused returns to the topic it came
    from; one the catalog refused (e.g. while its database was broken) came from the validated topic,
    which only ingest may write, and returns to the topic of the department ingest had read it from."""

    department_topic: re.Pattern[str]
    validated_topic: str
    department_topic_of: Callable[[str], str]

    @classmethod
    def of(cls, settings: Settings) -> ReplayTargets:
        return cls(
            re.compile(settings.department_topic_pattern), settings.validated_topic, settings.department_topic
        )

    def target(self, letter: DeadLetter) -> str | None:
        """The department topic ``letter`` goes back to, or None when it may not be replayed here."""
        source = letter.source_topic
        if self.department_topic.match(source) is not None:
            return source
        if source == self.validated_topic and re.fullmatch(r"[a-z0-9-]+", letter.department):
            return self.department_topic_of(letter.department)
        return None


@dataclass
class ReplayReport:
    """What a replay did with each selected dead letter."""

    replayed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # replayed before, not forced
    refused: list[tuple[str, str]] = field(default_factory=list)  # (id, why) cannot be replayed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, why) the broker did not take it

    def counts(self) -> dict[str, int]:
        return {
            "replayed": len(self.replayed),
            "skipped": len(self.skipped),
            "refused": len(self.refused),
            "failed": len(self.failed),
        }

    def view(self) -> ReplayReportView:
        return ReplayReportView(
            counts=ReplayCounts(**self.counts()),
            replayed=self.replayed,
            skipped=self.skipped,
            refused=[ReplayProblem(id=i, why=why) for i, why in self.refused],
            failed=[ReplayProblem(id=i, why=why) for i, why in self.failed],
        )


def replay(
    session: Session,
    *,
    producer: Producer,
    letters: Sequence[DeadLetter],
    targets: ReplayTargets,
    actor: str,
    force: bool = False,
    replacement: bytes | None = None,
    now: datetime | None = None,
    timeout_s: float = 30.0,
) -> ReplayReport:
    """Send ``letters`` back to their department topics and record it (the caller commits).

    ``replacement`` (one letter only) replaces the value: a corrected payload. Only department
    ``targets`` says where a dead letter may go back to; anything else is refused.
    """
    if replacement is not None and len(letters) != 1:
        raise ValueError("a corrected payload replaces exactly one dead letter")
    report = ReplayReport()
    moment = now or datetime.now(UTC)
    by_topic: dict[str, list[DeadLetter]] = {}
    for letter in letters:
        by_topic.setdefault(letter.topic, []).append(letter)
    done: dict[tuple[str, int, int], int] = {}
    for topic, group in by_topic.items():
        for (partition, offset), times in replay_counts(session, topic, group).items():
            done[(topic, partition, offset)] = times

    delivery: dict[str, str | None] = {}
    sent: list[tuple[DeadLetter, str]] = []
    for letter in letters:
        previous = done.get((letter.topic, letter.partition, letter.offset), 0)
        if previous and not force:
            report.skipped.append(letter.id)
            continue
        target = targets.target(letter)
        if target is None:
            report.refused.append(
                (
                    letter.id,
                    f"source topic {letter.source_topic!r} is not a department topic here, nor this "
                    "environment's validated topic with the department it came from",
                )
            )
            continue

        def delivered(err: KafkaError | None, _msg: Message, letter_id: str = letter.id) -> None:
            delivery[letter_id] = str(err) if err is not None else None

        headers: list[tuple[str, str | bytes]] = [*letter.original_headers()]
        headers.append((contract.REPLAY_OF, f"{letter.topic}/{letter.partition}/{letter.offset}".encode()))
        producer.produce(
            target,
            key=letter.key,
            value=replacement if replacement is not None else letter.value,
            headers=headers,
            timestamp=letter.timestamp_ms or 0,  # the original time stands in for a missing `time`
            on_delivery=delivered,
        )
        sent.append((letter, target))
    producer.flush(timeout_s)

    for letter, target in sent:
        problem = delivery.get(letter.id, "not acknowledged in time")
        if problem is not None:
            report.failed.append((letter.id, problem))
            continue
        report.replayed.append(letter.id)
        _record(session, letter, target, actor=actor, moment=moment, corrected=replacement is not None)
    _tally(session, report.counts())
    return report


def _record(
    session: Session, letter: DeadLetter, target: str, *, actor: str, moment: datetime, corrected: bool
) -> None:
    row = session.get(DeadLetterReplay, (letter.topic, letter.partition, letter.offset))
    if row is None:
        session.add(
            DeadLetterReplay(
                deadletter_topic=letter.topic,
                deadletter_partition=letter.partition,
                deadletter_offset=letter.offset,
                event_id=letter.event_id[:200],
                dataset_id=letter.dataset[:64],
                reason=letter.reason[:64],
                target_topic=target[:300],
                replayed_at=moment,
                replayed_by=actor[:200],
                times=1,
            )
        )
    else:
        row.times += 1
        row.replayed_at, row.replayed_by = moment, actor[:200]
    record_audit(
        session,
        actor=actor,
        action="deadletter_replayed",
        subject_kind="deadletter",
        subject_id=f"{letter.topic}/{letter.id}",
        detail={
            "event_id": letter.event_id,
            "reason": letter.reason,
            "dataset": letter.dataset,
            "corrected": corrected,
        },
        at=moment,
    )


def _tally(session: Session, counts: dict[str, int]) -> None:
    for outcome, count in counts.items():
        if not count:
            continue
        row = session.get(DeadLetterReplayTally, outcome)
        if row is None:
            session.add(DeadLetterReplayTally(outcome=outcome, count=count))
        else:
            row.count += count
    session.flush()


def replay_tally(session: Session) -> dict[str, int]:
    """Replay attempts by outcome since the database was created (every outcome present)."""
    counts = dict.fromkeys(REPLAY_OUTCOMES, 0)
    for outcome, count in session.execute(select(DeadLetterReplayTally.outcome, DeadLetterReplayTally.count)):
        counts[outcome] = int(count)
    return counts

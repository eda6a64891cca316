"""Dead-lettering the same event once: a bounded memory of recent dead-letter fingerprints.

A department that sends a refused event again (a re-imported file, a retrying system, Kafka's own
redelivery after a crash) would otherwise fill the dead-letter topic with copies an operator has to
repair one by one. Every dead letter carries its fingerprint (``cityos_fingerprint``: topic, key,
headers, bytes and reason); ingest remembers the most recent ones and writes a dead letter only for a
fingerprint it has not seen, unless the message is a replay an operator asked for.

The memory is read back from the dead-letter topic itself -- its tail at start, then everything
written after, by this process or any other ingest process -- so it survives restarts and is shared
by every process of a scaled-out group, with no store of its own. It is bounded (least recently seen
fingerprints go first) and best effort: an event refused again after more newer dead letters than
the memory holds, or handled by two processes before either reads the other's dead letter, is
dead-lettered once more. Nothing waits for it: following the topic is a non-blocking poll between
batches, and the input offset of a suppressed duplicate is committed like any other.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from cityos.kernel.deadletter import parse_verdict
from cityos.kernel.kafka import headers_list
from cityos.kernel.kafka_access import KafkaAccess

log = logging.getLogger(__name__)

# Dead letters read per turn while following: bounded so a burst of them never delays input.
FOLLOW_BATCH = 500


class RecentDeadLetters:
    """The fingerprints of the most recent dead letters, at most ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # Raw 32-byte digests: half the memory of the hex text.
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, fingerprint: str) -> bool:
        """Note a dead letter; True when its fingerprint was known already (a duplicate)."""
        if self.capacity <= 0:
            return False
        try:
            digest = bytes.fromhex(fingerprint)
        except ValueError:
            return False  # not ours (an older or foreign writer): never a reason to drop an event
        known = digest in self._seen
        if known:
            self._seen.move_to_end(digest)
        else:
            self._seen[digest] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        return known

    def remember_all(self, fingerprints: Iterable[str]) -> None:
        for fingerprint in fingerprints:
            self.remember(fingerprint)


def fingerprints(messages: Iterable[Message]) -> list[str]:
    """Fingerprints of dead letters as ingest wrote them (the catalog's and older ones have none)."""
    found: list[str] = []
    for message in messages:
        if message.error() is None:
            fingerprint = parse_verdict(headers_list(message.headers())).fingerprint
            if fingerprint:
                found.append(fingerprint)
    return found


def tail_starts(ranges: dict[int, tuple[int, int]], capacity: int) -> dict[int, int]:
    """Where to start reading each partition (partition -> (low, high) watermarks) so that at most
    ``capacity`` of the newest dead letters are read in all: shared evenly, and what a short
    partition leaves over goes to the longer ones (dead letters of one department, keyed alike,
    may all sit on one partition)."""
    starts: dict[int, int] = {}
    left = max(capacity, 0)
    by_size = sorted(ranges, key=lambda p: max(ranges[p][1] - ranges[p][0], 0))
    for index, partition in enumerate(by_size):
        low, high = ranges[partition]
        share = left // (len(by_size) - index)
        take = min(max(high - low, 0), share)
        starts[partition] = high - take if take else max(low, high)
        left -= take
    return starts


class DeadLetterFollower:
    """Reads the dead-letter topic into a ``RecentDeadLetters``: from ``capacity`` messages before
    the end (spread over the partitions) on, then everything new."""

    def __init__(
        self, kafka: KafkaAccess, topic: str, memory: RecentDeadLetters, *, timeout_s: float = 30
    ) -> None:
        self._memory = memory
        self._consumer = Consumer(
            {
                **kafka.client_config(),
                "group.id": kafka.reader_group("deadletter-memory"),  # required by the client; assign only
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        metadata = self._consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        partitions = sorted(metadata.partitions) if metadata is not None and metadata.error is None else []
        ranges = {
            partition: self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
            for partition in partitions
        }
        starts = tail_starts(ranges, memory.capacity)
        self._ends = {p: ranges[p][1] for p, start in starts.items() if start < ranges[p][1]}
        self._topic = topic
        self._consumer.assign([TopicPartition(topic, p, start) for p, start in starts.items()])

    def catch_up(self, timeout_s: float) -> int:
        """Read up to the ends the topic had at start (or until ``timeout_s``); how many were read.
        A slow broker only makes the first duplicates after a restart less likely to be caught."""
        read = 0
        deadline = time.monotonic() + timeout_s
        while self._behind() and time.monotonic() < deadline:
            messages = self._consumer.consume(num_messages=FOLLOW_BATCH, timeout=0.5)
            self._memory.remember_all(fingerprints(messages))
            read += len(messages)
        return read

    def poll(self) -> None:
        """Take in what was dead-lettered since the last call, without waiting."""
        try:
            messages = self._consumer.consume(num_messages=FOLLOW_BATCH, timeout=0)
        except KafkaException as exc:
            log.warning("reading the dead-letter topic failed (retried next turn): %s", exc)
            return
        self._memory.remember_all(fingerprints(messages))

    def close(self) -> None:
        self._consumer.close()

    def _behind(self) -> bool:
        if not self._ends:
            return False
        wanted = [TopicPartition(self._topic, partition) for partition in self._ends]
        for tp in self._consumer.position(wanted):
            # Reaching the end counts, not reading its last message: transaction markers may leave
            # the last offsets undelivered. A partition not fetched yet reads as a negative offset.
            if tp.offset >= self._ends[tp.partition]:
                del self._ends[tp.partition]
        return bool(self._ends)

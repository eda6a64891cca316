"""Follow what ingest decided for a set of events: validated or dead-lettered, and why.

The import CLI uses it to close its summary with the real outcome of every row it sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from cityos.kernel.deadletter import parse_verdict
from cityos.kernel.kafka import headers_list


@dataclass(frozen=True, slots=True)
class Outcome:
    event_id: str
    valid: bool
    reason: str = ""
    detail: str = ""
    pointer: str = ""


def _body_id(value: bytes | None) -> str:
    """Event id of a validated-topic message (structured CloudEvent JSON)."""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return ""
    return str(body.get("id", "")) if isinstance(body, dict) else ""


class OutcomeWatcher:
    """Remembers the ends of the validated and dead-letter topics, then reads on from there."""

    def __init__(self, bootstrap: str, topics: Iterable[str]) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "cityos-outcome-watcher",  # never commits: assign() only
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
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
    ) -> dict[str, Outcome]:
        """Outcomes of ``event_ids`` seen within the timeout (missing ids were not decided yet)."""
        outcomes: dict[str, Outcome] = {}
        self._consumer.assign(self._start)
        deadline = time.monotonic() + timeout_s
        try:
            while len(outcomes) < len(event_ids) and time.monotonic() < deadline:
                for message in self._consumer.consume(num_messages=1000, timeout=0.5):
                    if message.error() is not None:
                        continue
                    # A validated event carries no verdict: its reason reads back empty.
                    verdict = parse_verdict(headers_list(message.headers()))
                    event_id = verdict.event_id or _body_id(message.value())
                    if event_id not in event_ids or event_id in outcomes:
                        continue
                    reason = str(verdict.reason)
                    outcomes[event_id] = Outcome(
                        event_id,
                        valid=not reason,
                        reason=reason,
                        detail=verdict.detail,
                        pointer=verdict.pointer or "",
                    )
                if on_progress:
                    on_progress(len(outcomes))
        finally:
            self._consumer.close()
        return outcomes

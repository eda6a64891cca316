"""What the catalog writes when it dead-letters a validated-topic message it cannot read."""

from __future__ import annotations

from typing import Any, cast

from confluent_kafka import Consumer, Message, Producer
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from cityos.kernel.deadletter import Reason, parse_verdict
from services.catalog.consumer import CatalogConsumer
from services.catalog.metrics import CatalogMetrics


class FakeMessage:
    def __init__(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self._value, self._headers = value, headers

    def topic(self) -> str:
        return "cityos.validated"

    def partition(self) -> int:
        return 4

    def offset(self) -> int:
        return 77

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_800_000_000_000

    def key(self) -> bytes:
        return b"aed/1"

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def error(self) -> None:
        return None


class FakeProducer:
    def __init__(self) -> None:
        self.produced: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.produced.append({"topic": topic, **kwargs})

    def flush(self, _timeout: float) -> int:
        return 0


class FakeConsumer:
    def commit(self, **_kwargs: Any) -> None:
        return None


def test_an_undecodable_validated_event_is_dead_lettered_with_the_catalog_headers() -> None:
    producer = FakeProducer()
    catalog = CatalogConsumer(
        consumer=cast(Consumer, FakeConsumer()),
        deadletter=cast(Producer, producer),
        deadletter_topic="cityos.deadletter",
        sessions=cast("sessionmaker[Session]", None),  # never reached: nothing decodes
        metrics=CatalogMetrics(CollectorRegistry()),
    )
    message = FakeMessage(b"not json", [("x-trace", b"t-1")])
    catalog.process([cast(Message, message)])

    [letter] = producer.produced
    assert (letter["topic"], letter["key"], letter["value"]) == ("cityos.deadletter", b"aed/1", b"not json")
    headers = letter["headers"]
    assert [name for name, _ in headers] == [
        "x-trace",
        "cityos_reason",
        "cityos_detail",
        "cityos_source_topic",
        "cityos_source_partition",
        "cityos_source_offset",
    ]
    assert headers[1] == ("cityos_reason", b"undecodable_validated_event")
    assert headers[3:] == [
        ("cityos_source_topic", b"cityos.validated"),
        ("cityos_source_partition", b"4"),
        ("cityos_source_offset", b"77"),
    ]
    verdict = parse_verdict(headers)
    assert verdict.reason is Reason.UNDECODABLE_VALIDATED_EVENT
    assert verdict.detail.startswith("JSONDecodeError")

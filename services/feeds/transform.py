"""One validated event through one route: delivered (with the bytes to write), filtered out, or
denied. Pure functions; the republisher decodes each event once and asks every route."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from cityos.kernel.events import TYPE_DELETED
from cityos.kernel.jsonutil import json_equal
from services.feeds.policy import Route

HEADER_PHASE = "cityos_feed_phase"
HEADER_SUBSCRIPTION = "cityos_subscription"
HEADER_SOURCE_PARTITION = "cityos_source_partition"
HEADER_SOURCE_OFFSET = "cityos_source_offset"
CONTENT_TYPE: tuple[str, str | bytes] = ("content-type", b"application/cloudevents+json")


class Outcome(StrEnum):
    delivered = "delivered"
    filtered = "filtered"
    denied = "denied"


@dataclass(slots=True)
class Event:
    """A validated-topic message, decoded once."""

    raw: bytes
    body: dict[str, Any]
    partition: int
    offset: int
    key: bytes

    @property
    def is_deletion(self) -> bool:
        return self.body.get("type") == TYPE_DELETED

    @property
    def data(self) -> dict[str, Any]:
        data = self.body.get("data")
        return data if isinstance(data, dict) else {}


def decode(value: bytes | None, key: bytes | None, partition: int, offset: int) -> Event | None:
    """None for a message that is not a JSON object (the catalog dead-letters those)."""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    return Event(raw=value or b"", body=body, partition=partition, offset=offset, key=key or b"")


def dataset_of(key: bytes | None) -> str:
    """Validated keys are ``<dataset>/<record key>``."""
    return (key or b"").split(b"/", 1)[0].decode("utf-8", errors="replace")


def matches(route: Route, event: Event) -> bool:
    """Equality on every filter field. A deletion always passes: a subscriber that holds the
    record must learn it is gone, and the key alone reveals nothing the grant does not cover."""
    if not route.filter or event.is_deletion:
        return True
    data = event.data
    return all(name in data and json_equal(data[name], value) for name, value in route.filter.items())


def render(route: Route, event: Event) -> tuple[Outcome, bytes | None]:
    if not route.allowed:
        return Outcome.denied, None
    if not matches(route, event):
        return Outcome.filtered, None
    if route.fields is None:
        return Outcome.delivered, event.raw  # full access, no projection: the bytes as validated
    projected = {name: value for name, value in event.data.items() if name in route.fields}
    return Outcome.delivered, orjson.dumps({**event.body, "data": projected})


def headers(route: Route, event: Event, phase: str) -> list[tuple[str, str | bytes]]:
    return [
        CONTENT_TYPE,
        (HEADER_PHASE, phase.encode()),
        (HEADER_SUBSCRIPTION, str(route.subscription_id).encode()),
        (HEADER_SOURCE_PARTITION, str(event.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(event.offset).encode()),
    ]

"""The service's fast lane (``accept_fast``: one strict parse, one compiled validation, ownership)
must never accept what the explaining path refuses, and must produce the same output when it
accepts: same key, same bytes, same headers, same labels."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.kernel.events import Header
from cityos.kernel.validation import ValidatorRegistry
from services.ingest.routing import InboundMessage, Topics, _explained, accept_fast, route
from tests.support.aed_event import GOOD_AED_EVENT, NOW, SKEW

TOPICS = Topics("v", "d")
GOOD: dict[str, Any] = GOOD_AED_EVENT
REPLACEMENTS: list[Any] = [None, "", "x", 0, 1, -1.5, True, [], {}, {"a": [1]}, "1.0", "a" * 201, 2**70]
TIMES = [
    "2026-11-27T12:04:00Z",
    "2026-11-27T12:06:00Z",
    "2026-11-27T12:00:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "",
    None,
]
TOPICS_READ = ["dept.fire.events", "dept.health.events", "x.dept.fire.events", "other"]


def agree(registry: ValidatorRegistry, raw: bytes, topic: str, headers: list[Header]) -> bool:
    """Asserts the two paths agree; True when the fast lane accepted."""
    message = InboundMessage(topic, 1, 7, b"k", raw, headers, 1_764_244_800_000)
    routed = route(message, registry=registry, topics=TOPICS, now=NOW, max_future=SKEW)
    slow = _explained(message, routed.department, registry=registry, topics=TOPICS, now=NOW, max_future=SKEW)
    fast = accept_fast(raw, headers, routed.department, registry=registry, now=NOW, max_future=SKEW)
    if fast is None:
        return False
    assert slow.reason is None, (
        f"fast lane accepted what the explaining path refuses ({slow.reason}): {raw!r}"
    )
    assert (fast[0], fast[1]) == (slow.outbound.key, slow.dataset)
    assert (routed.outbound.key, routed.outbound.value, routed.outbound.headers) == (
        slow.outbound.key,
        slow.outbound.value,
        slow.outbound.headers,
    )
    assert (routed.department, routed.dataset, routed.reason) == (slow.department, slow.dataset, None)
    return True


def mutated(rng: random.Random) -> dict[str, Any]:
    event = copy.deepcopy(GOOD)
    for _ in range(rng.randint(1, 3)):
        data = event.get("data")
        target = data if isinstance(data, dict) and rng.random() < 0.5 else event
        key = rng.choice([*target.keys(), "data_base64", "extra", "NO", "subject"])
        roll = rng.random()
        if roll < 0.3:
            target.pop(key, None)
        elif roll < 0.5 and target is event:
            event["time"] = rng.choice(TIMES)
        else:
            target[key] = copy.deepcopy(rng.choice(REPLACEMENTS))
    return event


@pytest.mark.parametrize("seed", range(3))
def test_fast_lane_agrees_on_mutated_events(registry: ValidatorRegistry, seed: int) -> None:
    rng = random.Random(seed)
    accepted = 0
    for _ in range(400):
        event = mutated(rng)
        raw = json.dumps(event, ensure_ascii=rng.random() < 0.3).encode()
        choices: list[list[Header]] = [
            [],
            [("content-type", b"application/cloudevents+json")],
            [("ce_specversion", b"1.0")],
        ]
        headers = rng.choice(choices)
        accepted += agree(registry, raw, rng.choice(TOPICS_READ), headers)
    assert accepted > 0


def test_good_event_takes_the_fast_lane(registry: ValidatorRegistry) -> None:
    assert agree(registry, json.dumps(GOOD, ensure_ascii=False).encode(), "dept.fire.events", [])


def test_another_departments_event_is_left_to_the_explaining_path(registry: ValidatorRegistry) -> None:
    raw = json.dumps(GOOD, ensure_ascii=False).encode()
    assert not agree(registry, raw, "dept.health.events", [])
    assert accept_fast(raw, [], "health", registry=registry, now=NOW, max_future=SKEW) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    data=st.dictionaries(
        st.sampled_from(["NO", "名称", "住所", "緯度", "経度", "x"]), json_values, max_size=6
    ),
    envelope=st.dictionaries(
        st.sampled_from(["id", "time", "subject", "source", "type"]), json_values, max_size=3
    ),
    duplicate=st.booleans(),
)
def test_fast_lane_agrees_on_generated_events(
    registry: ValidatorRegistry, data: dict[str, Any], envelope: dict[str, Any], duplicate: bool
) -> None:
    event = {**GOOD, **envelope, "data": {**GOOD["data"], **data}}
    text = json.dumps(event, ensure_ascii=False)
    if duplicate:  # a key given twice: the explaining path refuses, so must the fast lane
        text = text[:-1] + ', "id": "evt-2"}'
    agree(registry, text.encode("utf-8", errors="surrogatepass"), "dept.fire.events", [])

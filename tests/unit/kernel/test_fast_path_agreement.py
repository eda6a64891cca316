"""The compiled fast path (one validation of the whole event) and the explaining Python path must
reach the same verdict on every event; the fast path may only decline, never disagree."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from cityos.kernel.events import Decoded, decode_event, parse_structured
from cityos.kernel.validation import ValidatorRegistry, ValidRecord
from tests.support.aed_event import GOOD_AED_EVENT, NOW, SKEW

GOOD: dict[str, Any] = {**GOOD_AED_EVENT, "subject": "1"}

REPLACEMENTS: list[Any] = [
    None,
    "",
    "x",
    0,
    1,
    -1.5,
    True,
    [],
    {},
    "1.0",
    "0.3",
    "a" * 201,
    "a" * 501,
    "24:00",
    "25:00",
]
TIMES = ["2026-11-27T12:04:00Z", "2026-11-27T12:06:00Z", "2026-11-27T12:00:00", "yesterday", "", None]


def slow_verdict(registry: ValidatorRegistry, raw: bytes) -> ValidRecord | str:
    decoded = decode_event(raw, [], now=NOW, max_future=SKEW)
    if not isinstance(decoded, Decoded):
        return decoded.reason.value
    checked = registry.validate(decoded)
    return checked if isinstance(checked, ValidRecord) else checked.reason.value


def mutations(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        event = copy.deepcopy(GOOD)
        for _ in range(rng.randint(1, 3)):
            data = event.get("data")
            target = data if isinstance(data, dict) and rng.random() < 0.5 else event
            key = rng.choice([*target.keys(), "data_base64", "extra", "NO"])
            roll = rng.random()
            if roll < 0.3:
                target.pop(key, None)
            elif roll < 0.5 and target is event:
                event["time"] = rng.choice(TIMES)
            else:
                target[key] = rng.choice(REPLACEMENTS)
        out.append(event)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_never_disagrees_with_the_explaining_path(registry: ValidatorRegistry, seed: int) -> None:
    accepted_fast = 0
    for event in [GOOD, *mutations(seed, 500)]:
        raw = json.dumps(event, ensure_ascii=False).encode()
        document = parse_structured(raw, [])
        fast = registry.accept(document, NOW, SKEW) if document is not None else None
        slow = slow_verdict(registry, raw)
        if fast is not None:
            accepted_fast += 1
            assert isinstance(slow, ValidRecord), (
                f"fast path accepted what the slow path refuses ({slow}): {event}"
            )
            assert (fast.dataset_id, fast.record_key, fast.schema_version, fast.data) == (
                slow.dataset_id,
                slow.record_key,
                slow.schema_version,
                slow.data,
            )
        elif isinstance(slow, ValidRecord) and event.get("type") == GOOD["type"]:
            # Declining is safe but slow: only null/empty optional attributes may cause it.
            assert any(event.get(name) in (None, "") for name in ("time", "subject")), event
    assert accepted_fast > 0


def test_good_event_takes_the_fast_path(registry: ValidatorRegistry) -> None:
    raw = json.dumps(GOOD, ensure_ascii=False).encode()
    document = parse_structured(raw, [])
    assert document is not None
    assert registry.accept(document, NOW, SKEW) is not None


def test_binary_mode_never_takes_the_fast_path() -> None:
    assert parse_structured(b"{}", [("ce_specversion", b"1.0")]) is None

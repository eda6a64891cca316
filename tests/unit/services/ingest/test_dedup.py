"""Dead letters of the same event once: the fingerprint routing writes, and the bounded memory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cityos.kernel.deadletter import FINGERPRINT, REPLAY_OF, Reason, fingerprint, parse_verdict
from cityos.kernel.schemas import schema_uri
from cityos.kernel.validation import ValidatorRegistry
from services.ingest.dedup import RecentDeadLetters, tail_starts
from services.ingest.routing import InboundMessage, Routed, Topics, route

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOPICS = Topics(validated="cityos.validated", deadletter="cityos.deadletter")
BAD_AED = {
    "specversion": "1.0",
    "id": "file-1-7",
    "source": "/departments/fire/aed",
    "type": "jp.cityos.record.upserted",
    "dataschema": schema_uri("aed", 1),
    "data": {"NO": "7", "名称": "焼津市役所", "緯度": "北緯34度"},
}


def inbound(
    value: bytes, *, offset: int = 3, headers: list[tuple[str, bytes | None]] | None = None
) -> InboundMessage:
    return InboundMessage("dept.fire.events", 1, offset, b"aed/7", value, headers or [], None)


def go(registry: ValidatorRegistry, message: InboundMessage) -> Routed:
    return route(message, registry=registry, topics=TOPICS, now=NOW, max_future=timedelta(minutes=5))


def bad_bytes(**data: object) -> bytes:
    event = dict(BAD_AED)
    event["data"] = {**BAD_AED["data"], **data}  # type: ignore[dict-item]
    return json.dumps(event, ensure_ascii=False).encode()


def test_the_same_event_sent_again_has_the_same_fingerprint(registry: ValidatorRegistry) -> None:
    # A re-import reads from another offset at another time: neither changes the event.
    first = go(registry, inbound(bad_bytes(), offset=3))
    again = go(registry, inbound(bad_bytes(), offset=900))
    assert first.reason is Reason.SCHEMA_VIOLATION
    assert first.fingerprint is not None and len(first.fingerprint) == 64
    assert again.fingerprint == first.fingerprint
    assert parse_verdict(_bytes(first)).fingerprint == first.fingerprint


def _bytes(routed: Routed) -> list[tuple[str, bytes | None]]:
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in routed.outbound.headers]


def test_corrected_bytes_are_a_new_dead_letter(registry: ValidatorRegistry) -> None:
    first = go(registry, inbound(bad_bytes()))
    corrected = go(registry, inbound(bad_bytes(名称="焼津市役所 本庁舎")))
    assert corrected.reason is Reason.SCHEMA_VIOLATION
    assert corrected.fingerprint != first.fingerprint


def test_a_replay_is_marked_and_keeps_the_fingerprint_of_the_original(registry: ValidatorRegistry) -> None:
    original = go(registry, inbound(bad_bytes()))
    replayed = go(registry, inbound(bad_bytes(), headers=[(REPLAY_OF, b"cityos.deadletter/0/12")]))
    assert (original.replay, replayed.replay) == (False, True)
    assert replayed.fingerprint == original.fingerprint  # cityos_* headers are not the event


def test_valid_events_carry_no_fingerprint(registry: ValidatorRegistry) -> None:
    event = dict(BAD_AED)
    event["data"] = {
        "NO": "7",
        "名称": "焼津市役所",
        "名称_カナ": "ヤイヅシヤクショ",
        "住所": "静岡県焼津市本町2-16-32",
        "設置位置": "1階ロビー",
        "緯度": 34.8669,
        "経度": 138.3237,
    }
    routed = go(registry, inbound(json.dumps(event, ensure_ascii=False).encode()))
    assert routed.reason is None
    assert routed.fingerprint is None
    assert FINGERPRINT not in dict(routed.outbound.headers)


def test_fingerprint_parts_cannot_be_shifted_into_each_other() -> None:
    # Length prefixes: moving bytes from the key to the value is another event.
    assert fingerprint("t", b"ab", b"c", [], "r") != fingerprint("t", b"a", b"bc", [], "r")
    assert fingerprint("t", None, b"", [], "r") != fingerprint("t", b"", b"", [], "r")
    assert fingerprint("t", b"k", b"v", [("h", b"1")], "r") != fingerprint("t", b"k", b"v", [], "r")
    assert fingerprint("t", b"k", b"v", [], "schema_violation") != fingerprint("t", b"k", b"v", [], "r")
    with_ours = [("h", b"1"), ("cityos_replay_of", b"x/0/1")]
    assert fingerprint("t", b"k", b"v", with_ours, "r") == fingerprint("t", b"k", b"v", [("h", b"1")], "r")


def test_memory_knows_what_it_saw_and_forgets_the_least_recent_first() -> None:
    memory = RecentDeadLetters(2)
    a, b, c = (fingerprint("t", None, bytes([n]), [], "r") for n in range(3))
    assert memory.remember(a) is False
    assert memory.remember(a) is True
    memory.remember(b)
    memory.remember(a)  # a is now the most recent
    memory.remember(c)  # evicts b
    assert len(memory) == 2
    assert memory.remember(a) is True
    assert memory.remember(b) is False


def test_memory_of_zero_never_calls_anything_a_duplicate() -> None:
    memory = RecentDeadLetters(0)
    fp = fingerprint("t", None, b"v", [], "r")
    assert (memory.remember(fp), memory.remember(fp), len(memory)) == (False, False, 0)


def test_memory_ignores_fingerprints_it_did_not_write() -> None:
    memory = RecentDeadLetters(10)
    assert (memory.remember("not-hex"), memory.remember("not-hex")) == (False, False)


def test_tail_is_shared_by_the_partitions_and_short_ones_leave_room_for_long_ones() -> None:
    # Even split when every partition is long enough.
    assert tail_starts({0: (0, 100), 1: (0, 100), 2: (0, 100)}, 30) == {0: 90, 1: 90, 2: 90}
    # One department's dead letters all on one partition: it gets what the others do not use.
    assert tail_starts({0: (0, 5), 1: (0, 0), 2: (10, 1000)}, 100) == {0: 0, 1: 0, 2: 905}
    # Deleted by retention: never before the low watermark; nothing to read starts at the end.
    assert tail_starts({0: (50, 60)}, 100) == {0: 50}
    assert tail_starts({0: (7, 7)}, 100) == {0: 7}
    assert tail_starts({0: (0, 10)}, 0) == {0: 10}

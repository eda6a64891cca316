"""Record rules in the ingest decision: a record that is well formed field by field but impossible as
a whole is dead-lettered with ``record_rule_violated``, the field's pointer and a ja/en detail; the
fast path never lets it through; synthetic records (what the demo and benchmarks send) pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cityos.domain.anonymize.synthetic import as_records, synthetic_moves
from cityos.kernel.deadletter import Reason
from cityos.kernel.events import TYPE_DELETED
from cityos.kernel.schemas import schema_uri
from cityos.kernel.validation import ValidatorRegistry
from services.ingest.routing import InboundMessage, Routed, Topics, route
from tests.support.moves import VALID_MOVE

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOPICS = Topics(validated="cityos.validated", deadletter="cityos.deadletter")
MOVE = VALID_MOVE


def move_event(data: dict[str, Any], *, version: int = 2, kind: str = "jp.cityos.record.upserted") -> bytes:
    event = {
        "specversion": "1.0",
        "id": f"evt-{data['異動ID']}",
        "source": "/departments/citizens/register",
        "type": kind,
        "time": "2026-11-27T11:00:00Z",
        "dataschema": schema_uri("resident-moves", version),
        "data": data,
    }
    return json.dumps(event, ensure_ascii=False).encode()


def go(registry: ValidatorRegistry, value: bytes) -> Routed:
    inbound = InboundMessage("dept.citizens.events", 0, 7, b"k", value, [], None)
    return route(inbound, registry=registry, topics=TOPICS, now=NOW, max_future=timedelta(minutes=5))


def headers(routed: Routed) -> dict[str, str]:
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in routed.outbound.headers}


def test_a_good_move_is_validated(registry: ValidatorRegistry) -> None:
    routed = go(registry, move_event(MOVE))
    assert routed.reason is None
    assert routed.outbound.key == b"resident-moves/M0001"


@pytest.mark.parametrize("version", [1, 2])
def test_born_after_the_move_is_dead_lettered_with_its_own_reason(
    registry: ValidatorRegistry, version: int
) -> None:
    """The rules belong to the dataset, so events naming the older version are held to them too."""
    routed = go(registry, move_event({**MOVE, "異動日": "1971-07-07"}, version=version))
    assert routed.reason is Reason.RECORD_RULE_VIOLATED
    h = headers(routed)
    assert h["cityos_reason"] == "record_rule_violated"
    assert h["cityos_pointer"] == "/data/生年月日"
    assert h["cityos_dataset"] == "resident-moves"
    assert h["cityos_detail"] == (
        "生年月日（1991-05-20）が異動日（1971-07-07）より後です / 生年月日 (1991-05-20) is after 異動日 (1971-07-07)"
    )


def test_a_birth_with_a_previous_address_points_at_that_address(registry: ValidatorRegistry) -> None:
    birth = {**MOVE, "異動事由": "出生", "生年月日": "2025-04-07", "世帯人数": 3}
    del birth["前住所地_都道府県"]
    routed = go(registry, move_event(birth))
    assert routed.reason is Reason.RECORD_RULE_VIOLATED
    assert headers(routed)["cityos_pointer"] == "/data/前住所地"
    assert "異動事由が出生の場合" in headers(routed)["cityos_detail"]


def test_schema_violations_are_named_before_record_rules(registry: ValidatorRegistry) -> None:
    """The demo's old records: a household of 48 and a prefecture that does not exist."""
    for bad in (
        {"世帯人数": 48},
        {"前住所地_都道府県": "福岡県北"},
        {"住所_町丁目": "福岡県北九州市小倉北区魚町"},
    ):
        routed = go(registry, move_event({**MOVE, **bad, "異動日": "1971-07-07"}))
        assert routed.reason is Reason.SCHEMA_VIOLATION, bad
        assert headers(routed)["cityos_pointer"] == f"/data/{next(iter(bad))}"


def test_a_deletion_names_the_record_only(registry: ValidatorRegistry) -> None:
    routed = go(registry, move_event({"異動ID": "M0001"}, kind=TYPE_DELETED))
    assert routed.reason is None


def test_synthetic_moves_pass_schema_and_rules(registry: ValidatorRegistry) -> None:
    records = as_records(synthetic_moves(2000, seed=11))
    reasons = {go(registry, move_event(record)).reason for record in records}
    assert reasons == {None}

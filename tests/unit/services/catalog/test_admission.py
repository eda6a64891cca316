"""The catalog's own admission check, behind ingest and the broker's ACLs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cityos.kernel.deadletter import Reason
from cityos.kernel.events import TYPE_DELETED, TYPE_UPSERTED, ValidatedEvent
from services.catalog.admission import AdmissionFacts, DataValidators, admit, refusal

FACTS = AdmissionFacts(
    owners={"aed": "fire", "moves-release": "citizens"},
    releases=frozenset({"moves-release"}),
    versions=frozenset({("aed", 1), ("moves-release", 1)}),
    record_keys={"aed": "NO", "moves-release": "仮ID"},
)
AED_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["NO"],
    "properties": {"NO": {"type": "string", "pattern": "^[0-9]+$"}, "名称": {"type": "string"}},
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def validators() -> DataValidators:
    compiled = DataValidators({})
    compiled.add(("aed", 1), "https://example.jp/aed/v1", AED_SCHEMA, {})
    return compiled


def event(
    dataset: str = "aed", version: int = 1, *, key: str = "1", data: Any = None, kind: str = TYPE_UPSERTED
) -> ValidatedEvent:
    return ValidatedEvent(
        dataset_id=dataset,
        record_key=key,
        schema_version=version,
        source="/dept/fire",
        id="e1",
        type=kind,
        time=datetime(2026, 12, 1, tzinfo=UTC),
        data={"NO": key} if data is None else data,
        partition=0,
        offset=0,
    )


def test_an_event_of_the_owner_with_a_registered_version_is_admitted(validators: DataValidators) -> None:
    assert refusal(event(), "fire", FACTS, validators) is None
    assert refusal(event(kind=TYPE_DELETED, data={}), "fire", FACTS, validators) is None


def test_every_way_around_the_registry_is_refused_with_its_own_reason(validators: DataValidators) -> None:
    cases = {
        Reason.UNKNOWN_DATASET: (event("nope"), "fire"),
        Reason.RELEASE_DATASET: (event("moves-release"), "citizens"),
        Reason.UNKNOWN_SCHEMA_VERSION: (event(version=9), "fire"),
        Reason.WRONG_DEPARTMENT: (event(), "planning"),
        Reason.SCHEMA_VIOLATION: (event(data={"NO": "1", "junk": "<x>"}), "fire"),
        Reason.MISSING_RECORD_KEY: (event(key="2", data={"NO": "1"}), "fire"),
    }
    for reason, (candidate, department) in cases.items():
        found = refusal(candidate, department, FACTS, validators)
        assert found is not None and found.reason is reason, reason
    # A validated message without the department header names no owner: refused too.
    missing = refusal(event(), None, FACTS, validators)
    assert missing is not None and missing.reason is Reason.WRONG_DEPARTMENT


def test_a_version_that_does_not_compile_refuses_its_events_instead_of_storing_them() -> None:
    broken = DataValidators({})
    broken.add(("aed", 1), "https://example.jp/aed/v1", {"type": "object", "pattern": "(a)\\1"}, {})
    found = refusal(event(), "fire", FACTS, broken)
    assert found is not None and found.reason is Reason.SCHEMA_VIOLATION


def test_admit_splits_a_batch_by_position(validators: DataValidators) -> None:
    admitted, refused = admit(
        [(event(), "fire"), (event(), "water"), (event(version=2), "fire")], FACTS, validators
    )
    assert admitted == [0]
    assert {p: r.reason for p, r in refused.items()} == {
        1: Reason.WRONG_DEPARTMENT,
        2: Reason.UNKNOWN_SCHEMA_VERSION,
    }

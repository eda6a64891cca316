"""The catalog's own admission check, behind ingest and the broker's ACLs."""

from __future__ import annotations

from datetime import UTC, datetime

from cityos.kernel.deadletter import Reason
from cityos.kernel.events import TYPE_UPSERTED, ValidatedEvent
from services.catalog.admission import AdmissionFacts, admit, refusal

FACTS = AdmissionFacts(
    owners={"aed": "fire", "moves-release": "citizens"},
    releases=frozenset({"moves-release"}),
    versions=frozenset({("aed", 1), ("moves-release", 1)}),
)


def event(dataset: str = "aed", version: int = 1) -> ValidatedEvent:
    return ValidatedEvent(
        dataset_id=dataset,
        record_key="1",
        schema_version=version,
        source="/dept/fire",
        id="e1",
        type=TYPE_UPSERTED,
        time=datetime(2026, 12, 1, tzinfo=UTC),
        data={"NO": "1"},
        partition=0,
        offset=0,
    )


def test_an_event_of_the_owner_with_a_registered_version_is_admitted() -> None:
    assert refusal(event(), "fire", FACTS) is None


def test_every_way_around_the_registry_is_refused_with_its_own_reason() -> None:
    cases = {
        Reason.UNKNOWN_DATASET: (event("nope"), "fire"),
        Reason.RELEASE_DATASET: (event("moves-release"), "citizens"),
        Reason.UNKNOWN_SCHEMA_VERSION: (event(version=9), "fire"),
        Reason.WRONG_DEPARTMENT: (event(), "planning"),
    }
    for reason, (candidate, department) in cases.items():
        found = refusal(candidate, department, FACTS)
        assert found is not None and found.reason is reason, reason
    # A validated message without the department header names no owner: refused too.
    missing = refusal(event(), None, FACTS)
    assert missing is not None and missing.reason is Reason.WRONG_DEPARTMENT


def test_admit_splits_a_batch_by_position() -> None:
    admitted, refused = admit([(event(), "fire"), (event(), "water"), (event(version=2), "fire")], FACTS)
    assert admitted == [0]
    assert {p: r.reason for p, r in refused.items()} == {
        1: Reason.WRONG_DEPARTMENT,
        2: Reason.UNKNOWN_SCHEMA_VERSION,
    }

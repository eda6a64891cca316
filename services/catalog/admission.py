"""Which validated events the catalog may store: defence in depth behind ingest and the broker.

Only ingest may write the validated topic, and ingest passes only what the registry allows. The
catalog still checks, against its own database, what a leaked ingest credential or a bug upstream
could otherwise slip in: every event names a dataset the catalog knows, a schema version registered
for it, and the department ingest read it from owns that dataset; records of an anonymized release
come only from the release gate, never from Kafka. A refused event is dead-lettered with its reason.
Pure: ``admit`` decides from ``AdmissionFacts`` the store read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cityos.kernel.deadletter import Reason
from cityos.kernel.events import ValidatedEvent


@dataclass(frozen=True, slots=True)
class AdmissionFacts:
    """What the catalog holds about the datasets of one batch."""

    owners: Mapping[str, str]  # dataset -> owning department
    releases: frozenset[str]  # datasets that are anonymized releases
    versions: frozenset[tuple[str, int]]  # registered (dataset, schema version)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    detail: str


def refusal(event: ValidatedEvent, department: str | None, facts: AdmissionFacts) -> Refusal | None:
    """Why ``event`` (read with ``department`` from ingest's header) must not be stored, or None."""
    dataset = event.dataset_id
    owner = facts.owners.get(dataset)
    if owner is None:
        return Refusal(Reason.UNKNOWN_DATASET, f"dataset {dataset!r} is not in the catalog")
    if dataset in facts.releases:
        return Refusal(
            Reason.RELEASE_DATASET,
            f"dataset {dataset!r} is an anonymized release: its records come only from the release gate",
        )
    if (dataset, event.schema_version) not in facts.versions:
        return Refusal(
            Reason.UNKNOWN_SCHEMA_VERSION,
            f"schema version {event.schema_version} of {dataset!r} is not registered",
        )
    if department != owner:
        return Refusal(
            Reason.WRONG_DEPARTMENT,
            f"dataset {dataset!r} is published by {owner!r}, not {department or 'an unnamed department'!r}",
        )
    return None


def admit(
    events: Sequence[tuple[ValidatedEvent, str | None]], facts: AdmissionFacts
) -> tuple[list[int], dict[int, Refusal]]:
    """(positions admitted, position -> refusal) for a batch of (event, department) pairs."""
    admitted: list[int] = []
    refused: dict[int, Refusal] = {}
    for position, (event, department) in enumerate(events):
        found = refusal(event, department, facts)
        if found is None:
            admitted.append(position)
        else:
            refused[position] = found
    return admitted, refused

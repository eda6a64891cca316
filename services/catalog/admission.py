"""Which validated events the catalog may store: defence in depth behind ingest and the broker.

Only ingest may write the validated topic, and ingest passes only what the registry allows. The
catalog still checks, against its own database, what a leaked ingest credential or a bug upstream
could otherwise slip in: every event names a dataset the catalog knows, a schema version registered
for it, and the department ingest read it from owns that dataset; an upsert's data conforms to that
version and carries the record key its Kafka key names; records of an anonymized release come only
from the release gate, never from Kafka. A refused event is dead-lettered with its reason.
``admit`` decides from ``AdmissionFacts`` the store read and the compiled ``DataValidators``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cityos.kernel.deadletter import Reason
from cityos.kernel.events import ValidatedEvent
from cityos.kernel.references import external_refs, rust_validator

log = logging.getLogger(__name__)
VersionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class AdmissionFacts:
    """What the catalog holds about the datasets of one batch."""

    owners: Mapping[str, str]  # dataset -> owning department
    releases: frozenset[str]  # datasets that are anonymized releases
    versions: frozenset[VersionKey]  # registered (dataset, schema version)
    record_keys: Mapping[str, str]  # dataset -> the field holding a record's key


class DataValidators:
    """Compiled validators of registered schema versions, kept for the process's life (a registered
    version never changes). ``None`` marks a version that would not compile: its events are refused."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        self._bundle = dict(bundle)
        self._compiled: dict[VersionKey, Any] = {}

    def missing(self, keys: Iterable[VersionKey]) -> set[VersionKey]:
        return {key for key in keys if key not in self._compiled}

    def needed_refs(self, uri: str, document: Mapping[str, Any]) -> set[str]:
        """URIs of other registered versions ``document`` refers to (the bundle is at hand)."""
        return {ref for ref in external_refs(document, uri) if ref not in self._bundle}

    def add(
        self, key: VersionKey, uri: str, document: Mapping[str, Any], referenced: Mapping[str, Any]
    ) -> None:
        bundled = {ref: self._bundle[ref] for ref in external_refs(document, uri) if ref in self._bundle}
        resources = {**bundled, **referenced}
        try:
            self._compiled[key] = rust_validator(document, resources)
        except ValueError as exc:
            log.error("schema %s does not compile in the catalog; its events are refused: %s", uri, exc)
            self._compiled[key] = None

    def get(self, key: VersionKey) -> Any:
        return self._compiled.get(key)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    detail: str


def refusal(
    event: ValidatedEvent, department: str | None, facts: AdmissionFacts, validators: DataValidators
) -> Refusal | None:
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
    if event.is_deletion:
        return None  # a deletion names the record only
    return _data_refusal(
        event, facts.record_keys.get(dataset, ""), validators.get((dataset, event.schema_version))
    )


def _data_refusal(event: ValidatedEvent, key_field: str, validator: Any) -> Refusal | None:
    data = event.data
    if data is None:
        return Refusal(Reason.SCHEMA_VIOLATION, "data must be a JSON object")
    key = data.get(key_field)
    if key is None or str(key) != event.record_key:
        return Refusal(
            Reason.MISSING_RECORD_KEY,
            f"record key {key_field!r} of the data does not match the message key {event.record_key[:100]!r}",
        )
    if validator is None:
        return Refusal(Reason.SCHEMA_VIOLATION, f"schema version {event.schema_version} cannot be checked")
    if not validator.is_valid(data):
        error = next(iter(validator.iter_errors(data)))
        return Refusal(Reason.SCHEMA_VIOLATION, str(error.message)[:500])
    return None


def admit(
    events: Sequence[tuple[ValidatedEvent, str | None]], facts: AdmissionFacts, validators: DataValidators
) -> tuple[list[int], dict[int, Refusal]]:
    """(positions admitted, position -> refusal) for a batch of (event, department) pairs."""
    admitted: list[int] = []
    refused: dict[int, Refusal] = {}
    for position, (event, department) in enumerate(events):
        found = refusal(event, department, facts, validators)
        if found is None:
            admitted.append(position)
        else:
            refused[position] = found
    return admitted, refused

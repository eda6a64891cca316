"""Dataset-schema validation of decoded events, with validators compiled once per schema version."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cityos.kernel.deadletter import Reason
from cityos.kernel.events import (
    RECORD_EVENT_TYPES,
    SPEC_VERSION,
    TYPE_DELETED,
    TYPE_UPSERTED,
    Decoded,
    Rejected,
    json_pointer,
    parse_event_time,
)
from cityos.kernel.record_rules import first_violation
from cityos.kernel.references import external_refs, rust_validator
from cityos.kernel.schemas import SCHEMA_URI_BASE

if TYPE_CHECKING:
    from cityos.kernel.record_rules import RecordRule
    from cityos.kernel.schemas import DatasetMeta, SchemaSet

_SCHEMA_URI = re.compile(
    "^" + re.escape(SCHEMA_URI_BASE) + r"(?P<dataset>[a-z0-9-]+)/(?P<version>[1-9][0-9]*)$"
)


def parse_schema_uri(uri: str) -> tuple[str, int] | None:
    """(dataset id, version) of a schema URI, or None when it is not one of ours."""
    match = _SCHEMA_URI.match(uri)
    if match is None:
        return None
    return match["dataset"], int(match["version"])


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class ValidRecord:
    """An event whose data conforms to its dataset schema version."""

    dataset_id: str
    schema_version: int
    record_key: str
    data: dict[str, Any]


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class _Compiled:
    meta: DatasetMeta
    version: int
    event_validator: Any  # jsonschema_rs validator of a whole structured upsert event (untyped)
    document: dict[str, Any]
    resources: dict[str, Any]
    # Validator of the data alone, compiled on first use: only refused events, deletions and
    # binary-mode events need it, and each compiled validator holds its own regex programs (with
    # thousands of versions registered, compiling it eagerly doubled the registry's memory).
    data_validator: Any = None

    @property
    def validator(self) -> Any:
        if self.data_validator is None:
            self.data_validator = rust_validator(self.document, self.resources)
        return self.data_validator


def upsert_event_schema(uri: str, document: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema of a structured-mode upsert event for one schema version: the envelope rules of
    ``cityos.kernel.events`` plus the dataset schema for ``data``. One compiled validation accepts a good
    event; only refused events take the Python path that names the reason."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "dataschema", "data"],
        "properties": {
            "specversion": {"const": SPEC_VERSION},
            "id": {"type": "string", "minLength": 1, "maxLength": 200},
            "source": {"type": "string", "minLength": 1, "maxLength": 500},
            "type": {"const": TYPE_UPSERTED},
            "time": {"type": "string"},
            "dataschema": {"const": uri},
            "subject": {"type": "string"},
            "data": document,
        },
        "not": {"required": ["data_base64"]},
    }


def _in_time(text: str, now: datetime, max_future: timedelta) -> bool:
    """Whether an event time the schema let through is one ``decode_event`` accepts."""
    try:
        return parse_event_time(text) - now <= max_future
    except ValueError:
        return False


class ValidatorRegistry:
    """Compiled validators by schema URI. Built once; ``add`` lets new versions arrive live.

    ``$ref`` to another registered version or to a bundled shared definition (``bundle``: URI ->
    document) resolves offline; anything else fails when the version is added, not per event.
    """

    def __init__(self, schema_set: SchemaSet, *, bundle: dict[str, Any] | None = None) -> None:
        self._datasets: dict[str, DatasetMeta] = dict(schema_set.datasets)
        self._by_uri: dict[str, _Compiled] = {}
        self._documents: dict[str, Any] = dict(bundle or {})
        self._documents.update({v.uri: v.document for v in schema_set.versions.values()})
        for version in schema_set.versions.values():
            self.add(self._datasets[version.dataset_id], version.version, version.uri, version.document)

    def add(self, meta: DatasetMeta, version: int, uri: str, document: dict[str, Any]) -> None:
        """Compile and register one schema version (format assertions on, never the network).

        Raises ``ValueError`` for a schema jsonschema-rs cannot compile; nothing changes then.
        """
        # Only the documents this one refers to: a registry of every version would make each
        # compilation cost grow with the number of registered schemas.
        resources = {
            ref: self._documents[ref] for ref in external_refs(document, uri) if ref in self._documents
        }
        # The event schema embeds the document: compiling it proves the document compiles too.
        event_validator = rust_validator(upsert_event_schema(uri, document), resources)
        self._documents[uri] = document
        self._datasets[meta.id] = meta
        self._by_uri[uri] = _Compiled(meta, version, event_validator, document, resources)

    @property
    def version_count(self) -> int:
        """How many schema versions are registered here."""
        return len(self._by_uri)

    def knows(self, uri: str) -> bool:
        """Whether a schema version is registered here."""
        return uri in self._by_uri

    def accept(self, document: dict[str, Any], now: datetime, max_future: timedelta) -> ValidRecord | None:
        """Fast acceptance of a good structured upsert; None means "take the explaining path".

        Never accepts what ``cityos.kernel.events.decode_event`` + ``validate`` would refuse (a test
        holds the two paths to the same verdicts).
        """
        uri = document.get("dataschema")
        compiled = self._by_uri.get(uri) if type(uri) is str else None
        if compiled is None or not compiled.event_validator.is_valid(document):
            return None
        time_text = document.get("time")
        if time_text and not _in_time(time_text, now, max_future):
            return None
        data = document["data"]
        meta = compiled.meta
        key = data.get(meta.record_key)
        if key is None or key == "":
            return None
        rules = self._datasets[meta.id].record_rules
        if rules and first_violation(rules, data) is not None:
            return None
        return ValidRecord(meta.id, compiled.version, str(key), data)

    def _record_rules(self, compiled: _Compiled) -> list[RecordRule]:
        # The dataset's newest metadata: rules changed with a later version bind every version's events.
        return self._datasets[compiled.meta.id].record_rules

    def dataset(self, dataset_id: str) -> DatasetMeta | None:
        return self._datasets.get(dataset_id)

    def validate(self, event: Decoded) -> ValidRecord | Rejected:
        """Check type, dataschema and data of a decoded event; never raises for bad input."""
        envelope = event.envelope
        if envelope.type not in RECORD_EVENT_TYPES:
            return Rejected(
                Reason.UNKNOWN_EVENT_TYPE,
                f"type {envelope.type!r} is not one of {sorted(RECORD_EVENT_TYPES)}",
                "/type",
                envelope.id,
            )
        if not envelope.dataschema:
            return Rejected(Reason.INVALID_ENVELOPE, "dataschema is required", "/dataschema", envelope.id)
        compiled = self._by_uri.get(envelope.dataschema)
        if compiled is None:
            return self._unknown_schema(envelope.dataschema, envelope.id)
        data = event.data
        if not isinstance(data, dict):
            return Rejected(Reason.SCHEMA_VIOLATION, "data must be a JSON object", "/data", envelope.id)
        key_field = compiled.meta.record_key
        key_value = data.get(key_field)
        if key_value is None or key_value == "":
            return Rejected(
                Reason.MISSING_RECORD_KEY,
                f"record key {key_field!r} is missing",
                json_pointer(["data", key_field]),
                envelope.id,
            )
        # A deletion names the record only; its other fields need not satisfy the schema.
        if envelope.type != TYPE_DELETED and not compiled.validator.is_valid(data):
            error = next(iter(compiled.validator.iter_errors(data)))
            return Rejected(
                Reason.SCHEMA_VIOLATION,
                str(error.message)[:500],
                json_pointer(["data", *error.instance_path]),
                envelope.id,
            )
        # Rules across fields come after the schema: they may assume well-formed values.
        broken = (
            first_violation(self._record_rules(compiled), data) if envelope.type != TYPE_DELETED else None
        )
        if broken is not None:
            return Rejected(
                Reason.RECORD_RULE_VIOLATED, broken.detail, json_pointer(["data", broken.field]), envelope.id
            )
        return ValidRecord(compiled.meta.id, compiled.version, str(key_value), data)

    def _unknown_schema(self, uri: str, event_id: str) -> Rejected:
        parsed = parse_schema_uri(uri)
        if parsed is None or parsed[0] not in self._datasets:
            return Rejected(
                Reason.UNKNOWN_DATASET, f"no dataset for dataschema {uri[:300]!r}", "/dataschema", event_id
            )
        return Rejected(
            Reason.UNKNOWN_SCHEMA_VERSION,
            f"dataset {parsed[0]!r} has no registered version {parsed[1]}",
            "/dataschema",
            event_id,
        )

"""Dataset metadata and versioned JSON Schemas under ``schemas/``: the models and a strict, offline loader.

Layout::

    schemas/departments.json              departments (id, ja/en name, Kafka principal)
    schemas/<dataset-id>/dataset.json     DatasetMeta
    schemas/<dataset-id>/v<N>.schema.json JSON Schema 2020-12 with $id .../schemas/<dataset-id>/<N>

Every problem found while loading raises ``SchemaError`` naming the file, so a bad schema stops a
service at start-up instead of rejecting events one by one later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jsonschema_rs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cityos.kernel.errors import SchemaError
from cityos.kernel.patterns import RUST_PATTERN_OPTIONS, linear_document, pattern_problem, schema_patterns
from cityos.kernel.record_rules import RecordRule

SCHEMA_URI_BASE = "https://cityos.example/schemas/"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.schema\.json$")

Classification = Literal["public", "internal", "personal"]
# Values map one to one onto the DCAT / EU frequency vocabulary used by the catalog export.
UpdateFrequency = Literal["continuous", "daily", "weekly", "monthly", "quarterly", "annual", "irregular"]
# The schema registry's compatibility modes (Confluent's names), as a dataset may declare its own.
CompatibilityLevel = Literal[
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"
]


class LocalizedText(BaseModel):
    """A text in Japanese and English."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ja: str = Field(min_length=1)
    en: str = Field(min_length=1)


class LocationFields(BaseModel):
    """Which record properties hold a point's latitude and longitude."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latitude: str = Field(min_length=1)
    longitude: str = Field(min_length=1)


def location_fields(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """(latitude property, longitude property) a stored dataset.json document declares, or None.

    Reads the document as the catalog keeps it (plain JSON, not the model): every reader of stored
    metadata -- the catalog's coordinates, publish's geo output, workspaces -- asks here.
    """
    location = meta.get("location")
    if not isinstance(location, Mapping):
        return None
    latitude, longitude = location.get("latitude"), location.get("longitude")
    if isinstance(latitude, str) and isinstance(longitude, str) and latitude and longitude:
        return latitude, longitude
    return None


class Department(BaseModel):
    """A city department: it publishes on ``dept.<id>.events`` as Kafka principal ``User:dept-<id>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SLUG_PATTERN, max_length=40)
    name: LocalizedText
    kafka_principal: str

    @model_validator(mode="after")
    def _principal_matches_id(self) -> Department:
        expected = f"User:dept-{self.id}"
        if self.kafka_principal != expected:
            raise ValueError(f"kafka_principal must be {expected!r}, not {self.kafka_principal!r}")
        return self


class DatasetMeta(BaseModel):
    """What ``dataset.json`` says about a dataset; the schema files say what a record looks like."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=SLUG_PATTERN, max_length=64)
    title: LocalizedText
    description: LocalizedText
    department: str
    license: str = "CC-BY-4.0"
    classification: Classification
    record_key: str = Field(min_length=1)
    location: LocationFields | None = None
    update_frequency: UpdateFrequency
    keywords: list[str] = Field(default_factory=list)
    standard: str | None = None
    csv_aliases: dict[str, str] = Field(default_factory=dict)
    # Rules across fields that JSON Schema cannot express; ingest checks them after the schema.
    record_rules: list[RecordRule] = Field(default_factory=list)
    # The dataset's compatibility level for `cityos schemas check` (the registry's modes); None:
    # the check's default (BACKWARD). A dataset that tightens its rules declares a FORWARD level.
    compatibility: CompatibilityLevel | None = None


class SchemaVersion(BaseModel):
    """One version of a dataset's JSON Schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_id: str
    version: int = Field(ge=1)
    uri: str
    document: dict[str, Any]


@dataclass(frozen=True)
class SchemaSet:
    """Everything under one schema directory; ``versions`` is keyed by schema URI (the ``$id``)."""

    datasets: dict[str, DatasetMeta]
    departments: dict[str, Department]
    versions: dict[str, SchemaVersion]

    def versions_of(self, dataset_id: str) -> list[SchemaVersion]:
        """All versions of a dataset, oldest first (empty for an unknown dataset)."""
        found = [v for v in self.versions.values() if v.dataset_id == dataset_id]
        return sorted(found, key=lambda v: v.version)

    def latest(self, dataset_id: str) -> SchemaVersion:
        """The highest version of a dataset; ``KeyError`` when the dataset is unknown."""
        found = self.versions_of(dataset_id)
        if not found:
            raise KeyError(f"unknown dataset {dataset_id!r}")
        return found[-1]


def schema_uri(dataset_id: str, version: int) -> str:
    """The ``$id`` of a schema version, which events also carry as ``dataschema``."""
    return f"{SCHEMA_URI_BASE}{dataset_id}/{version}"


def default_schema_dir() -> Path:
    """``$CITYOS_SCHEMAS_DIR`` if set, else the repository's ``schemas/`` (as ``Settings`` says)."""
    from cityos.kernel.settings import Settings  # settings is read afresh: the environment may change

    return Settings().schemas_dir


def load_schema_dir(path: Path) -> SchemaSet:
    """Load and check departments, dataset metadata and every schema version under ``path``."""
    root = Path(path)
    if not root.is_dir():
        raise SchemaError(f"{root}: schema directory not found")
    departments = _load_departments(root / "departments.json")
    datasets: dict[str, DatasetMeta] = {}
    versions: dict[str, SchemaVersion] = {}
    for entry in sorted(root.iterdir()):
        # Top-level files other than departments.json (a README, say) are not ours to judge.
        if not entry.is_dir() or entry.name.startswith((".", "_")):
            continue
        meta, dataset_versions = _load_dataset(entry, departments)
        datasets[meta.id] = meta
        for version in dataset_versions:
            versions[version.uri] = version
    return SchemaSet(datasets=datasets, departments=departments, versions=versions)


def _load_departments(file: Path) -> dict[str, Department]:
    data = _read_json(file)
    if not isinstance(data, list):
        raise SchemaError(f"{file}: expected a JSON list of departments")
    departments: dict[str, Department] = {}
    for index, item in enumerate(data):
        try:
            department = Department.model_validate(item)
        except ValidationError as exc:
            raise SchemaError(f"{file}: department #{index}: {exc}") from exc
        if department.id in departments:
            raise SchemaError(f"{file}: duplicate department id {department.id!r}")
        departments[department.id] = department
    return departments


def _load_dataset(
    folder: Path, departments: dict[str, Department]
) -> tuple[DatasetMeta, list[SchemaVersion]]:
    meta_file = folder / "dataset.json"
    try:
        meta = DatasetMeta.model_validate(_read_json(meta_file))
    except ValidationError as exc:
        raise SchemaError(f"{meta_file}: {exc}") from exc
    if meta.id != folder.name:
        raise SchemaError(f"{meta_file}: id {meta.id!r} differs from its folder name {folder.name!r}")
    if meta.department not in departments:
        raise SchemaError(f"{meta_file}: department {meta.department!r} is not in departments.json")

    numbered: dict[int, Path] = {}
    for file in sorted(folder.iterdir()):
        if file.name == "dataset.json":
            continue
        match = _VERSION_FILE.match(file.name)
        if match:
            numbered[int(match.group(1))] = file
        elif file.suffix == ".json":
            # A misnamed version file would otherwise be silently ignored.
            raise SchemaError(f"{file}: unexpected JSON file (expected dataset.json or v<N>.schema.json)")
    if not numbered:
        raise SchemaError(f"{folder}: no v<N>.schema.json file")
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise SchemaError(f"{folder}: schema versions must be 1..N without gaps, found {sorted(numbered)}")

    versions = [_load_version(meta, number, numbered[number]) for number in sorted(numbered)]
    latest_properties = versions[-1].document["properties"]
    for alias, target in meta.csv_aliases.items():
        if target not in latest_properties:
            raise SchemaError(f"{meta_file}: csv_aliases[{alias!r}] names unknown property {target!r}")
    for index, rule in enumerate(meta.record_rules):
        unknown = [name for name in rule.fields if name not in latest_properties]
        if unknown:
            raise SchemaError(f"{meta_file}: record_rules[{index}] names unknown properties {unknown}")
    return meta, versions


def _load_version(meta: DatasetMeta, number: int, file: Path) -> SchemaVersion:
    document = _read_json(file)
    if not isinstance(document, dict):
        raise SchemaError(f"{file}: a schema must be a JSON object")
    if document.get("$schema") != DRAFT_2020_12:
        raise SchemaError(f"{file}: $schema must be {DRAFT_2020_12!r}")
    uri = schema_uri(meta.id, number)
    if document.get("$id") != uri:
        raise SchemaError(f"{file}: $id must be {uri!r}, found {document.get('$id')!r}")
    for ref in _refs(document):
        # Schemas are resolved offline: only in-document and CityOS references can be followed.
        if not ref.startswith(("#", SCHEMA_URI_BASE)):
            raise SchemaError(f"{file}: $ref {ref!r} would need the network")
    for path, pattern in schema_patterns(document):
        problem = pattern_problem(pattern)
        if problem is not None:
            where = "/".join(str(part) for part in path)
            raise SchemaError(
                f"{file}: {where}: pattern {pattern[:100]!r} cannot run on a linear-time engine "
                f"(no backreferences, no lookaround): {problem}"
            )
    try:
        # The same compilation the ingest service does: meta-schema, regexes and local $refs.
        jsonschema_rs.validator_for(
            linear_document(document), validate_formats=True, pattern_options=RUST_PATTERN_OPTIONS
        )
    except (ValueError, jsonschema_rs.ReferencingError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchemaError(f"{file}: not a usable draft 2020-12 schema: {first_line}") from exc

    properties = document.get("properties")
    required = document.get("required", [])
    if document.get("type") != "object" or not isinstance(properties, dict):
        raise SchemaError(f"{file}: a dataset schema must be an object schema with properties")
    if meta.record_key not in properties or meta.record_key not in required:
        raise SchemaError(f"{file}: record key {meta.record_key!r} must be a required property")
    if meta.location is not None:
        for field_name in (meta.location.latitude, meta.location.longitude):
            if field_name not in properties:
                raise SchemaError(f"{file}: location property {field_name!r} is not defined")
    return SchemaVersion(dataset_id=meta.id, version=number, uri=uri, document=document)


def _read_json(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SchemaError(f"{file}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{file}: cannot read: {exc}") from exc
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except ValueError as exc:
        raise SchemaError(f"{file}: invalid JSON: {exc}") from exc


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last duplicate silently; in a schema that hides a mistake.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)

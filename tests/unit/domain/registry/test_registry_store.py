"""Registry state on a real SQLite catalog: evaluation, registration, same schema twice, compatibility
levels, audit; lint findings; and ingest's live application of schema-topic changes."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy.orm import Session

from cityos.domain.audit import list_audit
from cityos.domain.dlq import BadDeadLetterId, DeadLetter, DeadLetterFilter, parse_id
from cityos.domain.registry.compatibility import Mode
from cityos.domain.registry.lint import lint_schema
from cityos.domain.registry.store import (
    UnknownDataset,
    add_version,
    compatibility_mode,
    evaluate,
    set_compatibility_mode,
    versions_of,
)
from cityos.domain.registry.topic import SchemaChange
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT
from cityos.kernel.validation import ValidatorRegistry
from services.ingest.service import apply_schema_changes

SCHEMAS = load_schema_dir(REPO_ROOT / "schemas")


def aed_v1() -> dict[str, Any]:
    return copy.deepcopy(SCHEMAS.latest("aed").document)


def with_optional_field(document: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed.pop("$id", None)
    changed["properties"]["点検日"] = {"type": "string", "format": "date", "maxLength": 10}
    return changed


def test_a_compatible_version_gets_the_next_number_and_its_id(session: Session) -> None:
    evaluation = evaluate(session, dataset_id="aed", document=with_optional_field(aed_v1()))
    assert evaluation.acceptable and not evaluation.existing
    assert (evaluation.version, evaluation.uri, evaluation.document["$id"]) == (
        2,
        schema_uri("aed", 2),
        schema_uri("aed", 2),
    )
    add_version(session, evaluation=evaluation, actor="admin:test")
    assert [row.version for row in versions_of(session, "aed")] == [1, 2]
    [entry] = list_audit(session, action="schema_registered")
    assert entry.subject_id == schema_uri("aed", 2) and entry.actor == "admin:test"


def test_the_same_schema_twice_is_the_existing_version(session: Session) -> None:
    again = evaluate(session, dataset_id="aed", document=aed_v1())
    assert (again.existing, again.version) == (True, 1)
    without_id = aed_v1()
    del without_id["$id"]
    assert evaluate(session, dataset_id="aed", document=without_id).existing


def test_a_wrong_id_is_a_lint_finding(session: Session) -> None:
    document = with_optional_field(aed_v1())
    document["$id"] = schema_uri("aed", 7)
    evaluation = evaluate(session, dataset_id="aed", document=document)
    assert not evaluation.acceptable
    assert [(i.pointer, i.rule) for i in evaluation.lint] == [("/$id", "id_present")]
    with pytest.raises(ValueError):
        add_version(session, evaluation=evaluation, actor="admin:test")


def test_a_declared_level_is_the_default_until_an_operator_sets_one(session: Session) -> None:
    """resident-moves declares FORWARD in its dataset.json (its v2 tightens v1)."""
    assert compatibility_mode(session, "resident-moves") is Mode.FORWARD
    set_compatibility_mode(session, dataset_id="resident-moves", mode=Mode.FULL, actor="admin:test")
    assert compatibility_mode(session, "resident-moves") is Mode.FULL
    assert list_audit(session, action="schema_compatibility_set")[0].detail == {
        "from": "FORWARD",
        "to": "FULL",
    }


def test_compatibility_level_is_per_dataset_and_audited(session: Session) -> None:
    assert compatibility_mode(session, "aed") is Mode.BACKWARD
    set_compatibility_mode(
        session, dataset_id="aed", mode=Mode.FULL, actor="admin:test", now=datetime.now(UTC)
    )
    assert compatibility_mode(session, "aed") is Mode.FULL
    assert compatibility_mode(session, "tourism") is Mode.BACKWARD
    refused = evaluate(session, dataset_id="aed", document=with_optional_field(aed_v1()))
    assert [(r.rule, r.direction) for r in refused.incompatibilities] == [
        ("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "forward")
    ]
    assert list_audit(session, action="schema_compatibility_set")[0].detail == {
        "from": "BACKWARD",
        "to": "FULL",
    }
    with pytest.raises(UnknownDataset):
        set_compatibility_mode(session, dataset_id="nope", mode=Mode.NONE, actor="admin:test")
    with pytest.raises(UnknownDataset):
        evaluate(session, dataset_id="nope", document={})


def test_lint_names_place_and_rule() -> None:
    meta = SCHEMAS.datasets["aed"]
    document = aed_v1()
    document["$schema"] = "http://json-schema.org/draft-07/schema#"
    del document["title"]
    document["properties"]["設置位置"].pop("maxLength")
    document["required"].remove("NO")
    document["properties"]["緯度"] = {"type": "string", "maxLength": 20}
    findings = [(i.pointer, i.rule) for i in lint_schema(document, uri=schema_uri("aed", 1), meta=meta)]
    assert findings == [
        ("/$schema", "draft_2020_12"),
        ("/title", "title_present"),
        ("/properties/設置位置", "string_bounded"),
        ("/properties/NO", "record_key_required"),
        ("/properties/緯度", "location_declared"),
    ]
    for issue in lint_schema(document, uri=schema_uri("aed", 1), meta=meta):
        assert issue.en and issue.ja


def test_lint_refuses_refs_that_need_the_network() -> None:
    document = aed_v1()
    document["properties"]["住所"] = {"$ref": "https://example.org/address.json"}
    findings = lint_schema(document, uri=schema_uri("aed", 1), meta=SCHEMAS.datasets["aed"])
    assert [(i.rule, i.en) for i in findings] == [
        ("offline_refs", "$ref https://example.org/address.json cannot be resolved offline.")
    ]


def test_every_repository_schema_passes_lint() -> None:
    for version in SCHEMAS.versions.values():
        meta = SCHEMAS.datasets[version.dataset_id]
        assert lint_schema(version.document, uri=version.uri, meta=meta) == [], version.uri


def test_ingest_applies_new_versions_and_skips_unusable_ones() -> None:
    registry = ValidatorRegistry(SCHEMAS)
    before = registry.version_count
    meta = SCHEMAS.datasets["aed"].model_dump(mode="json")
    v2 = with_optional_field(aed_v1())
    v2["$id"] = schema_uri("aed", 2)
    broken = {**v2, "$id": schema_uri("aed", 3), "properties": {"NO": {"type": "strin"}}}
    changes = [
        SchemaChange(meta, 1, schema_uri("aed", 1), aed_v1()),  # known already
        SchemaChange(meta, 3, schema_uri("aed", 3), broken),  # does not compile: skipped, logged
        SchemaChange(meta, 2, schema_uri("aed", 2), v2),
        SchemaChange(meta, 2, schema_uri("aed", 2), v2),  # delivered twice: once is enough
    ]
    assert apply_schema_changes(registry, changes) == 1
    assert registry.version_count == before + 1
    assert registry.knows(schema_uri("aed", 2)) and not registry.knows(schema_uri("aed", 3))
    assert SchemaChange.decode(changes[2].encode()) == changes[2]


def test_deadletter_ids_and_filters() -> None:
    assert parse_id("2-41") == (2, 41)
    for bad in ("2:41", "-1-3", "a-b", ""):
        with pytest.raises(BadDeadLetterId):
            parse_id(bad)
    letter = DeadLetter(
        topic="t",
        partition=1,
        offset=5,
        timestamp_ms=1_800_000_000_000,
        key=None,
        value=b"{}",
        headers=[
            ("cityos_reason", b"schema_violation"),
            ("cityos_dataset", b"aed"),
            ("cityos_department", b"fire"),
        ],
    )
    moment = datetime.fromtimestamp(1_800_000_000, UTC)
    assert DeadLetterFilter(dataset="aed", reason="schema_violation", department="fire").matches(letter)
    assert DeadLetterFilter(since=moment, until=datetime.max.replace(tzinfo=UTC)).matches(letter)
    assert not DeadLetterFilter(until=moment).matches(letter)
    assert not DeadLetterFilter(ids=frozenset({(1, 6)})).matches(letter)
    assert not DeadLetterFilter(department="digital").matches(letter)
    assert re.fullmatch(r"\d+-\d+", letter.id)


def test_refs_to_registered_schemas_and_bundled_definitions_resolve_offline(session: Session) -> None:
    from datetime import timedelta

    from tests.support.fixtures_path import FIXTURES

    common_uri = "https://smart-data-models.github.io/data-models/common-schema.json"
    bundle = {
        common_uri: json.loads((FIXTURES / "smart-data-models/data-models/common-schema.json").read_text())
    }
    document = with_optional_field(aed_v1())
    # Another dataset's registered version, and a bundled shared definition, both by absolute URI.
    # A JSON pointer in a URI: non-ASCII characters percent-encoded (RFC 3986, as jsonschema-rs insists).
    pointer = "#/properties/" + quote("名称_英語")
    raw = {
        **document,
        "properties": {
            **document["properties"],
            "名称_英語": {"$ref": schema_uri("public-toilet", 1) + "#/properties/名称_英語"},
        },
    }
    document["properties"]["名称_英語"] = {"$ref": schema_uri("public-toilet", 1) + pointer}
    document["properties"]["id"] = {"$ref": common_uri + "#/definitions/EntityIdentifierType"}
    assert lint_schema(document, uri=schema_uri("aed", 2), meta=SCHEMAS.datasets["aed"]) != []  # unknown refs
    unencoded = evaluate(session, dataset_id="aed", document=raw, bundle=bundle)
    assert [(i.rule, "jsonschema-rs" in i.en) for i in unencoded.lint] == [("valid_schema", True)]
    evaluation = evaluate(session, dataset_id="aed", document=document, bundle=bundle)
    assert (evaluation.lint, evaluation.incompatibilities) == ([], [])

    registry = ValidatorRegistry(SCHEMAS, bundle=bundle)
    registry.add(SCHEMAS.datasets["aed"], 2, evaluation.uri, evaluation.document)
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/departments/fire/x",
        "type": "jp.cityos.record.upserted",
        "dataschema": evaluation.uri,
        "data": {
            "NO": "1",
            "名称": "a",
            "名称_カナ": "ア",
            "名称_英語": "City Hall",
            "住所": "x",
            "設置位置": "y",
            "id": "urn:x:1",
        },
    }
    assert registry.accept(event, datetime.now(UTC), timedelta(minutes=5)) is not None
    event["data"]["id"] = ""  # EntityIdentifierType needs at least one character
    assert registry.accept(event, datetime.now(UTC), timedelta(minutes=5)) is None

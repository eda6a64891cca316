"""FIWARE Smart Data Models, offline: schemas that ``$ref`` the shared common-schema.json (and the
Environment definitions) by URL load and validate their key-values examples with no network, with
both validators; AirQualityObserved's own example is refused for its two real defects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cityos.kernel.references import (
    SMART_DATA_MODELS_COMMON,
    SMART_DATA_MODELS_ENVIRONMENT,
    missing_refs,
    rust_validator,
)
from tests.support.fixtures_path import FIXTURES

MODELS = FIXTURES / "smart-data-models"
VALID = [
    "Building",
    "OffStreetParking",
    "ParkingSpot",
    "PointOfInterest",
    "TrafficFlowObserved",
    "WasteContainer",
]


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def shared() -> dict[str, Any]:
    """The two shared documents, registered under the URIs the schemas use."""
    return {
        SMART_DATA_MODELS_COMMON: load(MODELS / "data-models" / "common-schema.json"),
        SMART_DATA_MODELS_ENVIRONMENT: load(MODELS / "dataModel.Environment" / "Environment-schema.json"),
    }


def model(name: str) -> Path:
    [folder] = MODELS.glob(f"dataModel.*/{name}")
    return folder


def rust_errors(schema: Any, instance: Any) -> list[tuple[str, str]]:
    validator = rust_validator(schema, shared())
    return sorted(
        ("/" + "/".join(map(str, e.instance_path)), str(e.kind.name)) for e in validator.iter_errors(instance)
    )


@pytest.mark.parametrize("name", VALID)
def test_examples_validate_offline(name: str) -> None:
    schema = load(model(name) / "schema.json")
    assert missing_refs(schema, shared()) == []
    assert any(ref.startswith(SMART_DATA_MODELS_COMMON) for ref in _all_refs(schema)), (
        "must exercise the shared $ref"
    )
    example = load(model(name) / "examples" / "example.json")
    assert rust_errors(schema, example) == []


def test_air_quality_observed_example_is_refused_with_its_two_defects() -> None:
    schema = load(model("AirQualityObserved") / "schema.json")
    example = load(model("AirQualityObserved") / "examples" / "example.json")
    expected = [("/dateObserved", "format"), ("/tsp", "type")]
    assert rust_errors(schema, example) == expected


def test_without_the_shared_documents_nothing_is_fetched() -> None:
    schema = load(model("Building") / "schema.json")
    assert missing_refs(schema, {}) == [SMART_DATA_MODELS_COMMON]
    with pytest.raises(ValueError):
        rust_validator(schema, {})


def _all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _all_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _all_refs(v)]
    return []

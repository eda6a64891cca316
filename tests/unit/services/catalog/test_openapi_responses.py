"""The catalog admin API documents what it answers: in ``/openapi.json`` of the real app, every
2xx JSON response declares the shape of its body, and the audit export and metrics declare their
non-JSON media types, so generated clients and the /docs page show operators real fields."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from cityos.kernel.db.engine import session_factory
from cityos.kernel.settings import Settings
from services.catalog.api import create_catalog_app

Schema = dict[str, Any]


@pytest.fixture
def openapi(engine: Engine) -> dict[str, Any]:
    app = create_catalog_app(
        session_factory(engine, sqlite_begin="IMMEDIATE"), CollectorRegistry(), Settings(admin_token="secret")
    )
    # Not entered as a context manager: the app's startup republishes schemas to Kafka, which
    # reading the document does not need.
    # The API description needs a credential like every other route (here the break-glass token).
    answer = TestClient(app).get("/openapi.json", headers={"Authorization": "Bearer secret"})
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def _resolve(schema: Schema, components: dict[str, Schema]) -> tuple[Schema, bool]:
    """The schema behind any ``$ref`` chain, and whether it is a named component."""
    named = False
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
        named = True
    return schema, named


def _documented(schema: Schema, components: dict[str, Schema]) -> bool:
    """Whether a body schema says what the body holds: objects name their properties (a free-form
    object only as a named component that explains itself), arrays say what their items are."""
    schema, named = _resolve(schema, components)
    if not schema:
        return False
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        return all(_documented(s, components) for s in alternatives if s.get("type") != "null")
    kind = schema.get("type")
    if kind == "array":
        return _documented(schema.get("items", {}), components)
    if kind == "object":
        return bool(schema.get("properties")) or (named and bool(schema.get("description")))
    return kind is not None


def _operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_every_json_answer_has_a_schema(openapi: dict[str, Any]) -> None:
    components = openapi.get("components", {}).get("schemas", {})
    checked, undocumented = 0, []
    for name, operation in _operations(openapi):
        for status, response in operation["responses"].items():
            json_body = response.get("content", {}).get("application/json")
            if not status.startswith("2") or json_body is None:
                continue
            checked += 1
            if not _documented(json_body.get("schema", {}), components):
                undocumented.append(f"{name} {status}")
    assert checked >= 35  # the access, registry, dead-letter, release, keys and base endpoints
    assert undocumented == []


def test_every_operation_declares_a_success_body(openapi: dict[str, Any]) -> None:
    silent = [
        name
        for name, operation in _operations(openapi)
        if not any(
            status.startswith("2") and response.get("content")
            for status, response in operation["responses"].items()
        )
    ]
    assert silent == []


def test_non_json_answers_declare_their_media_types(openapi: dict[str, Any]) -> None:
    export = openapi["paths"]["/api/v1/audit/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"application/x-ndjson", "text/csv"}
    metrics = openapi["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert [media.split(";")[0] for media in metrics] == ["text/plain"]

"""Every JSON answer of the open-data API is described in ``/openapi.json``.

Client generators and the docs page read the 2xx schemas: an empty one leaves developers guessing
the shape of a body. The spec is fetched over HTTP from the real app, as a client would.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.publish_catalog import Catalog

JSON = "application/json"


@pytest.fixture()
def spec(catalog: Catalog) -> dict[str, Any]:
    answer = catalog.client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    seen: set[str] = set()
    while "$ref" in schema:
        reference: str = schema["$ref"]
        assert reference not in seen, f"circular $ref {reference}"
        seen.add(reference)
        schema = components[reference.removeprefix("#/components/schemas/")]
    return schema


def _json_answers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(operation and status, its application/json schema) for every 2xx answer that is JSON."""
    answers = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.startswith("2") and JSON in content:
                    answers.append((f"{method.upper()} {path} {status}", content[JSON].get("schema", {})))
    return answers


def test_every_json_answer_has_a_schema(spec: dict[str, Any]) -> None:
    components = spec.get("components", {}).get("schemas", {})
    answers = _json_answers(spec)
    assert len(answers) > 20  # the data routes, the CKAN actions and the operational ones
    undescribed = [name for name, schema in answers if not _resolve(schema, components)]
    assert undescribed == []


def test_records_and_ckan_bodies_name_their_fields(spec: dict[str, Any]) -> None:
    components = spec["components"]["schemas"]

    def properties(path: str, method: str = "get") -> set[str]:
        schema = spec["paths"][path][method]["responses"]["200"]["content"][JSON]["schema"]
        return set(_resolve(schema, components).get("properties", {}))

    assert {"dataset", "total", "records", "next", "next_cursor"} <= properties(
        "/api/v1/datasets/{dataset_id}/records"
    )
    assert {"help", "success", "result"} <= properties("/api/3/action/package_show", "post")


def test_non_json_answers_name_their_media_types(spec: dict[str, Any]) -> None:
    def media(path: str) -> set[str]:
        return set(spec["paths"][path]["get"]["responses"]["200"]["content"])

    records = {JSON, "text/csv", "application/geo+json", "application/x-ndjson"}
    assert media("/api/v1/datasets/{dataset_id}/records") == records
    assert media("/api/v1/datasets/{dataset_id}/export") == records | {"application/vnd.apache.parquet"}
    assert media("/api/v1/usage") == {JSON, "text/csv"}
    rdf = {"text/turtle", "application/ld+json", "application/rdf+xml"}
    for path in ("/catalog.ttl", "/catalog.jsonld", "/catalog", "/catalog/datasets/{name}"):
        assert media(path) == rdf, path

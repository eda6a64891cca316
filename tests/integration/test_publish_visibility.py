"""Internal and personal datasets are absent from every endpoint of the open-data API.

The walk is driven by the app's own route table: every GET/POST route must be listed here, so a new
endpoint added without a visibility check fails this test. Hidden datasets must be a 404 where
named and missing from every listing, for anonymous callers and for a developer's key alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.engine import session_factory
from cityos.kernel.settings import Settings
from services.catalog.store import apply_batch
from services.publish.app import create_app
from tests.support.publish import (
    HIDDEN_IDS,
    T0,
    events,
    hidden_rows,
    load,
    schemas_with_sites,
    serve,
    yaizu_aed_rows,
)

HIDDEN_KEYS = {"copier-usage": "C1", "resident-moves": "M1"}
OPERATIONAL = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Pages about the visitor's session and the OGC API's own description: no dataset data in them.
SESSION_AND_DESCRIPTION = {
    "/en",
    "/login",
    "/en/login",
    "/logout",
    "/en/logout",
    "/ogc/api",
    "/ogc/openapi",
    "/ogc/conformance",
}
MISSING_ID = "no-such-dataset"
RELEASES = "services.publish.release_api"
CKAN_ACTIONS_BY_ID = ("package_show", "organization_show", "resource_show", "datastore_search")

# Named routes: the path to request for a hidden dataset (format with id and key).
NAMED = {
    "/api/v1/datasets/{dataset_id}": ["/api/v1/datasets/{id}"],
    "/api/v1/datasets/{dataset_id}/records": [
        "/api/v1/datasets/{id}/records", "/api/v1/datasets/{id}/records?format=csv",
        "/api/v1/datasets/{id}/records?format=geojson", "/api/v1/datasets/{id}/records?format=ndjson",
        "/api/v1/datasets/{id}/records?q=x",
    ],
    "/api/v1/datasets/{dataset_id}/records/{record_key}": ["/api/v1/datasets/{id}/records/{key}"],
    "/api/v1/datasets/{dataset_id}/export": [
        "/api/v1/datasets/{id}/export?format=csv", "/api/v1/datasets/{id}/export?format=json",
        "/api/v1/datasets/{id}/export?format=parquet",
    ],
    "/catalog/datasets/{name}": ["/catalog/datasets/{id}.ttl", "/catalog/datasets/{id}.jsonld", "/catalog/datasets/{id}"],
    "/api/v1/usage": ["/api/v1/usage?dataset={id}"],
    "/api/v1/datasets/{dataset_id}/aggregate": [
        "/api/v1/datasets/{id}/aggregate?by=ward", "/api/v1/datasets/{id}/aggregate?by=ward&format=csv",
    ],
}  # fmt: skip
# Named routes whose refusal is a page or an OGC document rather than the API's JSON: a hidden dataset's
# answer must be exactly a missing dataset's answer (the id the caller typed aside).
NAMED_LIKE_MISSING = {
    "/datasets/{dataset_id}": ["/datasets/{id}", "/datasets/{id}?q=x"],
    "/en/datasets/{dataset_id}": ["/en/datasets/{id}"],
    "/ogc/collections/{collectionId}": ["/ogc/collections/{id}", "/ogc/collections/{id}?f=html"],
    "/ogc/collections/{collectionId}/items": [
        "/ogc/collections/{id}/items", "/ogc/collections/{id}/items?f=html&limit=5",
    ],
    "/ogc/collections/{collectionId}/items/{featureId}": [
        "/ogc/collections/{id}/items/{key}", "/ogc/collections/{id}/items/{key}?f=html",
    ],
}  # fmt: skip
# Listing routes: fetched whole; no hidden id may appear anywhere in the body.
LISTINGS = {
    "/api/v1/datasets": ["/api/v1/datasets"],
    "/catalog.ttl": ["/catalog.ttl"],
    "/catalog.jsonld": ["/catalog.jsonld"],
    "/catalog": ["/catalog"],
    # What the catalog's URIs dereference to: the API's index, the metrics, each contact point.
    "/api/v1": ["/api/v1"],
    "/catalog/metrics": ["/catalog/metrics"],
    "/catalog/contact/{department_id}": ["/catalog/contact/digital", "/catalog/contact/citizens"],
    "/api/v1/usage": ["/api/v1/usage", "/api/v1/usage?format=csv"],
    "/api/3/action/{action_name}": [
        "/api/3/action/package_list", "/api/3/action/package_search?rows=1000", "/api/3/action/status_show",
        "/api/3/action/current_package_list_with_resources", "/api/3/action/organization_list?all_fields=true",
        "/api/3/action/organization_show?id=general-affairs&include_datasets=true",
        "/api/3/action/organization_show?id=citizens&include_datasets=true",
        "/api/3/action/help_show?name=datastore_search",
    ],
    "/api/action/{action_name}": ["/api/action/package_list"],
    # The catalog site and the OGC API's listings.
    "/": ["/"], "/en/": ["/en/"],
    "/search": ["/search", "/search?q=copier", "/search?q=住民"], "/en/search": ["/en/search?q=moves"],
    "/map": ["/map"], "/en/map": ["/en/map"],
    "/kpi": ["/kpi"], "/en/kpi": ["/en/kpi"], "/api/v1/kpis": ["/api/v1/kpis"],
    "/api/v1/wards": ["/api/v1/wards"],
    "/ogc": ["/ogc", "/ogc?f=html"], "/ogc/": ["/ogc/"],
    "/ogc/collections": ["/ogc/collections", "/ogc/collections?f=html"],
}  # fmt: skip
# Routes for identified departments and applicants only: anonymous callers get 401, a developer's
# key 403, and neither answer names a hidden dataset (their matrix: test_workspace_matrix.py).
IDENTIFIED_ONLY = {"/api/v1/workspace.duckdb": ["/api/v1/workspace.duckdb"]}
# A department's own KPI page: to anyone but that department, exactly the page of a department that
# does not exist.
DEPARTMENT_ONLY = {
    "/kpi/departments/{department_id}": ["/kpi/departments/digital"],
    "/en/kpi/departments/{department_id}": ["/en/kpi/departments/citizens"],
}
MISSING_DEPARTMENT = "no-such-department"


def _routes() -> set[str]:
    app = create_app(Settings(database_url="sqlite://"), registry=CollectorRegistry())
    # Routes of the open-data API; anonymized releases have their own access tests.
    ours = {r.path for r in app.routes if isinstance(r, APIRoute) and r.endpoint.__module__ != RELEASES}
    return ours - OPERATIONAL - SESSION_AND_DESCRIPTION


def test_every_route_is_walked() -> None:
    ckan_prefixes = ("/api/3/action/", "/api/action/")
    routes = _routes()
    ckan_actions = {path.rsplit("/", 1)[1] for path in routes if path.startswith(ckan_prefixes)}
    assert {path for path in routes if not path.startswith(ckan_prefixes)} == set(NAMED) | set(
        NAMED_LIKE_MISSING
    ) | {path for path in LISTINGS if not path.startswith(ckan_prefixes)} | set(IDENTIFIED_ONLY) | set(
        DEPARTMENT_ONLY
    )
    listed = {path.split("/")[-1].split("?")[0] for paths in LISTINGS.values() for path in paths}
    assert ckan_actions - {"{action_name}"} <= set(CKAN_ACTIONS_BY_ID) | listed


def test_hidden_datasets_are_absent_everywhere(database_url: str, tmp_path: Path) -> None:
    schemas_dir = schemas_with_sites(tmp_path)
    engine = load(database_url, schemas_dir, events("aed", yaizu_aed_rows(schemas_dir)) + hidden_rows())
    with session_factory(engine)() as session, session.begin():
        key = issue_key(
            session, owner_kind=OwnerKind.developer, owner_id="dev", purpose="walk", actor="test"
        ).secret
    checked = 0
    try:
        with serve(engine, database_url, publish_anonymous_rate_per_minute=10_000,
                   publish_key_rate_per_minute=10_000) as server:  # fmt: skip
            for headers in ({}, {"Authorization": f"Bearer {key}"}):
                with httpx.Client(base_url=server.url, headers=headers) as client:
                    # Traffic on a public dataset first, so the usage report has rows to leak through.
                    assert client.get("/api/v1/datasets/aed/records").status_code == 200
                    for hidden, record_key in HIDDEN_KEYS.items():
                        for templates in NAMED.values():
                            for template in templates:
                                answer = client.get(template.format(id=hidden, key=record_key))
                                assert answer.status_code == 404, (template, hidden, answer.text)
                                assert answer.json() == {
                                    "error": "not_found",
                                    "detail": "no public dataset with this id",
                                }
                                checked += 1
                        for templates in NAMED_LIKE_MISSING.values():
                            for template in templates:
                                missing = client.get(template.format(id=MISSING_ID, key=record_key))
                                answer = client.get(template.format(id=hidden, key=record_key))
                                assert answer.status_code == missing.status_code == 404, (template, hidden)
                                assert answer.headers["content-type"] == missing.headers["content-type"]
                                assert answer.text.replace(hidden, "?") == missing.text.replace(MISSING_ID, "?"), (
                                    template, hidden)  # fmt: skip
                                checked += 1
                        for action in CKAN_ACTIONS_BY_ID:
                            for params in (
                                {"id": hidden},
                                {"resource_id": f"{hidden}.csv"},
                                {"id": f"{hidden}.csv"},
                            ):
                                for method in ("GET", "POST"):
                                    answer = _ckan(client, method, action, params)
                                    if answer.status_code == 200:  # organization_show of a department by id
                                        assert hidden not in answer.text
                                    else:
                                        assert answer.status_code in (404, 409), answer.text
                                        assert answer.json()["success"] is False
                                    checked += 1
                    for templates in LISTINGS.values():
                        for path in templates:
                            answer = client.get(path)
                            assert answer.status_code == 200, (path, answer.text)
                            for hidden in HIDDEN_IDS:
                                assert hidden not in answer.text, (path, hidden)
                            checked += 1
                    for templates in IDENTIFIED_ONLY.values():
                        for path in templates:
                            answer = client.get(path)
                            assert answer.status_code == (403 if headers else 401), (path, answer.text)
                            assert not any(hidden in answer.text for hidden in HIDDEN_IDS), path
                            checked += 1
                    for templates in DEPARTMENT_ONLY.values():
                        for path in templates:
                            prefix, department = path.rsplit("/", 1)
                            answer = client.get(path)
                            missing = client.get(f"{prefix}/{MISSING_DEPARTMENT}")
                            assert answer.status_code == missing.status_code == 404, (path, answer.text)
                            # The page links to its twin in the other language: the id typed aside.
                            assert answer.text.replace(department, "?") == missing.text.replace(
                                MISSING_DEPARTMENT, "?"
                            ), path
                            checked += 1
    finally:
        engine.dispose()
    assert checked > 100


def _ckan(client: httpx.Client, method: str, action: str, params: dict[str, Any]) -> httpx.Response:
    if method == "GET":
        return client.get(f"/api/3/action/{action}", params=params)
    return client.post(f"/api/3/action/{action}", json=params)


def test_hidden_record_changes_do_not_reach_usage(database_url: str, tmp_path: Path) -> None:
    """Even after hidden datasets change, their ids stay out of the usage report and metrics."""
    schemas_dir = schemas_with_sites(tmp_path)
    engine = load(database_url, schemas_dir, events("aed", yaizu_aed_rows(schemas_dir)) + hidden_rows())
    with session_factory(engine, sqlite_begin="IMMEDIATE")() as session, session.begin():
        apply_batch(session, events=hidden_rows(), now=T0)
    try:
        with serve(engine, database_url) as server, httpx.Client(base_url=server.url) as client:
            for hidden in HIDDEN_IDS:
                client.get(f"/api/v1/datasets/{hidden}/records")
            client.get("/api/v1/datasets/aed/records")
            metrics = client.get("/metrics").text
            report = client.get("/api/v1/usage").text
    finally:
        engine.dispose()
    assert 'dataset="aed"' in metrics
    assert "aed" in report
    for hidden in HIDDEN_IDS:
        assert hidden not in metrics
        assert hidden not in report

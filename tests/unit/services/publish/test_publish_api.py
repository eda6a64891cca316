"""Publish API: real HTTP (TestClient) against a migrated SQLite file catalog, plus its pure helpers.

The catalog is filled the way production fills it: the repository's schemas are synced with
``sync_schema_set`` and records arrive as ``ValidatedEvent`` batches through ``apply_batch``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.domain.readmodel import filters
from cityos.domain.readmodel.query import RecordQuery, parse_query
from cityos.kernel.db.access_models import AccessGrant
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.db.models import Record
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish import render
from services.publish.app import create_app
from services.publish.page_cache import PageCache
from tests.support.publish_catalog import (
    BASE_URL,
    COPIER,
    NO_LOCATION_ID,
    RECORDS,
    RECORDS_ROUTE,
    T0,
    TOILETS,
    Catalog,
    aed_rows,
    schemas_with_budget_lines,
    validated_events,
)


def _aed_properties(catalog: Catalog) -> list[str]:
    document = json.loads((catalog.schemas_dir / "aed" / "v1.schema.json").read_text(encoding="utf-8"))
    return list(document["properties"])


def _local(url: str) -> str:
    """A public link as the test client can request it (path below the base URL, plus query)."""
    assert url.startswith(BASE_URL)
    parts = urlsplit(url[len(BASE_URL) :])
    return f"{parts.path}?{parts.query}"


# --- catalog listing and visibility -------------------------------------------------------------


def test_lists_only_public_datasets(catalog: Catalog) -> None:
    response = catalog.client.get("/api/v1/datasets")
    assert response.status_code == 200
    body = response.json()
    ids = [d["id"] for d in body["datasets"]]
    assert ids == [
        "aed", NO_LOCATION_ID, "dx-kpi", "evacuation-space", "public-facility", "public-toilet", "tourism",
    ]  # fmt: skip
    assert body["count"] == len(ids)
    assert all(d["classification"] == "public" for d in body["datasets"])
    aed = body["datasets"][0]
    assert aed["title"]["ja"] == "AED設置箇所一覧"
    assert aed["department"]["id"] == "fire"
    assert aed["department"]["name"]["ja"]
    assert aed["license"] == "CC-BY-4.0"
    assert aed["record_count"] == 12
    assert aed["last_updated"] == "2025-04-01T09:11:00Z"
    assert aed["links"]["records"] == f"{BASE_URL}/api/v1/datasets/aed/records"
    assert aed["links"]["geojson"].endswith("/records?format=geojson")
    budget = body["datasets"][1]
    assert "geojson" not in budget["links"]


@pytest.mark.parametrize(
    "dataset_id",
    ["copier-usage", "rpa-ai-hours", "e-approval", "telework", "resident-moves", "no-such-dataset"],
)
@pytest.mark.parametrize(
    "suffix",
    ["", "/records", "/records?format=csv", "/records?format=geojson", "/records?色=赤", "/records?limit=0"],
)
def test_hidden_and_missing_datasets_are_indistinguishable(
    catalog: Catalog, dataset_id: str, suffix: str
) -> None:
    response = catalog.client.get(f"/api/v1/datasets/{dataset_id}{suffix}")
    reference = catalog.client.get(f"/api/v1/datasets/no-such-dataset{suffix}")
    if suffix.endswith("limit=0"):
        # Parameter syntax is checked before any lookup, identically for every id.
        assert response.status_code == 400
    else:
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "detail": "no public dataset with this id"}
    assert response.content == reference.content
    assert response.headers.get("content-type") == reference.headers.get("content-type")


def test_dataset_detail_has_current_schema(catalog: Catalog) -> None:
    response = catalog.client.get("/api/v1/datasets/aed")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "aed"
    assert body["record_count"] == 12
    assert body["record_key"] == "NO"
    assert body["location"] == {"latitude": "緯度", "longitude": "経度"}
    assert body["schema"]["version"] == 1
    assert body["schema"]["uri"] == schema_uri("aed", 1)
    assert list(body["schema"]["document"]["properties"]) == _aed_properties(catalog)


# --- records: paging and filters -----------------------------------------------------------------


def test_records_pagination_follows_next_links(catalog: Catalog) -> None:
    url: str | None = RECORDS.format("aed") + "?limit=5"
    seen: list[str] = []
    pages = 0
    while url is not None:
        response = catalog.client.get(url)
        assert response.status_code == 200
        body = response.json()
        assert body["dataset"] == "aed"
        assert body["total"] == 12
        assert body["limit"] == 5
        assert body["offset"] == pages * 5
        assert response.headers["x-total-count"] == "12"
        seen += [r["NO"] for r in body["records"]]
        pages += 1
        url = _local(body["next"]) if body["next"] is not None else None
    assert pages == 3
    assert seen == [f"{n:03d}" for n in range(1, 13)]


def test_records_default_limit_and_link_header(catalog: Catalog) -> None:
    body = catalog.client.get(RECORDS.format("aed")).json()
    assert body["limit"] == 100
    assert body["offset"] == 0
    assert len(body["records"]) == 12
    assert body["next"] is None
    first = catalog.client.get(RECORDS.format("aed"), params={"limit": 4, "offset": 8})
    assert [r["NO"] for r in first.json()["records"]] == ["009", "010", "011", "012"]
    assert first.json()["next"] is None
    assert "link" not in first.headers
    paged = catalog.client.get(RECORDS.format("aed"), params={"limit": 4})
    assert paged.headers["link"] == f'<{paged.json()["next"]}>; rel="next"'


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("limit=0", "limit"), ("limit=10001", "limit"), ("limit=abc", "limit"), ("offset=-1", "offset"),
     ("format=xml", "format"), ("bom=maybe", "bom")],
)  # fmt: skip
def test_paging_parameters_are_validated(catalog: Catalog, query: str, parameter: str) -> None:
    response = catalog.client.get(RECORDS.format("aed") + "?" + query)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == parameter


def test_max_limit_is_accepted(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format("aed"), params={"limit": 10000})
    assert response.status_code == 200
    assert response.json()["limit"] == 10000


def test_japanese_string_filter(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format("aed"), params={"名称": "小倉北区役所5"})
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 1
    assert body["records"][0]["NO"] == "005"
    # The percent-encoded form a browser sends is the same request.
    encoded = catalog.client.get(RECORDS.format("aed") + "?%E8%A8%AD%E7%BD%AE%E4%BD%8D%E7%BD%AE=2%E9%9A%8E")
    assert encoded.json()["total"] == 6  # 設置位置=2階: the even-numbered records


def test_filters_combine_and_keep_in_next_link(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format("aed"), params={"設置位置": "2階", "limit": 2})
    body = response.json()
    assert body["total"] == 6
    assert [r["NO"] for r in body["records"]] == ["002", "004"]
    query = dict(parse_qsl(urlsplit(body["next"]).query))
    assert query == {"設置位置": "2階", "limit": "2", "offset": "2"}


def test_integer_filter_converts_to_json_integer(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format("public-toilet"), params={"男性トイレ総数": "3"})
    assert response.status_code == 200
    body = response.json()
    assert [r["ID"] for r in body["records"]] == ["T01", "T03"]
    both = catalog.client.get(
        RECORDS.format("public-toilet"), params={"男性トイレ総数": "3", "設置位置": "屋内"}
    )
    assert [r["ID"] for r in both.json()["records"]] == ["T03"]


def test_number_and_boolean_filters(catalog: Catalog) -> None:
    by_number = catalog.client.get(RECORDS.format("public-toilet"), params={"緯度": "33.945"})
    assert [r["ID"] for r in by_number.json()["records"]] == ["T02"]
    by_bool = catalog.client.get(RECORDS.format(NO_LOCATION_ID), params={"継続": "true"})
    assert [r["事業ID"] for r in by_bool.json()["records"]] == ["B1"]


def test_unknown_parameter_is_400_naming_it(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format("aed"), params={"色": "赤"})
    assert response.status_code == 400
    body = response.json()
    assert body == {
        "error": "invalid_parameter",
        "parameter": "色",
        "detail": "not a declared property of this dataset's schema",
    }


@pytest.mark.parametrize(
    ("dataset_id", "parameter", "value", "expected"),
    [
        ("public-toilet", "男性トイレ総数", "三", "expected an integer, got '三'"),
        ("public-toilet", "男性トイレ総数", "3.5", "expected an integer, got '3.5'"),
        ("public-toilet", "緯度", "北緯33度", "expected a number, got '北緯33度'"),
        ("public-toilet", "男性トイレ総数", "99999999999999999999", "out of the supported integer range"),
        (NO_LOCATION_ID, "継続", "はい", "expected true or false, got 'はい'"),
        (NO_LOCATION_ID, "内訳", "1", "cannot be filtered by equality"),
    ],
)
def test_unconvertible_value_is_400_naming_the_parameter(
    catalog: Catalog, dataset_id: str, parameter: str, value: str, expected: str
) -> None:
    response = catalog.client.get(RECORDS.format(dataset_id), params={parameter: value})
    assert response.status_code == 400
    body = response.json()
    assert body["parameter"] == parameter
    assert expected in body["detail"]


def test_repeated_property_is_400(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format("aed") + "?名称=a&名称=b")
    assert response.status_code == 400
    assert response.json()["parameter"] == "名称"


# --- records: CSV and GeoJSON ---------------------------------------------------------------------


def _expected_cells(row: dict[str, Any], columns: list[str]) -> list[str]:
    cells = []
    for column in columns:
        value = row.get(column)
        cells.append("" if value is None else str(value) if isinstance(value, str) else repr(value))
    return cells


@pytest.mark.parametrize("bom", [False, True])
def test_csv_round_trips_in_schema_column_order(catalog: Catalog, bom: bool) -> None:
    params: dict[str, str] = {"format": "csv"}
    if bom:
        params["bom"] = "true"
    response = catalog.client.get(RECORDS.format("aed"), params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "charset=utf-8" in response.headers["content-type"]
    assert response.headers["content-disposition"].startswith('attachment; filename="aed.csv"')
    assert response.content.startswith(b"\xef\xbb\xbf") is bom
    text = response.content.decode("utf-8-sig" if bom else "utf-8")
    assert text.startswith("都道府県コード又は市区町村コード,")  # no stray BOM in the header cell
    table = list(csv.reader(io.StringIO(text, newline="")))
    columns = _aed_properties(catalog)
    assert table[0] == columns
    rows = aed_rows()
    assert table[1:] == [_expected_cells(row, columns) for row in rows]
    latitude = columns.index("緯度")
    assert float(table[1][latitude]) == rows[0]["緯度"]
    assert table[3][columns.index("備考")] == '土日は閉館、"要予約"\n夜間不可'
    assert response.content.count(b"\r\n") >= len(rows) + 1  # RFC 4180 line ends


def test_csv_keeps_filters_and_pagination(catalog: Catalog) -> None:
    response = catalog.client.get(
        RECORDS.format("public-toilet"), params={"format": "csv", "男性トイレ総数": "3", "limit": 1}
    )
    table = list(csv.reader(io.StringIO(response.text, newline="")))
    assert len(table) == 2
    assert table[1][table[0].index("ID")] == "T01"
    assert table[1][table[0].index("男性トイレ総数")] == "3"
    assert response.headers["x-total-count"] == "2"
    assert "offset=1" in response.headers["link"]


def test_accept_header_negotiates_when_format_absent(catalog: Catalog) -> None:
    as_csv = catalog.client.get(RECORDS.format("aed"), headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    as_geo = catalog.client.get(RECORDS.format("aed"), headers={"Accept": "application/geo+json"})
    assert as_geo.headers["content-type"] == "application/geo+json"
    assert as_geo.json()["type"] == "FeatureCollection"
    browser = catalog.client.get(RECORDS.format("aed"), headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.headers["content-type"] == "application/json"
    explicit = catalog.client.get(
        RECORDS.format("aed"), params={"format": "json"}, headers={"Accept": "text/csv"}
    )
    assert explicit.headers["content-type"] == "application/json"
    assert "Accept" in as_csv.headers["vary"]


def test_geojson_points_are_lon_lat(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format("aed"), params={"format": "geojson"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    rows = aed_rows()
    assert len(features) == len(rows)
    for feature, row in zip(features, rows, strict=True):
        assert feature["type"] == "Feature"
        assert feature["id"] == row["NO"]
        assert feature["properties"] == row
        if "緯度" in row:
            assert feature["geometry"] == {"type": "Point", "coordinates": [row["経度"], row["緯度"]]}
            longitude, latitude = feature["geometry"]["coordinates"]
            assert 130 < longitude < 131 and 33 < latitude < 34  # Kitakyushu, not the Indian Ocean
        else:
            assert feature["geometry"] is None  # kept, so pages match the JSON and CSV pages


def test_geojson_needs_a_declared_location(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format(NO_LOCATION_ID), params={"format": "geojson"})
    assert response.status_code == 400
    assert response.json()["parameter"] == "format"
    by_accept = catalog.client.get(RECORDS.format(NO_LOCATION_ID), headers={"Accept": "application/geo+json"})
    assert by_accept.status_code == 400
    assert by_accept.json()["parameter"] == "accept"


# --- operations -----------------------------------------------------------------------------------


def test_health_and_readiness(catalog: Catalog) -> None:
    assert catalog.client.get("/healthz").json() == {"status": "ok"}
    ready = catalog.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    # A file in a directory that does not exist: SQLite cannot open it (and nothing creates it).
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'catalog.db'}")
    settings = Settings(database_url=str(engine.url))
    with TestClient(create_app(settings, engine=engine)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert client.get("/healthz").status_code == 200
    engine.dispose()


def test_cors_allows_any_origin(catalog: Catalog) -> None:
    response = catalog.client.get("/api/v1/datasets", headers={"Origin": "https://example.org"})
    assert response.headers["access-control-allow-origin"] == "*"
    preflight = catalog.client.options(
        RECORDS.format("aed"),
        headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert "GET" in preflight.headers["access-control-allow-methods"]
    paged = catalog.client.get(RECORDS.format("aed"), params={"limit": 1}, headers={"Origin": "https://a.b"})
    assert "Link" in paged.headers["access-control-expose-headers"]


def test_openapi_and_docs(catalog: Catalog) -> None:
    spec = catalog.client.get("/openapi.json").json()
    assert spec["info"]["title"] == "CityOS Open Data API"
    assert "/api/v1/datasets/{dataset_id}/records" in spec["paths"]
    docs = catalog.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_metrics_count_by_route_template(catalog: Catalog) -> None:
    client = catalog.client
    client.get(RECORDS.format("aed"), params={"format": "csv", "limit": 5})
    client.get(RECORDS.format("aed"), params={"format": "geojson"})
    client.get(RECORDS.format("public-toilet"), params={"男性トイレ総数": "3"})
    client.get(RECORDS.format("copier-usage"), params={"format": "csv"})
    client.get("/api/v1/datasets/resident-moves")
    client.get("/no/such/path/" + "x" * 50)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    def value(name: str, **labels: str) -> float | None:
        for sample_name, sample_labels, sample_value in samples:
            if sample_name == name and sample_labels == labels:
                return sample_value
        return None

    requests = "cityos_publish_http_requests_total"
    assert value(requests, route=RECORDS_ROUTE, method="GET", status="200", format="csv") == 1
    assert value(requests, route=RECORDS_ROUTE, method="GET", status="200", format="geojson") == 1
    assert value(requests, route=RECORDS_ROUTE, method="GET", status="200", format="json") == 1
    assert value(requests, route=RECORDS_ROUTE, method="GET", status="404", format="csv") == 1
    detail_route = "/api/v1/datasets/{dataset_id}"
    assert value(requests, route=detail_route, method="GET", status="404", format="json") == 1
    assert value(requests, route="unmatched", method="GET", status="404", format="none") == 1

    served = "cityos_publish_records_served_total"
    assert value(served, dataset="aed", format="csv") == 5
    assert value(served, dataset="aed", format="geojson") == 12
    assert value(served, dataset="public-toilet", format="json") == 2
    # Hidden datasets never appear as a label value.
    assert "copier-usage" not in response.text
    assert "resident-moves" not in response.text

    duration_count = "cityos_publish_http_request_duration_seconds_count"
    assert value(duration_count, route=RECORDS_ROUTE) == 4
    routes = {labels["route"] for name, labels, _ in samples if name == requests}
    # Every route label is a template (or "unmatched"), never a concrete path.
    assert all(route == "unmatched" or route.startswith("/") for route in routes)
    assert not any("aed" in route or "x" * 10 in route for route in routes)


def test_each_app_has_its_own_registry(catalog: Catalog, tmp_path: Path) -> None:
    # A second app in the same process must neither fail on duplicate metrics nor share counts.
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with TestClient(create_app(Settings(), engine=engine)) as other:
        catalog.client.get("/healthz")
        assert "/healthz" not in other.get("/metrics").text
    engine.dispose()


def test_promtool_accepts_the_metrics(catalog: Catalog) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    catalog.client.get(RECORDS.format("aed"), params={"format": "csv"})
    catalog.client.get("/api/v1/datasets")
    text = catalog.client.get("/metrics").text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


# --- pure helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("format_param", "accept", "expected"),
    [
        (None, None, "json"),
        (None, "text/csv", "csv"),
        (None, "application/geo+json", "geojson"),
        (None, "application/vnd.geo+json", "geojson"),
        (None, "text/csv;q=0.5, application/geo+json;q=0.9", "geojson"),
        (None, "text/csv, application/json", "csv"),
        (None, "text/csv;q=0", "json"),
        (None, "image/png", "json"),
        ("geojson", "text/csv", "geojson"),
    ],
)
def test_negotiate_format(format_param: str | None, accept: str | None, expected: str) -> None:
    assert filters.negotiate_format(format_param, accept) == expected


@pytest.mark.parametrize(
    ("raw", "types", "expected"),
    [
        ("12", ("integer",), 12),
        ("-0", ("integer",), 0),
        ("１２", ("integer",), None),  # full-width digits are not JSON
        (" 1", ("integer",), None),
        ("1e3", ("number",), 1000.0),
        ("12", ("number",), 12),
        ("1_000", ("number",), None),
        ("nan", ("number",), None),
        ("1e999", ("number",), None),
        ("true", ("boolean",), True),
        ("True", ("boolean",), None),
        ("12", ("integer", "string"), 12),
        ("abc", ("integer", "string"), "abc"),
        ("abc", (), "abc"),
        ("x", ("null",), None),
    ],
)
def test_convert(raw: str, types: tuple[str, ...], expected: object) -> None:
    result = filters.convert(raw, types)
    if expected is None:
        assert isinstance(result, filters.Invalid)
    else:
        assert isinstance(result, filters.Converted)
        assert result.value == expected
        assert type(result.value) is type(expected)


def test_declared_types_follow_local_refs_and_enums() -> None:
    schema: dict[str, Any] = {
        "$defs": {"count": {"type": "integer"}},
        "properties": {
            "a": {"$ref": "#/$defs/count"},
            "b": {"enum": ["x", "y"]},
            "c": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "d": {"$ref": "https://cityos.example/schemas/common/1"},
        },
    }
    props = schema["properties"]
    assert filters.declared_types(schema, props["a"]) == ("integer",)
    assert filters.declared_types(schema, props["b"]) == ("string",)
    assert filters.declared_types(schema, props["c"]) == ("integer", "null")
    assert filters.declared_types(schema, props["d"]) == ()


def test_query_skips_reserved_parameters_and_refuses_without_schema() -> None:
    schema = {"properties": {"名称": {"type": "string"}, "件数": {"type": "integer"}}}
    params = [("limit", "5"), ("名称", "図書館"), ("件数", "2"), ("format", "csv")]
    parsed = parse_query(params, schema)
    assert isinstance(parsed, RecordQuery)
    assert [(c.field, c.op, c.values) for c in parsed.conditions] == [
        ("名称", "eq", ("図書館",)),
        ("件数", "eq", (2,)),
    ]
    assert parse_query([("名称", "x")], None) == filters.ParamProblem(
        "名称", "not a declared property of this dataset's schema"
    )


def test_render_csv_cells() -> None:
    rows = [{"a": True, "b": None, "c": 1.5, "d": {"k": "値"}, "e": 7}]
    text = render.render_csv(["a", "b", "c", "d", "e"], rows, bom=False).decode()
    assert text == 'a,b,c,d,e\r\ntrue,,1.5,"{""k"":""値""}",7\r\n'


def test_csv_columns_keep_schema_order_then_extras() -> None:
    schema: dict[str, Any] = {"properties": {"z": {}, "a": {}}}
    assert render.csv_columns(schema, [{"a": 1, "old": 2}]) == ["z", "a", "old"]
    assert render.csv_columns(None, [{"b": 1}, {"a": 2, "b": 3}]) == ["b", "a"]


def test_record_point_prefers_columns_and_parses_text() -> None:
    fields = ("緯度", "経度")
    stored = Record(record_key="1", data={}, latitude=33.9, longitude=130.9)
    assert render.record_point(stored, fields) == [130.9, 33.9]
    textual = Record(record_key="2", data={"緯度": "33.5", "経度": "130.5"}, latitude=None, longitude=None)
    assert render.record_point(textual, fields) == [130.5, 33.5]
    outside = Record(record_key="3", data={"緯度": 95, "経度": 130}, latitude=None, longitude=None)
    assert render.record_point(outside, fields) is None


def test_next_page_url_and_content_disposition() -> None:
    url = render.next_page_url(
        base_url="https://x.jp/",
        path="/api/v1/datasets/aed/records",
        params=[("名称", "市役所"), ("limit", "2"), ("offset", "0")],
        limit=2,
        offset=0,
        returned=2,
        total=3,
    )
    assert (
        url
        == "https://x.jp/api/v1/datasets/aed/records?%E5%90%8D%E7%A7%B0=%E5%B8%82%E5%BD%B9%E6%89%80&limit=2&offset=2"
    )
    last = render.next_page_url(
        base_url="https://x.jp", path="/p", params=[], limit=2, offset=2, returned=1, total=3
    )
    assert last is None
    header = render.content_disposition("公衆トイレ.csv")
    assert header.startswith('attachment; filename="')
    assert "filename*=UTF-8''%E5%85%AC" in header


# --- rich query API -------------------------------------------------------------------------------


def _ids(catalog: Catalog, dataset: str, key: str, **params: str | int) -> list[str]:
    response = catalog.client.get(RECORDS.format(dataset), params=params)
    assert response.status_code == 200, response.text
    return [r[key] for r in response.json()["records"]]


def test_ranges_in_and_sort(catalog: Catalog) -> None:
    toilets = "public-toilet"
    assert _ids(catalog, toilets, "ID", **{"男性トイレ総数[gte]": 4}) == ["T02"]
    assert _ids(catalog, toilets, "ID", **{"男性トイレ総数[lt]": "4"}) == ["T01", "T03"]
    assert _ids(catalog, toilets, "ID", **{"緯度[gt]": "33.9", "緯度[lte]": "33.945"}) == ["T02", "T03"]
    assert _ids(catalog, toilets, "ID", **{"ID[in]": "T03,T01,T09"}) == ["T01", "T03"]
    assert _ids(catalog, toilets, "ID", sort="-男性トイレ総数") == ["T02", "T01", "T03"]
    assert _ids(catalog, toilets, "ID", sort="名称") == ["T01", "T03", "T02"]  # 小 < 若 < 門 in code points
    assert _ids(catalog, "aed", "NO", sort="-NO", limit=3) == ["012", "011", "010"]


def test_text_search_matches_text_fields_only_and_escapes_wildcards(catalog: Catalog) -> None:
    assert _ids(catalog, "public-toilet", "ID", q="門司") == ["T02"]
    assert _ids(catalog, "public-toilet", "ID", q="公園") == ["T03"]
    assert _ids(catalog, "public-toilet", "ID", q="%") == []  # a literal percent sign, not a wildcard
    assert _ids(catalog, "public-toilet", "ID", q="_") == []
    assert _ids(catalog, "aed", "NO", q="要予約") == ["003"]  # inside a multi-line remark


def test_fields_projection_in_every_format(catalog: Catalog) -> None:
    params: dict[str, str | int] = {"fields": "名称,ID", "limit": 1}
    body = catalog.client.get(RECORDS.format("public-toilet"), params=params).json()
    assert body["records"] == [{"名称": "小倉城公衆トイレ", "ID": "T01"}]
    text = catalog.client.get(RECORDS.format("public-toilet"), params={**params, "format": "csv"}).text
    assert text.splitlines()[0] == "名称,ID"
    geo = catalog.client.get(RECORDS.format("public-toilet"), params={**params, "format": "geojson"}).json()
    assert geo["features"][0]["properties"] == {"名称": "小倉城公衆トイレ", "ID": "T01"}
    assert geo["features"][0]["geometry"]["coordinates"] == [130.874, 33.884]


def test_ndjson(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format("public-toilet"), params={"format": "ndjson"})
    assert response.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line)["ID"] for line in response.text.splitlines()] == ["T01", "T02", "T03"]
    negotiated = catalog.client.get(
        RECORDS.format("public-toilet"), headers={"Accept": "application/x-ndjson"}
    )
    assert negotiated.text == response.text


def test_cursor_pages_cover_everything_once(catalog: Catalog) -> None:
    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 5}
    while True:
        response = catalog.client.get(RECORDS.format("aed"), params=params)
        body = response.json()
        seen += [r["NO"] for r in body["records"]]
        if body["next_cursor"] is None:
            break
        assert response.headers["x-next-cursor"] == body["next_cursor"]
        params = {"limit": 5, "cursor": body["next_cursor"]}
        if len(seen) > 5:  # from the second cursor page on, `next` links continue by cursor
            assert body["next"] is None or "cursor=" in body["next"]
    assert seen == [f"{n:03d}" for n in range(1, 13)]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"男性トイレ総数[gte]": "abc"}, "男性トイレ総数[gte]"),
        ({"名称[gte]": "a"}, "名称[gte]"),
        ({"名称[like]": "a"}, "名称[like]"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "130,34,131,33"}, "bbox"),
        ({"near": "130.8"}, "near"),
        ({"near": "130.8,33.8", "distance": "-5"}, "distance"),
        ({"distance": "5"}, "distance"),
        ({"sort": "色"}, "sort"),
        ({"fields": "名称,,ID"}, "fields"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJ2IjoxLCJrIjoiVDAxIn0", "sort": "名称"}, "cursor"),
        ({"q": ""}, "q"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_malformed_query_is_400_naming_the_parameter(
    catalog: Catalog, params: dict[str, str], parameter: str
) -> None:
    response = catalog.client.get(RECORDS.format("public-toilet"), params=params)
    assert response.status_code == 400, response.text
    assert response.json()["parameter"] == parameter


def test_geo_filters_need_a_location(catalog: Catalog) -> None:
    response = catalog.client.get(RECORDS.format(NO_LOCATION_ID), params={"bbox": "130,33,131,34"})
    assert response.status_code == 400
    assert response.json()["parameter"] == "bbox"


def test_conditional_requests(catalog: Catalog, tmp_path: Path) -> None:
    url = RECORDS.format("public-toilet")
    first = catalog.client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('W/"')
    assert catalog.client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert catalog.client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    # Another query or format is another representation.
    assert catalog.client.get(url + "?format=csv", headers={"If-None-Match": etag}).status_code == 200
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    with session_factory(engine)() as session, session.begin():
        # Same event time as the stored version, later position: applied, yet the newest event
        # time of the dataset (Last-Modified) does not move -- the ETag must change all the same.
        (event,) = validated_events("public-toilet", "ID", [{**TOILETS[0], "男性トイレ総数": 9}], 500)
        changed = [dataclasses.replace(event, id="public-toilet-changed")]
        apply_batch(session, events=changed, now=T0 + timedelta(days=1))
    engine.dispose()
    # A rendered page is served for at most the cache's interval; after it, the change shows.
    time.sleep(Settings().publish_page_cache_ttl_s)
    after = catalog.client.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag


def test_export_validators_follow_every_applied_change(catalog: Catalog, tmp_path: Path) -> None:
    url = "/api/v1/datasets/public-toilet/export"
    first = catalog.client.get(url, params={"format": "csv"})
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.status_code == 200 and etag.startswith('W/"')
    repeat = catalog.client.get(url, params={"format": "csv"}, headers={"If-None-Match": etag})
    assert repeat.status_code == 304 and repeat.content == b"" and repeat.headers["etag"] == etag
    since = catalog.client.get(url, params={"format": "csv"}, headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    # Another format, option or filter is another representation.
    others: list[dict[str, str]] = [
        {"format": "geojson"},
        {"format": "csv", "bom": "true"},
        {"format": "csv", "男性トイレ総数": "1"},
    ]
    for params in others:
        assert catalog.client.get(url, params=params, headers={"If-None-Match": etag}).status_code == 200
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    with session_factory(engine)() as session, session.begin():
        # A change that leaves the dataset's newest event time where it was: still a new export.
        (event,) = validated_events("public-toilet", "ID", [{**TOILETS[0], "男性トイレ総数": 9}], 500)
        changed = [dataclasses.replace(event, id="public-toilet-changed-export")]
        apply_batch(session, events=changed, now=T0 + timedelta(days=1))
    engine.dispose()
    after = catalog.client.get(url, params={"format": "csv"}, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert after.content != first.content
    stale = catalog.client.get(url, params={"format": "csv"}, headers={"If-Modified-Since": modified})
    assert stale.status_code == 200


def test_single_record_and_export(catalog: Catalog) -> None:
    one = catalog.client.get(RECORDS.format("aed") + "/005")
    assert one.status_code == 200 and one.json()["名称"] == "小倉北区役所5"
    assert catalog.client.get(RECORDS.format("aed") + "/999").status_code == 404
    export = catalog.client.get("/api/v1/datasets/aed/export", params={"format": "csv", "bom": "true"})
    assert export.content.startswith(render.UTF8_BOM)
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"), newline="")))
    assert [r["NO"] for r in rows] == [f"{n:03d}" for n in range(1, 13)]
    assert rows[2]["備考"] == '土日は閉館、"要予約"\n夜間不可'
    geo = catalog.client.get(
        "/api/v1/datasets/aed/export", params={"format": "geojson", "設置位置": "2階"}
    ).json()
    assert [f["id"] for f in geo["features"]] == ["002", "004", "006", "008", "010", "012"]
    ndjson = catalog.client.get("/api/v1/datasets/aed/export", params={"format": "ndjson"}).text
    assert len(ndjson.splitlines()) == 12
    paged = catalog.client.get("/api/v1/datasets/aed/export", params={"limit": 5})
    assert paged.status_code == 400 and paged.json()["parameter"] == "limit"


def test_dataset_detail_rates_five_stars_with_reasons(catalog: Catalog) -> None:
    body = catalog.client.get("/api/v1/datasets/aed").json()
    stars = body["five_star"]
    assert stars["stars"] == 4
    assert [c["met"] for c in stars["criteria"]] == [True, True, True, True, False]
    assert "CC-BY-4.0" in stars["criteria"][0]["reason"]
    quality = body["metadata_quality"]
    assert 0 < quality["score"] < 100
    assert "temporal coverage" in quality["missing"]
    assert body["links"]["dcat"].endswith("/catalog/datasets/aed.ttl")


def test_ckan_envelope_for_unknown_action_and_bad_parameters(catalog: Catalog) -> None:
    unknown = catalog.client.get("/api/3/action/no_such_action")
    assert unknown.status_code == 400
    assert unknown.json()["success"] is False
    bad = catalog.client.get("/api/3/action/package_search", params={"rows": "many"})
    assert bad.status_code == 409
    assert bad.json()["error"]["__type"] == "Validation Error"
    status = catalog.client.get("/api/3/action/status_show").json()
    assert status["success"] is True and "datastore" in status["result"]["extensions"]


# --- page cache ---------------------------------------------------------------------------------


class FrozenClock:
    """The page cache's clock, moved by hand: the test decides when an interval has passed."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _frozen_page_cache(catalog: Catalog) -> tuple[PageCache, FrozenClock]:
    app = catalog.client.app
    assert isinstance(app, FastAPI)
    pages = app.state.page_cache
    assert isinstance(pages, PageCache) and pages.ttl_s > 0
    clock = FrozenClock()
    pages.clock = clock
    return pages, clock


def _change_first_toilet(tmp_path: Path, men: int) -> None:
    """An update with the stored event time at a later position: neither the dataset's record count
    nor its Last-Modified moves, so only re-rendering the page can show it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    with session_factory(engine)() as session, session.begin():
        (event,) = validated_events("public-toilet", "ID", [{**TOILETS[0], "男性トイレ総数": men}], 500 + men)
        apply_batch(session, events=[dataclasses.replace(event, id=f"toilet-change-{men}")], now=T0)
    engine.dispose()


def _men(page: dict[str, Any]) -> int:
    (first,) = [r for r in page["records"] if r["ID"] == TOILETS[0]["ID"]]
    return int(first["男性トイレ総数"])


def test_page_cache_serves_a_change_within_its_interval(catalog: Catalog, tmp_path: Path) -> None:
    pages, clock = _frozen_page_cache(catalog)
    url = RECORDS.format("public-toilet")
    first = catalog.client.get(url)
    assert _men(first.json()) != 9
    _change_first_toilet(tmp_path, 9)
    clock.now += pages.ttl_s / 2
    within = catalog.client.get(url)
    # Inside the interval the rendered page is answered again, validators included.
    assert within.content == first.content and within.headers["etag"] == first.headers["etag"]
    assert catalog.client.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    clock.now += pages.ttl_s / 2
    fresh = catalog.client.get(url)
    assert _men(fresh.json()) == 9
    assert fresh.headers["etag"] != first.headers["etag"]
    assert fresh.headers["last-modified"] == first.headers["last-modified"]
    # Each representation is its own entry, rendered fresh too.
    assert "9" in catalog.client.get(url, params={"format": "csv"}).text.splitlines()[1].split(",")


def test_page_cache_keys_pages_by_the_callers_access(catalog: Catalog, tmp_path: Path) -> None:
    pages, _ = _frozen_page_cache(catalog)  # frozen: every page stays cached for the whole test
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    with session_factory(engine)() as session, session.begin():
        owner = issue_key(
            session, owner_kind=OwnerKind.department, owner_id="digital", purpose="t", actor="t"
        )
        grantee = issue_key(session, owner_kind=OwnerKind.department, owner_id="fire", purpose="t", actor="t")
        session.add(AccessGrant(dataset_id="copier-usage", grantee_id="fire", fields=["部局名"],
                                granted_by="test", granted_at=T0))  # fmt: skip
    engine.dispose()
    url = RECORDS.format("copier-usage")

    def read(secret: str | None) -> Any:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return catalog.client.get(url, headers=headers)

    full = read(owner.secret).json()["records"]
    assert full == [COPIER]
    # The owner's full page is cached now; the grantee still gets only its granted fields.
    assert read(grantee.secret).json()["records"] == [{"ID": "C1", "部局名": "総務局"}]
    assert read(owner.secret).json()["records"] == full
    assert read(grantee.secret).json()["records"] == [{"ID": "C1", "部局名": "総務局"}]
    assert read(None).status_code == 404  # anonymous: nothing, cached pages or not
    assert len(pages) == 2  # one entry per access, so the test above did go through the cache


def test_cached_pages_are_counted_and_rate_limited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=load_schema_dir(schemas_with_budget_lines(tmp_path)), now=T0)
        apply_batch(session, events=validated_events("public-toilet", "ID", TOILETS, 100), now=T0)
    settings = Settings(database_url=url, public_base_url=BASE_URL, publish_anonymous_rate_per_minute=3)
    with TestClient(create_app(settings, engine=engine)) as client:
        statuses = [client.get(RECORDS.format("public-toilet")).status_code for _ in range(4)]
        metrics = client.get("/metrics").text
    engine.dispose()
    # Three allowed (two of them from the cache), the fourth refused: the limiter sees every one.
    assert statuses == [200, 200, 200, 429]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    route = "/api/v1/datasets/{dataset_id}/records"
    assert samples[("cityos_publish_http_requests_total",
                    (("format", "json"), ("method", "GET"), ("route", route), ("status", "200")))] == 3  # fmt: skip
    assert samples[("cityos_publish_dataset_requests_total",
                    (("dataset", "public-toilet"), ("format", "json"), ("key_class", "anonymous")))] == 3  # fmt: skip
    assert samples[("cityos_publish_served_rows_total",
                    (("dataset", "public-toilet"), ("format", "json"), ("key_class", "anonymous")))] == 3 * len(TOILETS)  # fmt: skip

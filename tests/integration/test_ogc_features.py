"""OGC API - Features over the real publish app and a real catalog (SQLite and PostgreSQL).

The catalog holds the repository's datasets, the AED rows of ``publish_catalog``, and two test-only
located datasets with a date or time property: public city events (``開催日時``, date-time) and
the fire bureau's internal AED inspections (``点検日``, date), granted in full to one department
and without its location fields to another. Expected answers are computed here from the rows
themselves or read from the records API, never copied from the OGC answers.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.access_models import AccessGrant
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT, Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.app import create_app
from tests.support.publish_catalog import T0, TOILETS, aed_rows, validated_events

BASE = "https://opendata.example.jp/city"
EVENTS_ID = "city-events"
INSPECTIONS_ID = "aed-inspections"
LOCATION = {"latitude": "緯度", "longitude": "経度"}

EVENTS: list[dict[str, Any]] = [
    {"ID": "E1", "名称": "小倉城まつり", "開催日時": "2025-04-01T10:00:00+09:00", "緯度": 33.884, "経度": 130.874},
    {"ID": "E2", "名称": "門司港フェア", "開催日時": "2025-04-01T18:30:00+09:00", "緯度": 33.945, "経度": 130.962},
    {"ID": "E3", "名称": "若松花火", "開催日時": "2025-04-02T19:00:00+09:00", "緯度": 33.906, "経度": 130.811},
    {"ID": "E4", "名称": "八幡マルシェ", "開催日時": "2025-05-10T09:00:00+09:00", "緯度": 33.862, "経度": 130.796},
    {"ID": "E5", "名称": "戸畑提灯", "開催日時": "2025-07-20T20:00:00+09:00", "緯度": 33.897, "経度": 130.829},
    {"ID": "E6", "名称": "日程未定の催し", "緯度": 33.85, "経度": 130.88},
]  # fmt: skip
INSPECTIONS: list[dict[str, Any]] = [
    {"ID": "I1", "点検日": "2025-03-01", "結果": "良", "緯度": 33.881, "経度": 130.871},
    {"ID": "I2", "点検日": "2025-03-15", "結果": "要交換", "緯度": 33.882, "経度": 130.872},
    {"ID": "I3", "点検日": "2025-04-02", "結果": "良", "緯度": 33.883, "経度": 130.873},
]


def _dataset(folder: Path, dataset_id: str, meta: dict[str, Any], properties: dict[str, Any]) -> None:
    target = folder / dataset_id
    target.mkdir()
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_uri(dataset_id, 1),
        "type": "object", "properties": properties, "required": ["ID"],
    }  # fmt: skip
    (target / "dataset.json").write_text(json.dumps({"id": dataset_id, **meta}, ensure_ascii=False), "utf-8")
    (target / "v1.schema.json").write_text(json.dumps(schema, ensure_ascii=False), "utf-8")


def _schemas(tmp_path: Path) -> Path:
    folder = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", folder)
    coordinates = {"緯度": {"type": "number"}, "経度": {"type": "number"}}
    _dataset(folder, EVENTS_ID, {
        "title": {"ja": "市のイベント", "en": "City events"}, "description": {"ja": "催しの一覧", "en": "Events"},
        "department": "city-brand", "classification": "public", "record_key": "ID", "location": LOCATION,
        "update_frequency": "daily",
    }, {"ID": {"type": "string"}, "名称": {"type": "string"},
        "開催日時": {"type": "string", "format": "date-time"}, **coordinates})  # fmt: skip
    _dataset(folder, INSPECTIONS_ID, {
        "title": {"ja": "AED点検記録", "en": "AED inspections"}, "description": {"ja": "点検", "en": "Checks"},
        "department": "fire", "classification": "internal", "record_key": "ID", "location": LOCATION,
        "update_frequency": "monthly",
    }, {"ID": {"type": "string"}, "点検日": {"type": "string", "format": "date"}, "結果": {"type": "string"},
        **coordinates})  # fmt: skip
    return folder


@dataclass
class Ogc:
    client: TestClient
    keys: dict[str, str]

    def get(self, url: str, department: str | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if department is not None:
            headers["Authorization"] = f"Bearer {self.keys[department]}"
        return self.client.get(url, headers=headers, **kwargs)


@pytest.fixture
def ogc(database_url: str, tmp_path: Path) -> Iterator[Ogc]:
    migrate(database_url)
    engine = make_engine(database_url)
    batch = (
        validated_events("aed", "NO", aed_rows(), 0)
        + validated_events("public-toilet", "ID", TOILETS, 100)
        + validated_events(EVENTS_ID, "ID", EVENTS, 200)
        + validated_events(INSPECTIONS_ID, "ID", INSPECTIONS, 300)
    )
    keys: dict[str, str] = {}
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=load_schema_dir(_schemas(tmp_path)), now=T0)
        apply_batch(session, events=batch, now=T0 + timedelta(hours=1))
        for department in ("fire", "digital", "planning", "health-welfare", "construction"):
            issued = issue_key(
                session, owner_kind=OwnerKind.department, owner_id=department, purpose="ogc", actor="test"
            )
            keys[department] = issued.secret
        session.add(AccessGrant(dataset_id=INSPECTIONS_ID, grantee_id="digital", fields=None,
                                granted_by="test", granted_at=T0))  # fmt: skip
        # A grant without the location fields: no position, so no collection.
        session.add(AccessGrant(dataset_id=INSPECTIONS_ID, grantee_id="planning", fields=["点検日", "結果"],
                                granted_by="test", granted_at=T0))  # fmt: skip
        # A grant of the location and one more field: features with only those properties.
        session.add(AccessGrant(dataset_id=INSPECTIONS_ID, grantee_id="construction", fields=["結果", "緯度", "経度"],
                                granted_by="test", granted_at=T0))  # fmt: skip
    settings = Settings(database_url=database_url, public_base_url=BASE, publish_page_cache_ttl_s=0)
    with TestClient(create_app(settings, engine=engine)) as client:
        yield Ogc(client, keys)
    engine.dispose()


def _rel(document: dict[str, Any], rel: str) -> list[dict[str, str]]:
    return [link for link in document["links"] if link["rel"] == rel]


def _local(url: str) -> str:
    assert url.startswith(BASE), url
    return url[len(BASE) :]


def _all_items(ogc: Ogc, url: str, department: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every feature of an items query, following its next links; and numberMatched."""
    features: list[dict[str, Any]] = []
    matched = -1
    next_url: str | None = url
    while next_url is not None:
        answer = ogc.get(next_url, department)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/geo+json"
        page = answer.json()
        assert page["numberReturned"] == len(page["features"])
        matched = page["numberMatched"]
        features += page["features"]
        following = _rel(page, "next")
        next_url = _local(following[0]["href"]) if following else None
    return features, matched


def _records_geojson(ogc: Ogc, dataset_id: str, params: dict[str, str]) -> list[dict[str, Any]]:
    answer = ogc.get(
        f"/api/v1/datasets/{dataset_id}/records", params={**params, "format": "geojson", "limit": "10000"}
    )
    assert answer.status_code == 200, answer.text
    features: list[dict[str, Any]] = answer.json()["features"]
    return features


def test_landing_conformance_and_api_definition(ogc: Ogc) -> None:
    landing = ogc.get("/ogc")
    assert landing.status_code == 200 and landing.headers["content-type"] == "application/json"
    service_desc = _rel(landing.json(), "service-desc")[0]
    definition = ogc.get(_local(service_desc["href"]))
    assert (
        definition.headers["content-type"]
        == service_desc["type"]
        == "application/vnd.oai.openapi+json;version=3.0"
    )
    assert definition.json()["openapi"].startswith("3.0")
    assert ogc.get(_local(_rel(landing.json(), "data")[0]["href"])).status_code == 200
    classes = ogc.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in classes
    # The service's own OpenAPI document describes the OGC paths too.
    paths = ogc.get("/openapi.json").json()["paths"]
    assert {"/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/collections/{collectionId}",
            "/ogc/collections/{collectionId}/items",
            "/ogc/collections/{collectionId}/items/{featureId}"} <= set(paths)  # fmt: skip
    names = {p["name"] for p in paths["/ogc/collections/{collectionId}/items"]["get"]["parameters"]}
    assert {"limit", "bbox", "datetime", "f"} <= names


def test_collections_are_the_located_datasets_the_caller_may_read(ogc: Ogc) -> None:
    located_public = {
        d.name for d in (REPO_ROOT / "schemas").iterdir()
        if d.is_dir() and json.loads((d / "dataset.json").read_text("utf-8")).get("classification") == "public"
        and json.loads((d / "dataset.json").read_text("utf-8")).get("location")
    } | {EVENTS_ID}  # fmt: skip

    def ids(department: str | None) -> set[str]:
        answer = ogc.get("/ogc/collections", department)
        assert answer.status_code == 200
        return {c["id"] for c in answer.json()["collections"]}

    assert ids(None) == located_public
    assert ids("health-welfare") == located_public
    assert ids("planning") == located_public  # granted, but not the location fields
    assert ids("fire") == ids("digital") == located_public | {INSPECTIONS_ID}
    for department in (None, "planning", "health-welfare"):
        for path in ("", "/items", "/items/I1"):
            answer = ogc.get(f"/ogc/collections/{INSPECTIONS_ID}{path}", department)
            assert answer.status_code == 404, (department, path)
            assert answer.json() == ogc.get("/ogc/collections/no-such-dataset", department).json()
        assert INSPECTIONS_ID not in ogc.get("/ogc/collections?f=html", department).text
    granted, matched = _all_items(ogc, f"/ogc/collections/{INSPECTIONS_ID}/items", "digital")
    assert matched == len(INSPECTIONS) and {f["id"] for f in granted} == {"I1", "I2", "I3"}
    assert [f["properties"] for f in granted] == INSPECTIONS


def test_a_partial_grant_shows_only_its_fields(ogc: Ogc) -> None:
    assert INSPECTIONS_ID in {
        c["id"] for c in ogc.get("/ogc/collections", "construction").json()["collections"]
    }
    features, _ = _all_items(ogc, f"/ogc/collections/{INSPECTIONS_ID}/items", "construction")
    shown = {"ID", "結果", "緯度", "経度"}  # the granted fields and the record key
    assert [f["properties"] for f in features] == [
        {k: v for k, v in r.items() if k in shown} for r in INSPECTIONS
    ]
    one = ogc.get(f"/ogc/collections/{INSPECTIONS_ID}/items/I2", "construction").json()
    assert one["properties"] == {k: v for k, v in INSPECTIONS[1].items() if k in shown}
    # The field it was not given is neither a filter nor a time to filter on: the same 400 as a
    # property that does not exist, and no temporal extent.
    hidden = ogc.get(f"/ogc/collections/{INSPECTIONS_ID}/items?点検日=2025-03-01", "construction")
    assert (
        hidden.status_code == 400
        and hidden.json()["detail"]
        == ogc.get(f"/ogc/collections/{INSPECTIONS_ID}/items?存在しない=1", "construction").json()["detail"]
    )
    assert (
        ogc.get(f"/ogc/collections/{INSPECTIONS_ID}/items?datetime=2025-03-01", "construction").status_code
        == 400
    )
    described = ogc.get(f"/ogc/collections/{INSPECTIONS_ID}", "construction").json()
    assert "temporal" not in described["extent"]
    assert "点検日" not in ogc.get(f"/ogc/collections/{INSPECTIONS_ID}/items?f=html", "construction").text


def test_collection_extent_is_computed_from_the_live_records(ogc: Ogc) -> None:
    aed = ogc.get("/ogc/collections/aed").json()
    located = [row for row in aed_rows() if "緯度" in row]
    expected = [min(r["経度"] for r in located), min(r["緯度"] for r in located),
                max(r["経度"] for r in located), max(r["緯度"] for r in located)]  # fmt: skip
    assert aed["extent"]["spatial"]["bbox"] == [pytest.approx(expected)]
    assert aed["extent"]["spatial"]["crs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert "temporal" not in aed["extent"]  # no date or time property
    times = sorted(e["開催日時"] for e in EVENTS if "開催日時" in e)
    events = ogc.get(f"/ogc/collections/{EVENTS_ID}?lang=en").json()
    assert events["extent"]["temporal"]["interval"] == [[times[0], times[-1]]]
    assert events["title"] == "City events"
    assert ogc.get(f"/ogc/collections/{EVENTS_ID}").json()["title"] == "市のイベント"


def test_items_are_the_records_apis_features_page_by_page(ogc: Ogc) -> None:
    features, matched = _all_items(ogc, "/ogc/collections/aed/items?limit=5")
    expected = _records_geojson(ogc, "aed", {})
    assert matched == len(aed_rows()) == len(expected)
    assert features == expected  # ids, geometry (lon, lat) and properties, in the same order
    missing = [f for f in features if f["geometry"] is None]
    assert [f["id"] for f in missing] == [r["NO"] for r in aed_rows() if "緯度" not in r]
    # Going back: prev of the second page is the first page.
    second = ogc.get("/ogc/collections/aed/items?limit=5&offset=5").json()
    back = ogc.get(_local(_rel(second, "prev")[0]["href"])).json()
    assert [f["id"] for f in back["features"]] == [f["id"] for f in features[:5]]
    assert _rel(second, "collection")[0]["href"] == f"{BASE}/ogc/collections/aed"
    # Above the maximum page size: the maximum, not an error.
    assert ogc.get("/ogc/collections/aed/items?limit=50000").json()["numberReturned"] == len(aed_rows())


@pytest.mark.parametrize(
    "params",
    [
        {"bbox": "130.873,33.87,130.878,33.9"},
        {"設置位置": "2階"},
        {"設置位置": "2階", "bbox": "130.87,33.88,130.88,33.89"},
        {"名称": "存在しない"},
    ],
)
def test_bbox_and_property_filters_match_the_records_api(ogc: Ogc, params: dict[str, str]) -> None:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    features, matched = _all_items(ogc, f"/ogc/collections/aed/items?limit=2&{query}")
    expected = _records_geojson(ogc, "aed", params)
    assert features == expected and matched == len(expected)


def _event_ids(ogc: Ogc, when: str) -> set[str]:
    features, matched = _all_items(ogc, f"/ogc/collections/{EVENTS_ID}/items?datetime={when}")
    assert matched == len(features)
    return {str(f["id"]) for f in features}


def _on_or_between(start: str | None, end: str | None) -> set[str]:
    """Events whose time falls in [start, end] by their own clock (the +09:00 the rows carry)."""
    chosen = set()
    for event in EVENTS:
        if "開催日時" not in event:
            continue
        moment = datetime.fromisoformat(event["開催日時"]).replace(tzinfo=None)
        if (start is None or moment >= datetime.fromisoformat(start)) and (
            end is None or moment <= datetime.fromisoformat(end)
        ):
            chosen.add(event["ID"])
    return chosen


def test_datetime_filters_on_the_collections_date_or_time_property(ogc: Ogc) -> None:
    assert _event_ids(ogc, "2025-04-01") == _on_or_between("2025-04-01T00:00", "2025-04-01T23:59:59")
    assert _event_ids(ogc, "2025-04-01T10:00:00%2B09:00") == {"E1"}
    # The same instants in UTC: compared in the zone the events are written in (+09:00).
    assert _event_ids(ogc, "2025-04-01T01:00:00Z") == {"E1"}
    assert _event_ids(ogc, "2025-04-01T00:30:00Z/2025-04-01T09:30:00Z") == {"E1", "E2"}
    assert _event_ids(ogc, "2025-04-01T00:30:00Z/2025-04-01T09:29:59Z") == {"E1"}
    assert _event_ids(ogc, "2025-04-01/2025-05-31") == _on_or_between(
        "2025-04-01T00:00", "2025-05-31T23:59:59"
    )
    assert _event_ids(ogc, "../2025-04-02") == _on_or_between(None, "2025-04-02T23:59:59")
    assert _event_ids(ogc, "2025-05-01/..") == _on_or_between("2025-05-01T00:00", None)
    dated = ogc.get(f"/ogc/collections/{INSPECTIONS_ID}/items?datetime=2025-03-01/2025-03-31", "fire").json()
    assert {f["id"] for f in dated["features"]} == {
        r["ID"] for r in INSPECTIONS if r["点検日"] < "2025-04-01"
    }


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/ogc/collections/aed/items?datetime=2025-04-01", "datetime"),  # no date or time property
        (f"/ogc/collections/{EVENTS_ID}/items?datetime=tomorrow", "datetime"),
        (f"/ogc/collections/{EVENTS_ID}/items?datetime=2025-05-01/2025-04-01", "datetime"),
        ("/ogc/collections/aed/items?bbox=130.8,33.8,0,130.9,33.9,100", "bbox"),
        ("/ogc/collections/aed/items?bbox=130.8,33.8", "bbox"),
        ("/ogc/collections/aed/items?colour=red", "colour"),
        ("/ogc/collections/aed/items?format=csv", "format"),
        ("/ogc/collections/aed/items?limit=0", "limit"),
        ("/ogc/collections/aed/items?f=xml", "f"),
        ("/ogc/collections?sort=id", "sort"),
        ("/ogc?lang=fr", "lang"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(ogc: Ogc, url: str, parameter: str) -> None:
    answer = ogc.get(url)
    assert answer.status_code == 400, answer.text
    assert answer.json()["parameter"] == parameter


def test_one_feature_by_its_record_key(ogc: Ogc) -> None:
    answer = ogc.get("/ogc/collections/aed/items/003")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/geo+json"
    feature = answer.json()
    row = next(r for r in aed_rows() if r["NO"] == "003")
    assert feature["id"] == "003" and feature["properties"] == row
    assert feature["geometry"] == {"type": "Point", "coordinates": [row["経度"], row["緯度"]]}
    assert {link["rel"] for link in feature["links"]} == {"self", "alternate", "collection"}
    assert ogc.get("/ogc/collections/aed/items/999").status_code == 404


def test_html_pages_in_japanese_and_english(ogc: Ogc) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for path in ("/ogc", "/ogc/conformance", "/ogc/collections", "/ogc/collections/aed",
                 "/ogc/collections/aed/items", "/ogc/collections/aed/items/001"):  # fmt: skip
        ja = ogc.get(path, headers=browser)
        en = ogc.get(path, params={"lang": "en"}, headers=browser)
        assert ja.headers["content-type"].startswith("text/html"), path
        assert '<html lang="ja">' in ja.text and '<html lang="en">' in en.text, path
        assert "?lang=en" in ja.text and "lang=en" in en.text
        # The JSON twin is linked from every page.
        assert 'type="application/json"' in ja.text
    page = ogc.get("/ogc/collections/aed/items?f=html&limit=4&offset=4").text
    assert page.count('<tr>\n      <th scope="row">') == 4
    assert 'rel="next"' in page and 'rel="prev"' in page
    assert "AED locations" in ogc.get("/ogc/collections/aed?f=html&lang=en").text
    # English pages name each property in English beside its Japanese name (the schema's x-en).
    assert "設置位置 (installationLocation)" in ogc.get("/ogc/collections/aed/items?f=html&lang=en").text
    assert "(installationLocation)" not in page
    assert "<script" not in page  # reads without JavaScript


def test_a_located_record_that_moves_moves_the_extent(ogc: Ogc, database_url: str) -> None:
    before = ogc.get(f"/ogc/collections/{EVENTS_ID}").json()["extent"]["spatial"]["bbox"][0]
    moved = {**EVENTS[0], "経度": 131.2}
    engine = make_engine(database_url)
    with session_factory(engine)() as session, session.begin():
        event = validated_events(EVENTS_ID, "ID", [moved], 900)[0]
        # A new event (its own id), newer than the first: the record moves.
        later = dataclasses.replace(event, id="city-events-moved", time=T0 + timedelta(days=1))
        apply_batch(session, events=[later], now=T0 + timedelta(days=1))
    engine.dispose()
    after = ogc.get(f"/ogc/collections/{EVENTS_ID}").json()["extent"]["spatial"]["bbox"][0]
    assert before[2] < 131.2 and after[2] == pytest.approx(131.2)
    feature = ogc.get(f"/ogc/collections/{EVENTS_ID}/items/E1").json()
    assert feature["geometry"]["coordinates"] == [131.2, EVENTS[0]["緯度"]]
    assert parse_qsl(urlsplit(_rel(feature, "collection")[0]["href"]).query) == []

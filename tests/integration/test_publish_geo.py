"""Geographic filters over the real GSI evacuation sites of Kitakyushu, through a real server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from shapely.geometry import Point, box, shape

from cityos.domain.readmodel.query import haversine_m
from tests.support.publish import (
    SITES_ID,
    events,
    kitakyushu_site_rows,
    load,
    schemas_with_sites,
    serve,
)

# Central Kitakyushu: Kokura Kita ward and its surroundings (lon/lat, WGS 84).
CENTRAL = (130.85, 33.85, 130.92, 33.90)
KOKURA_CASTLE = (130.8742, 33.8843)


def _is_geojson(body: str) -> list[dict[str, object]]:
    """Parse as GeoJSON: the ``geojson`` package when present, and shapely for every geometry."""
    document = json.loads(body)
    try:
        import geojson  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        parsed = geojson.loads(body)
        assert isinstance(parsed, geojson.FeatureCollection) and parsed.is_valid, parsed.errors()
    assert document["type"] == "FeatureCollection"
    for feature in document["features"]:
        assert feature["type"] == "Feature" and isinstance(feature["properties"], dict)
        assert shape(feature["geometry"]).geom_type == "Point"
    features: list[dict[str, object]] = document["features"]
    return features


def test_bbox_and_near_return_exactly_the_sites_inside(database_url: str, tmp_path: Path) -> None:
    rows = kitakyushu_site_rows()
    assert len(rows) == 628
    engine = load(database_url, schemas_with_sites(tmp_path), events(SITES_ID, rows))
    area = box(*CENTRAL)
    # covers(): a site exactly on the edge counts as inside, as the API's BETWEEN does.
    expected = {key for key, data in rows if area.covers(Point(data["経度"], data["緯度"]))}
    assert 10 < len(expected) < len(rows)  # the box really selects
    try:
        with serve(engine, database_url, publish_anonymous_rate_per_minute=1000) as server:
            records = f"{server.url}/api/v1/datasets/{SITES_ID}/records"
            bbox = ",".join(map(str, CENTRAL))
            answer = httpx.get(records, params={"bbox": bbox, "format": "geojson", "limit": 1000})
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/geo+json"
            features = _is_geojson(answer.text)
            assert {f["id"] for f in features} == expected
            assert answer.headers["x-total-count"] == str(len(expected))

            exported = httpx.get(
                f"{server.url}/api/v1/datasets/{SITES_ID}/export", params={"bbox": bbox, "format": "geojson"}
            )
            assert {f["id"] for f in _is_geojson(exported.text)} == expected

            near: dict[str, str | int] = {
                "near": f"{KOKURA_CASTLE[0]},{KOKURA_CASTLE[1]}",
                "distance": "1500",
                "limit": 1000,
            }
            found = {r["共通ID"] for r in httpx.get(records, params=near).json()["records"]}
            within = {k for k, d in rows if haversine_m(*KOKURA_CASTLE, d["経度"], d["緯度"]) <= 1500}
            # The SQL circle is an approximation; only sites within a metre of the edge may differ.
            borderline = {
                k for k, d in rows if abs(haversine_m(*KOKURA_CASTLE, d["経度"], d["緯度"]) - 1500) < 3
            }
            assert found - borderline == within - borderline
            assert within

            bad = httpx.get(records, params={"bbox": "130.9,33.8,130.8"})
            assert bad.status_code == 400 and bad.json()["parameter"] == "bbox"
            swapped = httpx.get(records, params={"bbox": "33.85,130.85,33.90,130.92"})
            assert swapped.status_code == 400 and swapped.json()["parameter"] == "bbox"
    finally:
        engine.dispose()

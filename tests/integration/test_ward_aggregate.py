"""Per-ward aggregation over real HTTP (uvicorn), on SQLite and PostgreSQL.

The catalog holds the GSI evacuation sites of Kitakyushu (628, one of them in 直方市), Yaizu's AEDs
(all outside the city) and every dataset's demo records. The expected figures are computed here,
independently: the boundary files read with shapely alone, each point against each ward outline with
``covers`` (the lowest code first), and the records from the fixtures and the demo generator, not
from the API.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from shapely.geometry import Point, shape
from sqlalchemy.orm import Session

from cityos.department.demo import demo_records
from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.domain.geo.codes import with_check_digit
from cityos.kernel.db.access_models import AccessGrant
from cityos.kernel.events import ValidatedEvent
from cityos.kernel.schemas import load_schema_dir
from tests.support.publish import (
    SITES_ID,
    T0,
    events,
    kitakyushu_site_rows,
    load,
    schemas_with_sites,
    serve,
    yaizu_aed_rows,
)
from tests.support.wards import load_wards, reference_outlines

DEMO_COUNT = 40
DEMO_SEED = 23
OUTSIDE = "outside"
NO_LOCATION = "no_location"

# The fixtures README's figures for the 628 emergency evacuation sites (full-resolution wards).
README_SITES = {"40101": 86, "40103": 58, "40105": 40, "40106": 99, "40107": 120, "40108": 53, "40109": 171}


INTERNAL_ID = "fire-aed"  # the AED list, internal to the fire bureau


@dataclass
class Loaded:
    url: str
    rows: dict[str, list[dict[str, Any]]]  # dataset id -> records as loaded
    keys: dict[str, str]  # department -> its API key


def add_internal_aed(schemas_dir: Path) -> None:
    """``fire-aed``: the repository's AED dataset, internal to the fire bureau."""
    folder = schemas_dir / INTERNAL_ID
    shutil.copytree(schemas_dir / "aed", folder)
    meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    meta.update(id=INTERNAL_ID, classification="internal")
    (folder / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    for schema_file in folder.glob("v*.schema.json"):
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        schema["$id"] = schema["$id"].replace("/aed/", f"/{INTERNAL_ID}/")
        schema_file.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")


def _demo_rows(schemas_dir: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    schema_set = load_schema_dir(schemas_dir)
    found = {}
    for dataset_id, meta in schema_set.datasets.items():
        if dataset_id == SITES_ID:
            continue
        records = demo_records(
            dataset_id, schema_set.latest(dataset_id).document, count=DEMO_COUNT, seed=DEMO_SEED
        )
        found[dataset_id] = [(str(r[meta.record_key]), r) for r in records]
    return found


@pytest.fixture
def catalog(database_url: str, tmp_path: Path) -> Iterator[Loaded]:
    schemas_dir = schemas_with_sites(tmp_path)
    add_internal_aed(schemas_dir)
    by_dataset = _demo_rows(schemas_dir)
    by_dataset["aed"] = by_dataset["aed"] + yaizu_aed_rows(schemas_dir)
    by_dataset[SITES_ID] = kitakyushu_site_rows()
    batch: list[ValidatedEvent] = []
    for dataset_id, rows in sorted(by_dataset.items()):
        batch += events(dataset_id, rows, start=len(batch))
    engine = load(database_url, schemas_dir, batch)
    load_wards(engine)
    keys = {}
    with Session(engine) as session, session.begin():
        # planning may read the internal AEDs with their positions; digital only their names.
        for grantee, fields in (("planning", None), ("digital", ["名称"])):
            session.add(
                AccessGrant(
                    dataset_id=INTERNAL_ID,
                    grantee_id=grantee,
                    fields=fields,
                    granted_by="test",
                    granted_at=T0,
                )
            )
        for department in ("digital", "planning"):
            keys[department] = issue_key(
                session,
                owner_kind=OwnerKind.department,
                owner_id=department,
                purpose="ward tests",
                actor="test",
            ).secret
    try:
        with serve(engine, database_url, schemas_dir=schemas_dir) as server:
            yield Loaded(server.url, {d: [data for _, data in rows] for d, rows in by_dataset.items()}, keys)
    finally:
        engine.dispose()


def expected_counts(rows: Sequence[dict[str, Any]], *, total_of: str | None = None) -> dict[str, float]:
    """Per N03 code (and the two buckets): how many rows, or the total of ``total_of``."""
    outlines = sorted(reference_outlines().items())
    tally: defaultdict[str, float] = defaultdict(float)  # counts, or totals with total_of
    for row in rows:
        lat, lon = row.get("緯度"), row.get("経度")
        if lat is None or lon is None:
            where = NO_LOCATION
        else:
            point = Point(lon, lat)
            where = next((code for code, outline in outlines if outline.covers(point)), OUTSIDE)
        tally[where] += row.get(total_of, 0) if total_of else 1
    return {code: tally[code] for code, _ in outlines} | {
        OUTSIDE: tally[OUTSIDE],
        NO_LOCATION: tally[NO_LOCATION],
    }


def answered(body: dict[str, Any], field: str = "count") -> dict[str, float]:
    counts = {row["n03_code"]: row[field] for row in body["wards"]}
    return counts | {OUTSIDE: body["outside"][field], NO_LOCATION: body["no_location"][field]}


def aggregate(
    catalog: Loaded, dataset_id: str, *, as_department: str | None = None, **params: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {catalog.keys[as_department]}"} if as_department else {}
    return httpx.get(
        f"{catalog.url}/api/v1/datasets/{dataset_id}/aggregate",
        params={"by": "ward", **params},
        headers=headers,
    )


def test_evacuation_sites_per_ward_equal_the_independent_count(catalog: Loaded) -> None:
    response = aggregate(catalog, SITES_ID)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = expected_counts(catalog.rows[SITES_ID])
    assert answered(body) == expected
    # And the published figures: 627 inside, 1 outside (イオンモール直方, in 直方市).
    assert {code: expected[code] for code in README_SITES} == README_SITES
    assert body["outside"]["count"] == 1 and body["total"] == 628
    for row in body["wards"]:
        assert row["code"] == with_check_digit(row["n03_code"]) and len(row["code"]) == 6
    names = {row["code"]: (row["name_ja"], row["name_en"]) for row in body["wards"]}
    assert names["401013"] == ("門司区", "Moji-ku") and names["401099"] == ("八幡西区", "Yahatanishi-ku")
    assert "国土数値情報" in body["attribution"]


def test_every_located_dataset_of_demo_and_yaizu_data(catalog: Loaded) -> None:
    for dataset_id in ("aed", "evacuation-space", "public-facility", "public-toilet", "tourism"):
        body = aggregate(catalog, dataset_id).json()
        assert answered(body) == expected_counts(catalog.rows[dataset_id]), dataset_id
        assert body["total"] == len(catalog.rows[dataset_id])
    # Yaizu (静岡県) lies outside every ward: the AEDs outside are exactly its rows.
    yaizu = [row for row in catalog.rows["aed"] if row.get("市区町村名") == "焼津市"]
    assert len(yaizu) == 82
    assert aggregate(catalog, "aed").json()["outside"]["count"] == len(yaizu)


def test_sums_filters_and_csv(catalog: Loaded) -> None:
    rows = catalog.rows[SITES_ID]
    summed = aggregate(catalog, SITES_ID, sum="NO").json()
    assert summed["sum_field"] == "NO"
    assert answered(summed, "sum") == pytest.approx(expected_counts(rows, total_of="NO"))
    # A records filter narrows what is counted, exactly as on /records.
    box = (130.80, 33.85, 130.90, 33.95)
    inside_box = [r for r in rows if box[0] <= r["経度"] <= box[2] and box[1] <= r["緯度"] <= box[3]]
    filtered = aggregate(catalog, SITES_ID, bbox=",".join(map(str, box))).json()
    assert answered(filtered) == expected_counts(inside_box)
    assert filtered["total"] == len(inside_box) < len(rows)

    response = aggregate(catalog, SITES_ID, format="csv", sum="NO")
    assert response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["code"] for r in table[:7]] == [row["code"] for row in summed["wards"]]
    assert {r["n03_code"] or r["name_en"]: int(r["count"]) for r in table} == {
        **{row["n03_code"]: row["count"] for row in summed["wards"]},
        "Outside every ward": 1,
        "No location": 0,
    }
    assert [float(r["sum"]) for r in table[:7]] == [row["sum"] for row in summed["wards"]]
    bom = aggregate(catalog, SITES_ID, format="csv", bom="true")
    assert bom.content.startswith("\ufeff".encode())


def test_access_rules_and_bad_parameters(catalog: Loaded) -> None:
    for hidden in ("resident-moves", "copier-usage", INTERNAL_ID, "no-such-dataset"):
        assert aggregate(catalog, hidden).status_code == 404, hidden
    assert aggregate(catalog, "resident-moves", as_department="planning").status_code == 404
    # The department that owns copier-usage may read it, but it declares no location.
    own = aggregate(catalog, "copier-usage", as_department="digital")
    assert own.status_code == 400 and "location" in own.json()["detail"]
    # A grant with the positions counts per ward; one without them may not (a coarse map).
    granted = aggregate(catalog, INTERNAL_ID, as_department="planning")
    assert granted.status_code == 200
    assert answered(granted.json()) == expected_counts(catalog.rows[INTERNAL_ID])
    blind = aggregate(catalog, INTERNAL_ID, as_department="digital")
    assert blind.status_code == 403 and blind.json()["error"] == "location_not_granted"
    # Nor may it add up a field it was not given.
    assert aggregate(catalog, INTERNAL_ID, as_department="digital", sum="緯度").status_code == 403
    for params, parameter in (
        ({"by": "town"}, "by"),
        ({"sum": "住所"}, "sum"),
        ({"sum": "no-such-field"}, "sum"),
        ({"format": "xml"}, "format"),
        ({"limit": "5"}, "limit"),
        ({"no-such-field": "1"}, "no-such-field"),
    ):
        response = aggregate(catalog, SITES_ID, **params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["parameter"] == parameter, params
    missing_by = httpx.get(f"{catalog.url}/api/v1/datasets/{SITES_ID}/aggregate")
    assert missing_by.status_code == 400 and missing_by.json()["parameter"] == "by"


def test_wards_geojson_for_maps_and_gis(catalog: Loaded) -> None:
    display = httpx.get(f"{catalog.url}/api/v1/wards")
    full = httpx.get(f"{catalog.url}/api/v1/wards", params={"geometry": "full"})
    assert display.headers["content-type"] == "application/geo+json"
    features = {f["id"]: f for f in full.json()["features"]}
    assert sorted(features) == ["401013", "401030", "401056", "401064", "401072", "401081", "401099"]
    outlines = reference_outlines()
    for code, feature in features.items():
        assert shape(feature["geometry"]).equals(outlines[code[:5]]), code
    assert len(display.content) < len(full.content) / 3
    assert httpx.get(f"{catalog.url}/api/v1/wards", params={"geometry": "huge"}).status_code == 400


def test_documented_in_the_openapi(catalog: Loaded) -> None:
    spec = httpx.get(f"{catalog.url}/openapi.json").json()
    route = spec["paths"]["/api/v1/datasets/{dataset_id}/aggregate"]["get"]
    assert {p["name"] for p in route["parameters"]} >= {"dataset_id", "by", "sum", "format"}
    ok = route["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/WardAggregate")
    assert "text/csv" in ok
    model = spec["components"]["schemas"]["WardCount"]["properties"]
    assert {"code", "n03_code", "name_ja", "name_en", "count", "sum"} <= set(model)
    wards = spec["paths"]["/api/v1/wards"]["get"]["responses"]["200"]["content"]
    assert wards["application/geo+json"]["schema"]["$ref"].endswith("/WardCollection")

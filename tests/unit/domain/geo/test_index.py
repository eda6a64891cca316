"""Which ward a point is in: boundaries count as inside, a shared border goes to the lower code, and
the index agrees with a plain shapely ``covers`` over every GSI evacuation site."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import Point

from cityos.domain.geo.aggregate import Batch, tally
from cityos.domain.geo.index import NO_LOCATION, OUTSIDE, WardIndex
from cityos.domain.geo.wards import read_ward_folder
from tests.support.fixtures_path import OPENDATA_SAMPLES
from tests.support.wards import WARD_DIR, reference_outlines

SITES = OPENDATA_SAMPLES / "kitakyushu-401005" / "gsi-designated-emergency-evacuation-sites-401005.geojson"


@pytest.fixture(scope="module")
def index() -> WardIndex:
    return WardIndex.build(read_ward_folder(WARD_DIR))


def test_agrees_with_shapely_covers_on_every_site(index: WardIndex) -> None:
    outlines = sorted(reference_outlines().items())
    features = json.loads(SITES.read_text(encoding="utf-8"))["features"]
    lons = [f["geometry"]["coordinates"][0] for f in features]
    lats = [f["geometry"]["coordinates"][1] for f in features]
    found = index.locate(lons, lats).tolist()
    for lon, lat, at in zip(lons, lats, found, strict=True):
        expected = next((code for code, outline in outlines if outline.covers(Point(lon, lat))), None)
        assert (index.wards[at].ward.n03_code if at >= 0 else None) == expected
    assert found.count(OUTSIDE) == 1  # イオンモール直方, in 直方市


def test_a_vertex_of_the_outline_is_inside(index: WardIndex) -> None:
    tobata = next(w for w in index.wards if w.ward.n03_code == "40105")
    lon, lat = tobata.geometry.geoms[0].exterior.coords[5]
    assert index.ward_of(lon, lat) is not None


def test_a_point_on_a_shared_border_goes_to_the_lower_code(index: WardIndex) -> None:
    east, west = (next(w for w in index.wards if w.ward.n03_code == c) for c in ("40108", "40109"))
    border = east.geometry.boundary.intersection(west.geometry.boundary)
    lon, lat = border.representative_point().coords[0]
    assert east.geometry.covers(Point(lon, lat)) and west.geometry.covers(Point(lon, lat))
    assert index.ward_of(lon, lat) is east


def test_missing_coordinates_and_far_points(index: WardIndex) -> None:
    found = index.locate([None, 138.32, float("nan"), 130.874], [33.9, 34.87, 33.9, None]).tolist()
    assert found == [NO_LOCATION, OUTSIDE, NO_LOCATION, NO_LOCATION]
    assert index.locate([], []).tolist() == []


def test_tally_counts_and_sums_per_bucket(index: WardIndex) -> None:
    kokura = (130.874, 33.884)  # 小倉城
    batches: list[Batch] = [
        ([kokura[0], 138.32, None], [kokura[1], 34.87, None], [3.0, 5.0, 7.0]),
        ([kokura[0]], [kokura[1]], [None]),
    ]
    result = tally(index, batches)
    kita = [w.name_ja for w in result.wards].index("小倉北区")
    assert (result.per_ward[kita].count, result.per_ward[kita].total, result.per_ward[kita].summed) == (
        2,
        3.0,
        1,
    )
    assert (result.outside.count, result.outside.total) == (1, 5.0)
    assert (result.no_location.count, result.no_location.total) == (1, 7.0)
    assert result.records == 4
    assert sum(b.count for i, b in enumerate(result.per_ward) if i != kita) == 0

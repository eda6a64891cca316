"""Reading the N03 ward files: one ward per file (its islands unioned), codes from the file name,
every polygon checked, and a clear refusal of anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shapely.geometry import shape

from cityos.domain.geo.wards import (
    DISPLAY_TOLERANCE_DEG,
    BoundaryError,
    WardBoundary,
    check_complete,
    parse_ward,
    read_ward_file,
    read_ward_folder,
)
from tests.support.wards import WARD_DIR

# Polygons per ward file, as the fixtures README counts them.
PARTS = {"40101": 20, "40103": 76, "40105": 3, "40106": 31, "40107": 7, "40108": 1, "40109": 13}


@pytest.fixture(scope="module")
def wards() -> dict[str, WardBoundary]:
    return {w.ward.n03_code: w for w in read_ward_folder(WARD_DIR)}


def test_seven_wards_with_codes_names_and_every_part(wards: dict[str, WardBoundary]) -> None:
    assert {code: w.parts for code, w in wards.items()} == PARTS
    moji = wards["40101"]
    assert (moji.code, moji.ward.name_ja, moji.ward.name_en) == ("401013", "門司区", "Moji-ku")


def test_a_ward_is_the_union_of_its_file_and_covers_each_part(wards: dict[str, WardBoundary]) -> None:
    for code, ward in wards.items():
        features = json.loads((WARD_DIR / f"{code}.json").read_text(encoding="utf-8"))["features"]
        outline = ward.geometry
        assert outline.is_valid
        for feature in features:
            part = shape(feature["geometry"])
            assert outline.covers(part.representative_point())
        assert outline.area == pytest.approx(sum(shape(f["geometry"]).area for f in features), rel=1e-9)


def test_the_display_outline_is_lighter_and_stays_close(wards: dict[str, WardBoundary]) -> None:
    for ward in wards.values():
        full, display = ward.geometry, ward.display
        assert len(display.wkb) < len(full.wkb)
        # Within about twice the tolerance (some 20 m): the topology-preserving simplifier may keep a
        # vertex a little further out to keep a ring valid; nothing a drawn outline would show.
        assert full.hausdorff_distance(display) <= 2 * DISPLAY_TOLERANCE_DEG


def test_loading_twice_reads_the_same_bytes() -> None:
    first = read_ward_file(WARD_DIR / "40105.json")
    again = read_ward_file(WARD_DIR / "40105.json")
    assert first.source_sha256 == again.source_sha256 and first.geometry.equals(again.geometry)


def _collection(name: str, coordinates: list[list[list[float]]]) -> bytes:
    feature = {
        "type": "Feature",
        "properties": {"name": name},
        "geometry": {"type": "Polygon", "coordinates": coordinates},
    }
    return json.dumps({"type": "FeatureCollection", "features": [feature]}, ensure_ascii=False).encode()


SQUARE = [[[130.9, 33.9], [131.0, 33.9], [131.0, 34.0], [130.9, 34.0], [130.9, 33.9]]]
BOWTIE = [[[130.9, 33.9], [131.0, 34.0], [131.0, 33.9], [130.9, 34.0], [130.9, 33.9]]]


@pytest.mark.parametrize(
    ("code", "content", "reason"),
    [
        ("40102", _collection("福岡県北九州市門司区", SQUARE), "not the N03 code of a ward"),
        ("40104", _collection("福岡県北九州市門司区", SQUARE), "not the N03 code of a ward"),
        ("40101", _collection("福岡県北九州市門司区", BOWTIE), "not a valid polygon: Self-intersection"),
        ("40101", _collection("福岡県北九州市若松区", SQUARE), "not 門司区"),
        ("40101", b"{not json", "not JSON"),
        ("40101", b'{"type":"FeatureCollection","features":[]}', "with features"),
        (
            "40101",
            _collection(
                "福岡県北九州市門司区", [[[500.0, 33.9], [501.0, 33.9], [501.0, 34.0], [500.0, 33.9]]]
            ),
            "degrees",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_it_and_why(code: str, content: bytes, reason: str) -> None:
    with pytest.raises(BoundaryError, match=reason) as refused:
        parse_ward(code, content, where=f"dir/{code}.json")
    assert f"dir/{code}.json" in str(refused.value)


def test_a_missing_folder_or_ward_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BoundaryError, match=r"folder not found.*--from"):
        read_ward_folder(tmp_path / "nowhere")
    with pytest.raises(BoundaryError, match="no ward boundary files"):
        read_ward_folder(tmp_path)
    (tmp_path / "40105.json").write_bytes((WARD_DIR / "40105.json").read_bytes())
    with pytest.raises(BoundaryError, match=r"no boundary for ward.*40101"):
        read_ward_folder(tmp_path)
    tobata = read_ward_file(tmp_path / "40105.json")
    with pytest.raises(BoundaryError, match="given twice"):
        check_complete([*read_ward_folder(WARD_DIR), tobata])

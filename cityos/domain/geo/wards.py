"""Ward boundaries: read from the national boundary files (国土数値情報 N03, 行政区域), checked, and
made one shape per ward.

The files hold one ``FeatureCollection`` per ward, named by the ward's five-digit N03 code, with one
``Polygon`` feature per island or detached part and only a ``name`` property (prefecture + city +
ward). No code is in the data: the file name is the only place it appears. A ward is the union of
its file's polygons; the full-resolution shape answers point-in-polygon questions, a simplified one
is drawn on maps, where a few metres do not show but the file size does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from shapely import make_valid
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.validation import explain_validity

from cityos.domain.anonymize.places import WARDS
from cityos.domain.geo.codes import with_check_digit
from cityos.kernel.errors import CityOSError

# Credit the national boundary data's terms of use ask for, on every page or file derived from it.
CREDIT_JA = "「国土数値情報（行政区域データ）」（国土交通省）を加工して作成"
CREDIT_EN = "Processed from National Land Numerical Information (Administrative Areas), MLIT Japan"

# The wards' English names as the city writes them (romanised, with the -ku suffix).
_ENGLISH = {
    "門司区": "Moji-ku",
    "若松区": "Wakamatsu-ku",
    "戸畑区": "Tobata-ku",
    "小倉北区": "Kokurakita-ku",
    "小倉南区": "Kokuraminami-ku",
    "八幡東区": "Yahatahigashi-ku",
    "八幡西区": "Yahatanishi-ku",
}

# A boundary file is a few hundred kilobytes; anything far larger is not one, and is refused before
# it is parsed, so a wrong folder cannot stall the loader.
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_FEATURES = 10_000
# About 10 m at Kitakyushu's latitude: invisible at the zoom a whole ward fills the screen, and it
# shrinks the drawn outline several times over.
DISPLAY_TOLERANCE_DEG = 0.0001


class BoundaryError(CityOSError):
    """A boundary file or folder that cannot be loaded; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class WardName:
    code: str  # 6-digit 全国地方公共団体コード with check digit
    n03_code: str  # the same code without its check digit, as N03 writes it
    name_ja: str
    name_en: str


def known_wards() -> dict[str, WardName]:
    """The city's wards by N03 code (the boundary files' names)."""
    known: dict[str, WardName] = {}
    for ward in WARDS:
        n03 = ward.code[:5]
        assert with_check_digit(n03) == ward.code, ward
        known[n03] = WardName(code=ward.code, n03_code=n03, name_ja=ward.name, name_en=_ENGLISH[ward.name])
    return known


@dataclass(frozen=True, slots=True)
class WardBoundary:
    """One ward: its names and codes, its full-resolution outline and a simplified one for maps."""

    ward: WardName
    geometry: BaseGeometry
    display: BaseGeometry
    source_sha256: str
    parts: int  # polygons in the source file

    @property
    def code(self) -> str:
        return self.ward.code


def geojson_of(geometry: BaseGeometry) -> dict[str, Any]:
    """A GeoJSON geometry object (plain lists, so it serialises as JSON)."""
    return orjson.loads(orjson.dumps(mapping(geometry)))  # type: ignore[no-any-return]


def geometry_of(document: Mapping[str, Any]) -> BaseGeometry:
    return shape(document)


def _polygon(feature: Any, index: int, where: str) -> tuple[BaseGeometry, str]:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise BoundaryError(f"{where}: feature {index} is not a GeoJSON Feature")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise BoundaryError(f"{where}: feature {index} is not a Polygon")
    try:
        polygon = shape(geometry)
    except (ValueError, TypeError, AttributeError) as exc:
        raise BoundaryError(f"{where}: feature {index} has malformed coordinates: {exc}") from exc
    if polygon.is_empty or not polygon.is_valid:
        raise BoundaryError(f"{where}: feature {index} is not a valid polygon: {explain_validity(polygon)}")
    west, south, east, north = polygon.bounds
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise BoundaryError(f"{where}: feature {index} is not in longitude/latitude degrees")
    properties = feature.get("properties")
    name = properties.get("name") if isinstance(properties, dict) else None
    return polygon, name if isinstance(name, str) else ""


def parse_ward(n03_code: str, content: bytes, *, where: str) -> WardBoundary:
    """One ward from the bytes of its N03 file (``where`` names it in errors). Pure."""
    ward = known_wards().get(n03_code)
    if ward is None:
        raise BoundaryError(
            f"{where}: {n03_code!r} is not the N03 code of a ward of the city "
            f"(known: {', '.join(sorted(known_wards()))})"
        )
    if len(content) > MAX_FILE_BYTES:
        raise BoundaryError(f"{where}: {len(content)} bytes, larger than a boundary file can be")
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise BoundaryError(f"{where}: not JSON: {exc}") from exc
    features = document.get("features") if isinstance(document, dict) else None
    if document.get("type") != "FeatureCollection" or not isinstance(features, list) or not features:
        raise BoundaryError(f"{where}: not a GeoJSON FeatureCollection with features")
    if len(features) > MAX_FEATURES:
        raise BoundaryError(f"{where}: {len(features)} features, more than {MAX_FEATURES}")
    polygons = []
    for index, feature in enumerate(features):
        polygon, name = _polygon(feature, index, where)
        if not name.endswith(ward.name_ja):
            raise BoundaryError(f"{where}: feature {index} is named {name!r}, not {ward.name_ja}")
        polygons.append(polygon)
    geometry = unary_union(polygons)
    if not geometry.is_valid:  # a union of valid polygons is valid; kept as a guard
        geometry = make_valid(geometry)
    # Six decimals (about 0.1 m) are more than a drawn outline can show, and halve its size.
    display = shapely.transform(
        geometry.simplify(DISPLAY_TOLERANCE_DEG, preserve_topology=True), lambda xy: np.round(xy, 6)
    )
    return WardBoundary(
        ward=ward,
        geometry=geometry,
        display=display,
        source_sha256=hashlib.sha256(content).hexdigest(),
        parts=len(polygons),
    )


def ward_files(folder: Path) -> list[Path]:
    """The boundary files of a folder (``<N03 code>.json``), in code order."""
    if not folder.is_dir():
        raise BoundaryError(
            f"ward boundary folder not found: {folder} (set CITYOS_WARD_BOUNDARIES_DIR or pass --from)"
        )
    files = sorted(folder.glob("*.json"))
    if not files:
        raise BoundaryError(f"no ward boundary files (<N03 code>.json) in {folder}")
    return files


def read_ward_file(path: Path) -> WardBoundary:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BoundaryError(f"{path}: {size} bytes, larger than a boundary file can be")
        content = path.read_bytes()
    except OSError as exc:
        raise BoundaryError(f"{path}: cannot read: {exc}") from exc
    return parse_ward(path.stem, content, where=str(path))


def check_complete(wards: Sequence[WardBoundary]) -> None:
    """Every ward of the city once: a missing ward would silently count its points as outside."""
    codes = [w.ward.n03_code for w in wards]
    missing = sorted(set(known_wards()) - set(codes))
    if missing:
        raise BoundaryError(f"no boundary for ward(s) {', '.join(missing)}")
    if len(codes) != len(set(codes)):
        raise BoundaryError("a ward's boundary is given twice")


def read_ward_folder(folder: Path) -> list[WardBoundary]:
    """Every ward of the city from a folder of N03 files, all checked before any is used: a bad
    file loads nothing rather than leaving a city with a ward missing."""
    wards = [read_ward_file(path) for path in ward_files(folder)]
    check_complete(wards)
    return wards

"""Real GIS clients against the OGC API of a real publish process (``cityos serve publish``).

GDAL's OAPIF driver (``ogrinfo``, ``ogr2ogr``) and OWSLib read the collections and features of a
catalog holding Yaizu's 82 real AED rows, Kitakyushu's GSI evacuation sites and two hidden
datasets. What they read is compared with the records API: counts, and every coordinate. The
GeoPackage GDAL writes is read back with sqlite3 and parsed here, so the check does not trust
GDAL to read its own output.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import needs
from tests.support.publish import (
    HIDDEN_IDS,
    SITES_ID,
    events,
    hidden_rows,
    kitakyushu_site_rows,
    load,
    publish_process,
    schemas_with_sites,
    yaizu_aed_rows,
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        needs.unavailable(f"{name} not installed (Debian package gdal-bin)")
    return path


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The publish service in its own process over a filled catalog; its base URL."""
    schemas = schemas_with_sites(tmp_path)
    batch = (
        events("aed", yaizu_aed_rows(schemas))
        + events(SITES_ID, kitakyushu_site_rows(), start=10_000)
        + hidden_rows()
    )
    load(database_url, schemas, batch).dispose()
    # GIS clients page through whole collections: many requests in a few seconds.
    with publish_process(
        database_url, tmp_path / "publish.log", CITYOS_PUBLISH_ANONYMOUS_RATE_PER_MINUTE="100000"
    ) as url:
        yield url


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
    return done.stdout


def _records(url: str, dataset_id: str, **params: str) -> list[dict[str, Any]]:
    """Every GeoJSON feature the records API answers for ``params``, all pages (Link: next)."""
    features: list[dict[str, Any]] = []
    next_url: str | None = f"{url}/api/v1/datasets/{dataset_id}/records"
    query: dict[str, str] | None = {**params, "format": "geojson", "limit": "25"}
    while next_url is not None:
        answer = httpx.get(next_url, params=query, timeout=30)
        assert answer.status_code == 200, answer.text
        features += answer.json()["features"]
        next_url = answer.links.get("next", {}).get("url")
        query = None  # the next link carries every parameter
    return features


def _points(features: list[dict[str, Any]]) -> dict[str, tuple[float, float] | None]:
    return {
        str(f["properties"]["NO"]): None if f["geometry"] is None else tuple(f["geometry"]["coordinates"])
        for f in features
    }


# Envelope bytes after the 8-byte GeoPackage header, by the envelope indicator (flags bits 1-3).
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _gpkg_point(blob: bytes | None) -> tuple[float, float] | None:
    """(x, y) of a GeoPackage point geometry blob: header, envelope, then WKB (OGC 12-128r18 §2.1.3)."""
    if blob is None:
        return None
    assert blob[:2] == b"GP", blob[:8]
    flags = blob[3]
    if flags & 0b10000:  # the empty-geometry flag
        return None
    wkb = blob[8 + _ENVELOPE_BYTES[(flags >> 1) & 0b111] :]
    order = "<" if wkb[0] == 1 else ">"
    (kind,) = struct.unpack(f"{order}I", wkb[1:5])
    assert kind % 1000 == 1, f"not a point: WKB type {kind}"
    x, y = struct.unpack(f"{order}dd", wkb[5:21])
    return x, y


def test_gdal_lists_the_collections_and_copies_every_aed_feature(server: str, tmp_path: Path) -> None:
    ogrinfo, ogr2ogr = _tool("ogrinfo"), _tool("ogr2ogr")
    source = f"OAPIF:{server}/ogc"
    listed = _run(ogrinfo, "-ro", "-q", source)
    layers = {line.split(":", 1)[1].split("(")[0].strip() for line in listed.splitlines() if ":" in line}
    expected = {c["id"] for c in httpx.get(f"{server}/ogc/collections").json()["collections"]}
    assert layers == expected
    assert {"aed", SITES_ID} <= layers and not layers & set(HIDDEN_IDS)

    target = tmp_path / "aed.gpkg"
    _run(ogr2ogr, "-f", "GPKG", str(target), source, "aed")
    with sqlite3.connect(target) as gpkg:
        (table, srs), *_ = gpkg.execute(
            "SELECT c.table_name, g.srs_id FROM gpkg_contents c JOIN gpkg_geometry_columns g USING (table_name)"
        ).fetchall()
        geometry = gpkg.execute("SELECT column_name FROM gpkg_geometry_columns").fetchone()[0]
        rows = gpkg.execute(f'SELECT "NO", "{geometry}" FROM "{table}"').fetchall()
    assert table == "aed" and srs == 4326
    written = {str(no): _gpkg_point(blob) for no, blob in rows}
    published = _points(_records(server, "aed"))
    assert len(rows) == len(published) == len(yaizu_aed_rows(tmp_path / "schemas")) == 82
    assert written == published  # every record, every coordinate (lon, lat), exactly


@pytest.mark.parametrize(
    "box",
    [
        (138.25, 34.85, 138.30, 34.90),
        (138.30, 34.80, 138.35, 34.88),
        (138.0, 34.0, 139.0, 35.0),  # the whole city
        (130.0, 33.0, 131.0, 34.0),  # Kitakyushu: no Yaizu AED there
    ],
)
def test_gdal_spatial_filter_counts_what_the_records_api_counts(server: str, box: tuple[float, ...]) -> None:
    ogrinfo = _tool("ogrinfo")
    text = _run(ogrinfo, "-ro", "-so", "-spat", *map(str, box), f"OAPIF:{server}/ogc", "aed")
    counted = int(next(line for line in text.splitlines() if line.startswith("Feature Count:")).split(":")[1])
    assert counted == len(_records(server, "aed", bbox=",".join(map(str, box))))


def test_owslib_reads_the_collections_and_every_feature(server: str) -> None:
    from owslib.ogcapi.features import Features  # type: ignore[import-untyped]

    api = Features(f"{server}/ogc")
    assert api.conformance()["conformsTo"]
    ids = {c["id"] for c in api.collections()["collections"]}
    assert {"aed", SITES_ID} <= ids and not ids & set(HIDDEN_IDS)
    assert api.collection("aed")["extent"]["spatial"]["bbox"]
    features: list[dict[str, Any]] = []
    while True:
        page = api.collection_items("aed", limit=20, offset=len(features))
        features += page["features"]
        if len(features) >= page["numberMatched"] or not page["features"]:
            break
    assert _points(features) == _points(_records(server, "aed"))
    boxed = api.collection_items("aed", bbox=[138.25, 34.85, 138.30, 34.90], limit=1000)
    assert boxed["numberMatched"] == len(_records(server, "aed", bbox="138.25,34.85,138.3,34.9")) > 0
    one = api.collection_item("aed", str(features[0]["id"]))
    assert one["id"] == features[0]["id"] and one["geometry"] == features[0]["geometry"]
    sites = api.collection_items(SITES_ID, limit=5)
    assert sites["numberReturned"] == 5 and sites["numberMatched"] == len(kitakyushu_site_rows())

"""The wards' boundaries for tests: the shared N03 fixture files, stored in a catalog the way
``cityos geo load-wards`` stores them, and read independently with shapely for expected figures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from sqlalchemy import Engine

from cityos.domain.geo.store import save_ward
from cityos.domain.geo.wards import read_ward_folder
from cityos.kernel.db.engine import session_factory
from tests.support.fixtures_path import FIXTURES

WARD_DIR: Path = FIXTURES / "opendata-jp" / "boundaries" / "kitakyushu-wards-n03-2022"


def load_wards(engine: Engine, folder: Path = WARD_DIR) -> None:
    """Store every ward of ``folder`` in the (migrated) catalog behind ``engine``."""
    wards = read_ward_folder(folder)
    with session_factory(engine)() as session, session.begin():
        for ward in wards:
            save_ward(session, ward, now=datetime.now(UTC))


def reference_outlines(folder: Path = WARD_DIR) -> dict[str, BaseGeometry]:
    """Each ward's outline by N03 code, read straight from the files with shapely alone: the
    independent side that the platform's figures are compared with."""
    outlines: dict[str, BaseGeometry] = {}
    for path in sorted(folder.glob("*.json")):
        collection = json.loads(path.read_text(encoding="utf-8"))
        outlines[path.stem] = unary_union([shape(f["geometry"]) for f in collection["features"]])
    return outlines

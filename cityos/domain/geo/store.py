"""Ward boundaries in the catalog database: stored by ``cityos geo load-wards``, read back as one
``WardIndex`` per process and database, rebuilt only when the table changes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from cityos.domain.geo.index import WardIndex
from cityos.domain.geo.wards import WardBoundary, WardName, geojson_of, geometry_of
from cityos.kernel.db.geo_models import WardBoundaryRow

SaveOutcome = Literal["added", "updated", "unchanged"]


def save_ward(session: Session, ward: WardBoundary, *, now: datetime) -> SaveOutcome:
    """Insert or replace one ward's row; a row from the same file bytes is left as it is."""
    row = session.get(WardBoundaryRow, ward.code)
    if row is not None and row.source_sha256 == ward.source_sha256:
        return "unchanged"
    values = {
        "n03_code": ward.ward.n03_code,
        "name_ja": ward.ward.name_ja,
        "name_en": ward.ward.name_en,
        "geometry": geojson_of(ward.geometry),
        "display_geometry": geojson_of(ward.display),
        "parts": ward.parts,
        "source_sha256": ward.source_sha256,
        "loaded_at": now,
    }
    if row is None:
        session.add(WardBoundaryRow(code=ward.code, **values))
        return "added"
    for name, value in values.items():
        setattr(row, name, value)
    return "updated"


@dataclass(frozen=True, slots=True)
class StoredWard:
    """A ward as maps and listings need it: names, codes and one of its outlines as GeoJSON."""

    ward: WardName
    geometry: dict[str, object]


def stored_wards(bind: Session | Connection, *, display: bool = True) -> list[StoredWard]:
    """Every stored ward in code order, with its simplified (``display``) or full outline."""
    column = WardBoundaryRow.display_geometry if display else WardBoundaryRow.geometry
    statement = select(
        WardBoundaryRow.code,
        WardBoundaryRow.n03_code,
        WardBoundaryRow.name_ja,
        WardBoundaryRow.name_en,
        column,
    ).order_by(WardBoundaryRow.code)
    return [
        StoredWard(WardName(code=c, n03_code=n, name_ja=ja, name_en=en), geometry=g)
        for c, n, ja, en, g in bind.execute(statement)
    ]


def boundaries_version(bind: Session | Connection) -> tuple[int, datetime | None]:
    """What changes whenever the stored wards change: how many there are and their last load."""
    row = bind.execute(select(func.count(), func.max(WardBoundaryRow.loaded_at))).one()
    return int(row[0]), row[1]


class WardIndexCache:
    """One ``WardIndex`` per database, built from the table once and again only when it changed:
    building it parses megabytes of GeoJSON, checking it is one small query."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[int, datetime | None], WardIndex]] = {}

    def index(self, session: Session, database: str) -> WardIndex:
        version = boundaries_version(session)
        with self._lock:
            entry = self._entries.get(database)
        if entry is not None and entry[0] == version:
            return entry[1]
        index = WardIndex.build(_boundaries(session))
        with self._lock:
            self._entries[database] = (version, index)
        return index


def _boundaries(session: Session) -> Sequence[WardBoundary]:
    rows = session.execute(select(WardBoundaryRow).order_by(WardBoundaryRow.code)).scalars()
    return [
        WardBoundary(
            ward=WardName(code=r.code, n03_code=r.n03_code, name_ja=r.name_ja, name_en=r.name_en),
            geometry=geometry_of(r.geometry),
            display=geometry_of(r.display_geometry),
            source_sha256=r.source_sha256,
            parts=r.parts,
        )
        for r in rows
    ]

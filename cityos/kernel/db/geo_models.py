"""Tables of the city's geography: ward boundaries, loaded by ``cityos geo load-wards``.

Importing Base from cityos.kernel.db.models registers them on its metadata.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cityos.kernel.db.models import Base, JsonDoc, UTCDateTime

__all__ = ["Base", "WardBoundaryRow"]


class WardBoundaryRow(Base):
    """One ward's outline, as GeoJSON geometry: at full resolution (point-in-polygon) and simplified
    (maps). ``source_sha256`` is the digest of the file it came from, so loading it again is a no-op."""

    __tablename__ = "ward_boundaries"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)  # 全国地方公共団体コード, check digit
    n03_code: Mapped[str] = mapped_column(String(5), unique=True)
    name_ja: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    geometry: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    display_geometry: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    parts: Mapped[int] = mapped_column(Integer)
    source_sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime())

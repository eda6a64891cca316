"""Tables of the publish area. Importing Base from cityos.db.models registers them on its metadata."""

from __future__ import annotations

from cityos.db.models import Base

__all__ = ["Base"]

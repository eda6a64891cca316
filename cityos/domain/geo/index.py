"""Which ward a point lies in: an STRtree over the wards' full-resolution outlines.

A point on a boundary counts as inside (``covers``, not ``contains``): a site on the ward line or on
the coast line belongs to the city. A point on the line between two wards goes to the ward with the
lower code, so every point is counted once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree

from cityos.domain.geo.wards import WardBoundary

OUTSIDE = -1  # inside no ward
NO_LOCATION = -2  # no coordinates at all


@dataclass(frozen=True)
class WardIndex:
    wards: tuple[WardBoundary, ...]  # in code order
    tree: STRtree

    @classmethod
    def build(cls, wards: Sequence[WardBoundary]) -> WardIndex:
        ordered = tuple(sorted(wards, key=lambda w: w.code))
        for ward in ordered:
            shapely.prepare(ward.geometry)
        return cls(wards=ordered, tree=STRtree([w.geometry for w in ordered]))

    def locate(self, lons: Sequence[float | None], lats: Sequence[float | None]) -> npt.NDArray[np.int64]:
        """For each point, the position of its ward in ``wards``, ``OUTSIDE`` or ``NO_LOCATION``.

        One bulk tree query for the whole batch: per-point Python work would dominate at 10,000s.
        """
        count = len(lons)
        result = np.full(count, OUTSIDE, dtype=np.int64)
        x = np.array([np.nan if v is None else v for v in lons], dtype=np.float64)
        y = np.array([np.nan if v is None else v for v in lats], dtype=np.float64)
        missing = ~(np.isfinite(x) & np.isfinite(y))
        result[missing] = NO_LOCATION
        located = np.flatnonzero(~missing)
        if located.size == 0 or not self.wards:
            return result
        points = shapely.points(x[located], y[located])
        # The tree answers by bounding box only (cheap); the exact test then runs per ward with its
        # prepared outline against all its candidate points at once, many times faster than the
        # tree's own predicate, which prepares the points instead of the polygons.
        point_at, ward_at = self.tree.query(points)
        found = np.full(located.size, OUTSIDE, dtype=np.int64)
        # Highest code first, so that on a shared border the lowest code is written last and wins.
        for position in range(len(self.wards) - 1, -1, -1):
            candidates = point_at[ward_at == position]
            if candidates.size:
                inside = shapely.covers(self.wards[position].geometry, points[candidates])
                found[candidates[inside]] = position
        result[located] = found
        return result

    def ward_of(self, lon: float, lat: float) -> WardBoundary | None:
        found = int(self.locate([lon], [lat])[0])
        return self.wards[found] if found >= 0 else None

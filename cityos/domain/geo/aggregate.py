"""Per-ward counts (and sums) of a dataset's live records: each record's position against the wards.

``tally`` is pure (batches of positions and values in, one ``WardTally`` out); ``record_batches``
reads the batches from the catalog with the same conditions as the records API.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.geo.index import NO_LOCATION, OUTSIDE, WardIndex
from cityos.domain.geo.wards import WardName
from cityos.domain.readmodel import queries
from cityos.domain.readmodel.query import RecordQuery
from cityos.kernel.db.models import Record

BATCH_ROWS = 5_000

# One batch: longitudes, latitudes, and (with a sum) the summed field's value per record.
Batch = tuple[Sequence[float | None], Sequence[float | None], Sequence[float | None] | None]


@dataclass
class Bucket:
    count: int = 0
    total: float = 0.0
    summed: int = 0  # records whose field held a number (the others add nothing to ``total``)


@dataclass
class WardTally:
    wards: tuple[WardName, ...]
    per_ward: list[Bucket]
    outside: Bucket = field(default_factory=Bucket)
    no_location: Bucket = field(default_factory=Bucket)

    @property
    def records(self) -> int:
        return sum(b.count for b in self.per_ward) + self.outside.count + self.no_location.count


def tally(index: WardIndex, batches: Iterable[Batch]) -> WardTally:
    wards = len(index.wards)
    # Slots: 0 no location, 1 outside, 2.. the wards in order (``locate`` answers -2, -1, 0..).
    counts = np.zeros(wards + 2, dtype=np.int64)
    totals = np.zeros(wards + 2, dtype=np.float64)
    summed = np.zeros(wards + 2, dtype=np.int64)
    for lons, lats, values in batches:
        slots = index.locate(lons, lats) - NO_LOCATION
        counts += np.bincount(slots, minlength=wards + 2)
        if values is not None:
            numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            present = ~np.isnan(numbers)
            totals += np.bincount(slots[present], weights=numbers[present], minlength=wards + 2)
            summed += np.bincount(slots[present], minlength=wards + 2)

    def bucket(slot: int) -> Bucket:
        return Bucket(count=int(counts[slot]), total=float(totals[slot]), summed=int(summed[slot]))

    return WardTally(
        wards=tuple(w.ward for w in index.wards),
        per_ward=[bucket(OUTSIDE - NO_LOCATION + 1 + i) for i in range(wards)],
        outside=bucket(OUTSIDE - NO_LOCATION),
        no_location=bucket(0),
    )


def _number(document: bytes, name: str) -> float | None:
    value = orjson.loads(document).get(name)
    # A boolean is an int in Python but never a quantity.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def record_batches(
    session: Session, *, dataset_id: str, query: RecordQuery, sum_field: str | None
) -> Iterator[Batch]:
    """Positions (and the ``sum_field`` value) of every live record matching ``query``, in batches."""
    if sum_field is not None:
        for rows in queries.stream_record_rows(
            session, dataset_id=dataset_id, query=query, batch_size=BATCH_ROWS
        ):
            yield [r[3] for r in rows], [r[2] for r in rows], [_number(r[1], sum_field) for r in rows]
        return
    dialect = session.get_bind().dialect.name
    # Only the two coordinate columns: a count needs no document.
    statement = (
        select(Record.longitude, Record.latitude)
        .where(*queries.record_conditions(dialect, dataset_id, query))
        .execution_options(stream_results=True)
    )
    result = session.connection().execute(statement)
    try:
        while positions := result.fetchmany(BATCH_ROWS):
            yield [r[0] for r in positions], [r[1] for r in positions], None
    finally:
        result.close()

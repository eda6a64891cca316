"""Where a records page is rendered: on the event loop, or in a worker thread.

Handing a page to a worker thread and its answer back cost about as much CPU as rendering a small
page of a city-sized dataset, and on SQLite a thread buys no waiting time to overlap: the database is
a local file, its work is CPU. So a small page of a small dataset on SQLite is rendered in place.
Everything that could hold the event loop long enough to be felt by other callers (a large page, a
text search over a large dataset, any network round trip to PostgreSQL) still goes to a thread, so
health probes and other requests keep answering while it runs.
"""

from __future__ import annotations

import threading

# Beyond these, a page (or the scan behind a filter, count or sort) could take tens of milliseconds.
INLINE_MAX_RECORDS = 5_000
INLINE_MAX_LIMIT = 1_000


def renders_inline(*, dialect: str, known_records: int | None, limit: int) -> bool:
    """Whether a page of ``limit`` records of a dataset known to hold ``known_records`` (None: not yet
    seen by this process) is rendered on the event loop. Pure."""
    return (
        dialect == "sqlite"
        and known_records is not None
        and known_records <= INLINE_MAX_RECORDS
        and limit <= INLINE_MAX_LIMIT
    )


class DatasetSizes:
    """Each dataset's record count as last rendered by this process: what ``renders_inline`` needs
    before the request's own read. A dataset's first page here always goes to a thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, int] = {}

    def known(self, dataset_id: str) -> int | None:
        return self._records.get(dataset_id)

    def seen(self, dataset_id: str, records: int) -> None:
        # Only datasets found in the catalog are recorded, so this holds one entry per dataset.
        with self._lock:
            self._records[dataset_id] = records

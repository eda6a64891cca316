"""Rendered parts of the dataset page kept between requests, one set per app.

Most of a dataset's page changes only when its metadata, its schema or the caller's field access
does (the quality rating, the schema table); the map's per-ward table changes only when a record or
the ward boundaries do; the usage line only when usage counts are flushed. Rendering them again on
every view cost several times the page's own query, so each is rendered once under a key naming
everything it shows and reused until that key changes. The records preview is never kept: it is
live.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from starlette.applications import Starlette

V = TypeVar("V")

# Entries per kind of part: a key per dataset × language × distinct field grant, so a few hundred
# cover a city's catalog; the oldest unused go first beyond that.
MAX_ENTRIES: Final = 512


class PartCache(Generic[V]):
    """A bounded least-recently-used map. Thread-safe: sync handlers run in a thread pool."""

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        # Two requests may both make a missing entry: the same value, so the later simply wins.
        found = self.get(key)
        if found is None:
            found = make()
            self.put(key, found)
        return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@dataclass
class DatasetPageParts:
    """The dataset page's caches of one app (two apps in one process never share them)."""

    facts: PartCache[Any] = field(default_factory=PartCache)
    maps: PartCache[Any] = field(default_factory=PartCache)
    usage: PartCache[Any] = field(default_factory=PartCache)


_STATE_KEY: Final = "dataset_page_parts"
_CREATING: Final = threading.Lock()


def parts_of(app: Starlette) -> DatasetPageParts:
    """The app's dataset page caches, made on first use."""
    parts = getattr(app.state, _STATE_KEY, None)
    if parts is None:
        with _CREATING:
            parts = getattr(app.state, _STATE_KEY, None)
            if parts is None:
                parts = DatasetPageParts()
                setattr(app.state, _STATE_KEY, parts)
    assert isinstance(parts, DatasetPageParts)
    return parts

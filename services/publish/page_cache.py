"""A short-lived cache of rendered record pages: the same page is rendered once per interval.

A records page is a pure function of the catalog's state, the dataset, the caller's ``ReadAccess``,
the representation chosen, the query string and the base URL its links point to (taken from the
request when none is configured, so a page rendered for one host is never served to another); the catalog keeps no change counter that would
catch every change (an out-of-order update moves neither ``record_count`` nor ``last_record_at``),
so freshness is kept by age instead: an entry is served for at most ``ttl_s`` after it was rendered
(0.2 s by default), then rendered anew. A change is therefore visible within ``ttl_s`` -- well
inside the platform's promise of one second. ``ttl_s`` 0 turns the cache off.

Entries made for a public dataset are keyed without a caller (every caller's access to a public
dataset is ``FULL``, decided without a lookup or an audit), so the handler can answer them before
any database work. Every other entry is keyed by the ``ReadAccess`` that ``read_access`` granted for
this very request: a department holding a field-subset grant can never be served a page rendered
for full access. Memory is bounded by total body bytes (least recently used first out).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime

from starlette.responses import Response

# A page bigger than this (e.g. ``limit=10000``) is rendered every time rather than crowding out
# the many small pages clients actually repeat.
MAX_ENTRY_BYTES = 1 << 20
MAX_TOTAL_BYTES = 32 << 20

PageKey = tuple[Hashable, ...]


RawHeaders = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class CachedPage:
    """Everything a records answer needs besides the request's own conditional headers.

    The 200's header lines are kept encoded, as Starlette would encode them for this body, once per
    rendering.
    """

    dataset_id: str
    format: str
    body: bytes
    etag: str
    last_modified: datetime | None
    rows: int
    expires: float
    ok_headers: RawHeaders  # the 200
    # A 304 by If-None-Match carries every header of the 200 but its body's; one by
    # If-Modified-Since is decided before any rendering, so it carries only the validators known
    # then (Vary, Cache-Control, Last-Modified). Both are rare: encoded only when sent.
    headers: dict[str, str]
    early: dict[str, str]

    def not_modified_headers(self) -> RawHeaders:
        return Response(status_code=304, headers=self.headers).raw_headers

    def early_headers(self) -> RawHeaders:
        return Response(status_code=304, headers=self.early).raw_headers


class PreparedResponse(Response):
    """A response whose header lines were encoded once, for a cached page."""

    def __init__(self, status_code: int, raw_headers: RawHeaders, body: bytes = b"") -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        # A copy: middlewares may add lines to the list they are sent (CORS does, in place).
        self.raw_headers = list(raw_headers)


def public_key(base_url: str, dataset_id: str, response_format: str, query_string: bytes) -> PageKey:
    return ("public", base_url, dataset_id, response_format, query_string)


def access_key(
    base_url: str, dataset_id: str, fields: frozenset[str] | None, response_format: str, query_string: bytes
) -> PageKey:
    return ("access", base_url, dataset_id, fields, response_format, query_string)


class PageCache:
    """Thread-safe: the event loop reads it, handler threads fill it."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_total_bytes = max_total_bytes
        self.max_entry_bytes = max_entry_bytes
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[PageKey, CachedPage] = OrderedDict()
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def expiry(self) -> float:
        """When a page rendered now must stop being served."""
        return self.clock() + self.ttl_s

    def get(self, key: PageKey) -> CachedPage | None:
        if not self._entries:
            return None
        now = self.clock()
        with self._lock:
            page = self._entries.get(key)
            if page is None:
                return None
            if page.expires <= now:
                self._drop(key, page)
                return None
            self._entries.move_to_end(key)
            return page

    def put(self, key: PageKey, page: CachedPage) -> None:
        size = len(page.body)
        if not self.enabled or size > self.max_entry_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._entries[key] = page
            self._bytes += size
            while self._bytes > self.max_total_bytes:
                oldest_key, oldest = next(iter(self._entries.items()))
                self._drop(oldest_key, oldest)

    def _drop(self, key: PageKey, page: CachedPage) -> None:
        # Called with the lock held.
        if self._entries.pop(key, None) is not None:
            self._bytes -= len(page.body)

    def __len__(self) -> int:
        return len(self._entries)

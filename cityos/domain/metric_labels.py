"""Dataset label values for Prometheus metrics: a public dataset's id, every other dataset folded.

``/metrics`` is read by monitoring without a credential, so a label must never name what only some
callers may know exists: an internal or personal dataset, or a partner release (whose id names its
applicant's release). Those all count under one value, ``non-public``; the per-dataset figures of
non-public data stay in the authenticated usage report and the audit log. Unknown datasets fold too:
a dataset is named only once the catalog says it is public.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.kernel.db.models import Dataset

NON_PUBLIC = "non-public"
PUBLIC = "public"


def dataset_label(dataset_id: str, classification: str | None) -> str:
    """The label value for ``dataset_id``: its id when public, else ``NON_PUBLIC``."""
    return dataset_id if classification == PUBLIC else NON_PUBLIC


class PublicDatasetLabels:
    """``dataset_label`` with the catalog's classifications, reloaded at most every ``ttl_s``.

    One small query per interval instead of one per request: a dataset turned public is named within
    ``ttl_s``, and one that stops being public is folded within ``ttl_s``. If the database cannot be
    read, the last known set stays (an empty one at start: everything folds).
    """

    def __init__(
        self,
        sessions: Callable[[], Session],
        *,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._public: frozenset[str] = frozenset()
        self._loaded_at: float | None = None

    def __call__(self, dataset_id: str) -> str:
        return dataset_id if dataset_id in self._current() else NON_PUBLIC

    def _current(self) -> frozenset[str]:
        now = self._clock()
        loaded = self._loaded_at
        if loaded is not None and now - loaded < self._ttl_s:
            return self._public
        with self._lock:
            if self._loaded_at is None or now - self._loaded_at >= self._ttl_s:
                self._loaded_at = now
                self._public = self._load()
            return self._public

    def _load(self) -> frozenset[str]:
        try:
            with self._sessions() as session:
                return frozenset(session.scalars(select(Dataset.id).where(Dataset.classification == PUBLIC)))
        except Exception:  # keep serving metrics with what was known; folding errs on the safe side
            return self._public

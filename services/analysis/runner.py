"""One snapshot run: the current state of every dataset of the catalog, each in a read of its own.

A dataset that cannot be written (no schema yet, a value that escaped its schema, a full disk) is
logged and counted, and the others are still written; its previous file stays as it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from cityos.domain.analysis.snapshots import PropertyOrder, SnapshotResult, dataset_ids, write_snapshot
from cityos.kernel.db.models import Dataset
from cityos.kernel.timeutil import utc_now

log = logging.getLogger("cityos.analysis")


@dataclass(slots=True)
class RunReport:
    results: list[SnapshotResult] = field(default_factory=list)
    # Failed dataset id -> its classification (for the metrics' folding); never logged for non-public.
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def run_once(
    sessions: Callable[[], Session],
    root: Path,
    *,
    property_order: PropertyOrder | None = None,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> RunReport:
    """Write today's (JST) snapshot of every dataset under ``root`` (until ``stop`` is set: a
    shutdown waits for the dataset being written, not for the whole run)."""
    started = time.perf_counter()
    report = RunReport()
    moment = now or utc_now()
    with sessions() as session:
        ids = dataset_ids(session)
    for dataset_id in ids:
        if stop is not None and stop.is_set():
            break
        with sessions() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:  # removed since the list was read
                continue
            classification = dataset.classification
            try:
                report.results.append(
                    write_snapshot(
                        session, dataset_id=dataset_id, root=root, now=moment, property_order=property_order
                    )
                )
            except Exception:
                # The service keeps running for the other datasets; the traceback is for operators,
                # who may read every dataset's name.
                log.exception("snapshot of %s failed", dataset_id)
                report.failed[dataset_id] = classification
    report.seconds = time.perf_counter() - started
    return report

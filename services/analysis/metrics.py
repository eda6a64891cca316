"""Prometheus metrics of the analysis service (snapshot writer).

``/metrics`` is read without a credential, so the ``dataset`` label names a public dataset only;
every other dataset (internal, personal, partner) is counted under ``non-public``, and the figures
of a run's last snapshots are summed per label value, never one such dataset's alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cityos.domain.analysis.snapshots import SnapshotResult
from cityos.domain.metric_labels import dataset_label

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def totals_by_label(
    results: Iterable[SnapshotResult], label: Callable[[str, str], str] = dataset_label
) -> dict[str, tuple[int, int]]:
    """(rows, bytes) of a run's snapshots per label value: public datasets by id, the rest summed."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for result in results:
        entry = totals[label(result.dataset_id, result.classification)]
        entry[0] += result.rows
        entry[1] += result.bytes
    return {name: (rows, size) for name, (rows, size) in totals.items()}


class AnalysisMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "cityos_analysis_snapshot_runs",
            "Snapshot runs (every dataset once), by outcome: success, or failure when any dataset "
            "could not be written.",
            ["outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "cityos_analysis_snapshot_failures",
            "Datasets whose snapshot could not be written, by dataset (non-public folded).",
            ["dataset"],
            registry=registry,
        )
        self.rows = Gauge(
            "cityos_analysis_snapshot_rows",
            "Rows in the last run's snapshots, by dataset (non-public summed).",
            ["dataset"],
            registry=registry,
        )
        self.size = Gauge(
            "cityos_analysis_snapshot_size_bytes",
            "Parquet bytes of the last run's snapshots, by dataset (non-public summed).",
            ["dataset"],
            registry=registry,
        )
        self.rows_written = Counter(
            "cityos_analysis_snapshot_rows_written",
            "Rows written into snapshots since start.",
            registry=registry,
        )
        self.bytes_written = Counter(
            "cityos_analysis_snapshot_written_bytes",
            "Parquet bytes written since start.",
            registry=registry,
        )
        self.duration = Histogram(
            "cityos_analysis_snapshot_run_duration_seconds",
            "Time of one snapshot run over every dataset.",
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "cityos_analysis_snapshot_last_success_timestamp_seconds",
            "Unix time at which the last fully successful run ended (0: none yet).",
            registry=registry,
        )
        for outcome in ("success", "failure"):
            self.runs.labels(outcome)

    def record_run(
        self,
        results: Iterable[SnapshotResult],
        failed: Mapping[str, str],
        *,
        seconds: float,
        ended_at: float,
    ) -> None:
        """A finished run: ``failed`` maps each failed dataset to its classification."""
        kept = list(results)
        for name, (rows, size) in totals_by_label(kept).items():
            self.rows.labels(name).set(rows)
            self.size.labels(name).set(size)
        self.rows_written.inc(sum(result.rows for result in kept))
        self.bytes_written.inc(sum(result.bytes for result in kept))
        for dataset_id, classification in failed.items():
            self.failures.labels(dataset_label(dataset_id, classification)).inc()
        self.duration.observe(seconds)
        self.runs.labels("failure" if failed else "success").inc()
        if not failed:
            self.last_success.set(ended_at)

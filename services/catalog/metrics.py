"""Prometheus metrics of the catalog consumer.

Names follow ``cityos_<service>_<noun>_<unit>``; outcome takes the fixed values below, and dataset
names public datasets only: every other one counts as ``non-public`` (``/metrics`` answers without a
credential; see ``cityos.domain.metric_labels``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cityos.domain.metric_labels import NON_PUBLIC

_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

CATALOG_OUTCOMES = ("applied", "stale", "duplicate", "deleted", "undecodable", "rejected", "refused")


class DatasetCounter:
    """A counter labelled by dataset whose ``labels(dataset)`` names public datasets only."""

    def __init__(self, counter: Counter, dataset_label: Callable[[str], str]) -> None:
        self.counter = counter
        self.dataset_label = dataset_label

    def labels(self, dataset: str) -> Any:
        return self.counter.labels(self.dataset_label(dataset))


def _fold_everything(_: str) -> str:
    return NON_PUBLIC


class CatalogMetrics:
    """Counters of the catalog consumer. ``dataset_label``: a dataset's label value (default: every
    dataset folded; the service passes ``PublicDatasetLabels`` over the catalog)."""

    def __init__(
        self, registry: CollectorRegistry, dataset_label: Callable[[str], str] = _fold_everything
    ) -> None:
        self.events = Counter(
            "cityos_catalog_events",
            "Validated events consumed, by outcome (applied, stale, duplicate, deleted, undecodable, rejected, refused).",
            ["outcome"],
            registry=registry,
        )
        self.upserted = DatasetCounter(
            Counter(
                "cityos_catalog_records_upserted",
                "Record versions written to the catalog, by public dataset (non-public ones as one).",
                ["dataset"],
                registry=registry,
            ),
            dataset_label,
        )
        self.batch_seconds = Histogram(
            "cityos_catalog_batch_duration_seconds",
            "Time to apply one batch in one database transaction.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.db_retries = Counter(
            "cityos_catalog_db_retries",
            "Batches retried because the database was unavailable.",
            registry=registry,
        )
        self.lag = Gauge(
            "cityos_catalog_consumer_lag_messages",
            "Messages behind the end of the validated topic, summed over assigned partitions.",
            registry=registry,
        )

    def start_series(self, datasets: list[str]) -> None:
        """Create every outcome and dataset series at zero (see IngestMetrics.start_series)."""
        for outcome in CATALOG_OUTCOMES:
            self.events.labels(outcome)
        self.upserted.counter.labels(NON_PUBLIC)
        for dataset in datasets:
            self.upserted.labels(dataset)

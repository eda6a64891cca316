"""Prometheus metrics of the catalog consumer.

Names follow ``cityos_<service>_<noun>_<unit>``; the one label, outcome, takes the fixed values below.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

CATALOG_OUTCOMES = ("applied", "stale", "duplicate", "deleted", "undecodable", "rejected", "refused")


class CatalogMetrics:
    """Counters of the catalog consumer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "cityos_catalog_events",
            "Validated events consumed, by outcome (applied, stale, duplicate, deleted, undecodable, rejected, refused).",
            ["outcome"],
            registry=registry,
        )
        self.upserted = Counter(
            "cityos_catalog_records_upserted",
            "Record versions written to the catalog.",
            ["dataset"],
            registry=registry,
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
        for dataset in datasets:
            self.upserted.labels(dataset)

"""Prometheus metrics of the Kafka-side services, declared in one place.

Names follow ``cityos_<service>_<noun>_<unit>``. Labels are bounded: department and dataset
come from the schema set (anything else is counted as ``unknown``), reason from ``Reason``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Validation of ~1 KB events takes microseconds; buckets resolve 5 µs to 50 ms.
_VALIDATION_BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.05)
_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


CATALOG_OUTCOMES = ("applied", "stale", "duplicate", "deleted", "undecodable", "rejected")


class IngestMetrics:
    """Counters of the ingest service."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "cityos_ingest_events_consumed",
            "Messages read from department topics.",
            ["department"],
            registry=registry,
        )
        self.valid = Counter(
            "cityos_ingest_events_valid",
            "Events that passed envelope and schema checks and went to the validated topic.",
            ["department", "dataset"],
            registry=registry,
        )
        self.deadlettered = Counter(
            "cityos_ingest_events_deadlettered",
            "Events sent to the dead-letter topic, by reason code.",
            ["department", "dataset", "reason"],
            registry=registry,
        )
        self.validation_seconds = Histogram(
            "cityos_ingest_validation_duration_seconds",
            "Time to decode and validate one event.",
            buckets=_VALIDATION_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            "cityos_ingest_consumer_lag_messages",
            "Messages behind the end of the department topics, summed over assigned partitions.",
            registry=registry,
        )
        self.assigned = Gauge(
            "cityos_ingest_assigned_partitions",
            "Department-topic partitions currently assigned to this process.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "cityos_ingest_produce_in_flight_messages",
            "Produced messages not yet acknowledged by the broker.",
            registry=registry,
        )

    def start_series(self, owners: dict[str, str]) -> None:
        """Create the series of every known department and dataset at zero, so Prometheus sees the
        first increment (a series born between scrapes would lose it). ``owners``: dataset -> dept."""
        for dataset, department in owners.items():
            self.consumed.labels(department)
            self.valid.labels(department, dataset)


class CatalogMetrics:
    """Counters of the catalog consumer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "cityos_catalog_events",
            "Validated events consumed, by outcome (applied, stale, duplicate, deleted, undecodable, rejected).",
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

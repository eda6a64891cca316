"""Prometheus metrics of the ingest service.

Names follow ``cityos_<service>_<noun>_<unit>``. Labels are bounded: department and dataset
come from the schema set (anything else is counted as ``unknown``), reason from ``Reason``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Validation of ~1 KB events takes microseconds; buckets resolve 5 µs to 50 ms.
_VALIDATION_BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.05)


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
        self.deadletter_duplicates = Counter(
            "cityos_ingest_deadletter_duplicates",
            "Refused events not dead-lettered again: the same event with the same verdict was dead-lettered"
            " before (a re-sent or redelivered event), by reason code.",
            ["department", "dataset", "reason"],
            registry=registry,
        )
        self.deadletter_memory = Gauge(
            "cityos_ingest_deadletter_fingerprints",
            "Dead-letter fingerprints remembered to recognise a duplicate (bounded by configuration).",
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

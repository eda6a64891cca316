"""Prometheus metrics of the feed republisher.

The ``subscription`` label is ``<department>.<dataset>``: at most one active subscription per
pair, so the label is bounded by departments x datasets (both from ``schemas/``), never by
records or requests. ``/metrics`` is unauthenticated, so a dataset that is not public is named
``non-public`` there (``<department>.non-public``): departments are public, what they share is not.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cityos.domain.metric_labels import NON_PUBLIC
from services.feeds.transform import Outcome

_TXN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class FeedsMetrics:
    def __init__(
        self, registry: CollectorRegistry, dataset_label: Callable[[str], str] = lambda _dataset: NON_PUBLIC
    ) -> None:
        self._dataset_label = dataset_label
        self.events = Counter(
            "cityos_feeds_events",
            "Validated events per subscription and outcome: delivered, filtered (out by the "
            "subscription's filter) or denied (the department may not read the dataset now).",
            ["subscription", "outcome"],
            registry=registry,
        )
        self.snapshot_records = Counter(
            "cityos_feeds_snapshot_records",
            "Records sent as a subscription's starting snapshot.",
            ["subscription"],
            registry=registry,
        )
        self.transactions = Counter(
            "cityos_feeds_transactions",
            "Kafka transactions of the republisher, by outcome (committed, aborted).",
            ["outcome"],
            registry=registry,
        )
        self.transaction_seconds = Histogram(
            "cityos_feeds_transaction_duration_seconds",
            "Time from beginning to committing one feed transaction.",
            buckets=_TXN_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            "cityos_feeds_consumer_lag_messages",
            "Validated-topic messages not yet republished, summed over assigned partitions.",
            registry=registry,
        )
        self.subscriptions = Gauge(
            "cityos_feeds_subscriptions_active", "Active subscriptions.", registry=registry
        )
        self.grants = Gauge("cityos_feeds_grants_active", "Unrevoked grants.", registry=registry)
        self.policy_changes = Counter(
            "cityos_feeds_policy_changes",
            "Times the republisher saw grants or subscriptions change.",
            registry=registry,
        )
        for outcome in ("committed", "aborted"):
            self.transactions.labels(outcome)

    def subscription(self, route_label: str) -> str:
        """The label value of a subscription ``<department>.<dataset>``, its dataset folded unless public."""
        department, _, dataset = route_label.partition(".")
        return f"{department}.{self._dataset_label(dataset)}"

    def start_series(self, route_label: str) -> None:
        label = self.subscription(route_label)
        for outcome in Outcome:
            self.events.labels(label, str(outcome))
        self.snapshot_records.labels(label)

"""Feeds entrypoint: migrate, then run the republisher with a small HTTP endpoint for
``/metrics``, ``/healthz`` and ``/readyz`` (ready once partitions are assigned). Wiring only."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer
from prometheus_client import REGISTRY

from cityos.domain.metric_labels import PublicDatasetLabels
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.kafka import consumer_config, ensure_pipeline_topics, producer_config
from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.kafka_start import Backoff, retry_at_start
from cityos.kernel.operations_http import start_operations_server
from cityos.kernel.runtime import configure_logging, stop_on_signals
from cityos.kernel.settings import Settings
from services.feeds.metrics import FeedsMetrics
from services.feeds.republisher import KAFKA_TIMEOUT_S, Republisher

# A killed instance's partitions wait this long for it to come back (static membership: a restart
# with the same instance id takes them over at once).
SESSION_TIMEOUT_MS = 10_000
# The broker aborts a transaction open longer than this. It must cover the largest snapshot (written
# in one transaction); a killed instance's open transaction holds read_committed readers back for
# at most this long -- unless the instance restarts, which aborts it at once (same transactional.id).
TRANSACTION_TIMEOUT_MS = 60_000


def feeds_consumer_config(settings: Settings) -> dict[str, object]:
    return consumer_config(
        kafka_access(settings, Principal.feeds),
        settings.feeds_group,
        **{
            "enable.auto.commit": False,  # offsets go into the transactions
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",  # eager: on_assign sets our own positions
            "group.instance.id": settings.feeds_transactional_id,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "topic.metadata.refresh.interval.ms": 60_000,
        },
    )


def feeds_producer_config(settings: Settings, *, transactional: bool = True) -> dict[str, object]:
    extra: dict[str, object] = {"linger.ms": 20}
    if transactional:
        extra["transactional.id"] = settings.feeds_transactional_id
        extra["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return producer_config(kafka_access(settings, Principal.feeds), **extra)


def transactional_producer(settings: Settings) -> Producer:
    """The republisher's producer with its transactions initialised: this fences a predecessor with
    the same transactional.id and aborts what it left open, before anything is consumed. A new
    client each call: a refused init (the transactional id not yet authorized on the coordinator's
    broker) is fatal to the client that met it."""
    producer = Producer(feeds_producer_config(settings))
    producer.init_transactions(KAFKA_TIMEOUT_S)
    return producer


def serve(settings: Settings) -> None:
    configure_logging()
    migrate(settings.database_url)
    sessions = session_factory(make_engine(settings.database_url))
    kafka = kafka_access(settings, Principal.feeds)
    backoff = Backoff(budget_s=settings.kafka_start_retry_s)
    retry_at_start(
        "feeds: pipeline topics",
        lambda: ensure_pipeline_topics(
            kafka, validated=settings.validated_topic, deadletter=settings.deadletter_topic
        ),
        backoff=backoff,
    )
    producer = retry_at_start(
        "feeds: transactions", lambda: transactional_producer(settings), backoff=backoff
    )
    metrics = FeedsMetrics(REGISTRY, PublicDatasetLabels(sessions))  # /metrics names public data only
    republisher = Republisher(
        consumer=Consumer(feeds_consumer_config(settings)),
        producer=producer,
        kafka=kafka,
        validated_topic=settings.validated_topic,
        state_topic=settings.feeds_state_topic,
        sessions=sessions,
        metrics=metrics,
        batch_size=settings.feeds_batch_size,
        refresh_s=settings.feeds_policy_refresh_s,
        feed_partitions=settings.feeds_partitions,
    )
    server = start_operations_server(
        settings.feeds_metrics_host, settings.feeds_metrics_port, republisher.ready, name="feeds"
    )
    stop = stop_on_signals()
    try:
        retry_at_start("feeds: state topic and policy", republisher.start, backoff=backoff)
        republisher.run(stop)
    finally:
        republisher.close()
        server.shutdown()

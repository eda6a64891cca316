"""Feeds entrypoint: migrate, then run the republisher with a small HTTP endpoint for
``/metrics``, ``/healthz`` and ``/readyz`` (ready once partitions are assigned). Wiring only."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from confluent_kafka import Consumer, Producer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from cityos.domain.metric_labels import PublicDatasetLabels
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.kafka import consumer_config, ensure_pipeline_topics, producer_config
from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.kafka_start import Backoff, retry_at_start
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


def _http_handler(ready: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                status, body, kind = 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status, body, kind = 200, b'{"status":"ok"}', "application/json"
            elif self.path == "/readyz":
                status = 200 if ready.is_set() else 503
                body = b'{"status":"ready"}' if ready.is_set() else b'{"status":"starting"}'
                kind = "application/json"
            else:
                status, body, kind = 404, b'{"error":"not_found"}', "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes every few seconds would drown the log

    return Handler


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
    server = ThreadingHTTPServer(
        (settings.feeds_metrics_host, settings.feeds_metrics_port), _http_handler(republisher.ready)
    )
    threading.Thread(target=server.serve_forever, name="feeds-http", daemon=True).start()
    stop = stop_on_signals()
    try:
        retry_at_start("feeds: state topic and policy", republisher.start, backoff=backoff)
        republisher.run(stop)
    finally:
        republisher.close()
        server.shutdown()

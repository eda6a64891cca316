"""Entry point of CloudEvents over HTTP (`cityos serve ingest-http`): wiring only.

It acts as the ingest principal, since like ingest it writes validated events; it reads API keys from
the catalog's database. More processes on other ports (behind one balancer) scale it out: each
keeps its own producer, and the department's rate limit is per process.
"""

from __future__ import annotations

from datetime import timedelta

import uvicorn
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from cityos.domain.registry.topic import SchemaFollower
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.kafka import producer_config
from cityos.kernel.ratelimit import RateLimiter
from cityos.kernel.runtime import configure_logging
from cityos.kernel.settings import Settings
from services.ingest.http_app import HttpIngestMetrics, IngestHttp, Limits, create_app
from services.ingest.http_delivery import DELIVERY_TIMEOUT_MS, CredentialCache, KafkaDelivery
from services.ingest.main import ingest_side
from services.ingest.routing import Topics

# Requests delivered at once per process (each flushes its own producer); more wait for a free one.
PRODUCERS = 8


def serve(settings: Settings) -> None:
    configure_logging()
    migrate(settings.database_url)  # keys live in the catalog's database; start on an empty one too
    schema_set, kafka, registry = ingest_side(settings)
    # Reports for failed deliveries only: a request learns of success from its producer's flush.
    # A short linger: a sender waits for the answer, and a batch is produced in one go anyway.
    config = {"delivery.timeout.ms": DELIVERY_TIMEOUT_MS, "delivery.report.only.error": True, "linger.ms": 1}
    producers = [Producer(producer_config(kafka, **config)) for _ in range(PRODUCERS)]
    delivery = KafkaDelivery(producers, settings.validated_topic)
    delivery.start()
    engine = make_engine(settings.database_url)
    ingest = IngestHttp(
        registry=registry,
        topics=Topics(validated=settings.validated_topic, deadletter=settings.deadletter_topic),
        limits=Limits(
            rate_per_minute=settings.ingest_http_rate_per_minute,
            max_batch_events=settings.ingest_http_max_batch_events,
            max_batch_bytes=settings.ingest_http_max_batch_bytes,
            max_future=timedelta(seconds=settings.max_future_skew_s),
        ),
        credentials=CredentialCache(session_factory(engine)),
        delivery=delivery,
        metrics=HttpIngestMetrics(CollectorRegistry()),
        departments=frozenset(schema_set.departments),
        topic_for=settings.department_topic,
        limiter=RateLimiter(),
    )
    follower = SchemaFollower(kafka, settings.schemas_topic)
    app = create_app(ingest, follower=follower, on_stop=delivery.close)
    uvicorn.run(app, host=settings.ingest_http_host, port=settings.ingest_http_port, proxy_headers=False)

"""Catalog entrypoint: migrate, sync schemas, serve the admin API, run the consumer."""

from __future__ import annotations

import threading

import uvicorn
from confluent_kafka import Consumer, Producer
from prometheus_client import REGISTRY

from cityos.domain.metric_labels import PublicDatasetLabels
from cityos.domain.registry.store import bundled_definitions
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.kafka import consumer_config, ensure_pipeline_topics, producer_config
from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.kafka_start import Backoff, retry_at_start
from cityos.kernel.runtime import configure_logging, stop_on_signals
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from services.catalog.api import create_catalog_app
from services.catalog.consumer import CatalogConsumer
from services.catalog.metrics import CatalogMetrics
from services.catalog.store import sync_schema_set


def serve(settings: Settings) -> None:
    configure_logging()
    schema_set = load_schema_dir(settings.schemas_dir)
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    # IMMEDIATE: the batch takes the SQLite write lock at BEGIN, so a second writer waits instead
    # of failing with "database is locked" halfway through a batch.
    sessions = session_factory(engine, sqlite_begin="IMMEDIATE")
    with sessions.begin() as session:
        sync_schema_set(session, schema_set=schema_set)
    kafka = kafka_access(settings, Principal.catalog)
    retry_at_start(
        "catalog: pipeline topics",
        lambda: ensure_pipeline_topics(
            kafka, validated=settings.validated_topic, deadletter=settings.deadletter_topic
        ),
        backoff=Backoff(budget_s=settings.kafka_start_retry_s),
    )
    metrics = CatalogMetrics(REGISTRY, PublicDatasetLabels(sessions))  # /metrics names public data only
    metrics.start_series(sorted(schema_set.datasets))
    api = uvicorn.Server(
        uvicorn.Config(
            create_catalog_app(sessions, REGISTRY),
            host=settings.catalog_host,
            port=settings.catalog_port,
            log_level="warning",
        )
    )
    # uvicorn leaves signal handling to the main thread when run from another thread: the
    # consumer loop below owns SIGTERM/SIGINT and stops the API after its last batch.
    threading.Thread(target=api.run, name="catalog-api", daemon=True).start()
    consumer = CatalogConsumer(
        consumer=Consumer(consumer_config(kafka, settings.catalog_group, **{"enable.auto.commit": False})),
        deadletter=Producer(producer_config(kafka)),
        deadletter_topic=settings.deadletter_topic,
        sessions=sessions,
        metrics=metrics,
        batch_size=settings.catalog_batch_size,
        batch_timeout_s=settings.catalog_batch_timeout_s,
        schema_bundle=bundled_definitions(settings.schemas_dir),
    )
    consumer.subscribe(settings.validated_topic)
    stop = stop_on_signals()
    try:
        consumer.run(stop)
    finally:
        consumer.close()
        api.should_exit = True

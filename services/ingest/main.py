"""Ingest entrypoint: wires settings, schemas, Kafka clients and metrics; no logic here."""

from __future__ import annotations

from datetime import timedelta

from confluent_kafka import Consumer, Producer
from prometheus_client import REGISTRY, start_http_server

from cityos.kafka import consumer_config, ensure_pipeline_topics, producer_config
from cityos.metrics import IngestMetrics
from cityos.runtime import configure_logging, stop_on_signals
from cityos.schemas import load_schema_dir
from cityos.settings import Settings
from cityos.validation import ValidatorRegistry
from services.ingest.routing import Topics
from services.ingest.service import IngestService


def serve(settings: Settings) -> None:
    configure_logging()
    schema_set = load_schema_dir(settings.schemas_dir)
    ensure_pipeline_topics(
        settings.kafka_bootstrap,
        validated=settings.validated_topic,
        deadletter=settings.deadletter_topic,
        department_topics=[settings.department_topic(department) for department in schema_set.departments],
    )
    metrics = IngestMetrics(REGISTRY)
    metrics.start_series({dataset.id: dataset.department for dataset in schema_set.datasets.values()})
    start_http_server(settings.ingest_metrics_port, addr=settings.ingest_metrics_host)
    service = IngestService(
        consumer=Consumer(consumer_config(settings.kafka_bootstrap, settings.ingest_group)),
        producer=Producer(producer_config(settings.kafka_bootstrap)),
        registry=ValidatorRegistry(schema_set),
        topics=Topics(validated=settings.validated_topic, deadletter=settings.deadletter_topic),
        metrics=metrics,
        known_departments=frozenset(schema_set.departments),
        max_future=timedelta(seconds=settings.max_future_skew_s),
    )
    service.subscribe(settings.department_topic_pattern)
    stop = stop_on_signals()
    try:
        service.run(stop)
    finally:
        service.close()

"""Ingest entrypoint: wires settings, schemas, Kafka clients and metrics; no logic here."""

from __future__ import annotations

import gc
import logging
import time
from datetime import timedelta

from confluent_kafka import Consumer, Producer
from prometheus_client import REGISTRY, Gauge, start_http_server

from cityos.domain.metric_labels import dataset_label
from cityos.domain.registry.store import bundled_definitions
from cityos.domain.registry.topic import SchemaFollower, ensure_schema_topic
from cityos.kernel.kafka import consumer_config, ensure_pipeline_topics, producer_config
from cityos.kernel.kafka_access import KafkaAccess, Principal, kafka_access
from cityos.kernel.kafka_start import Backoff, retry_at_start
from cityos.kernel.runtime import configure_logging, stop_on_signals
from cityos.kernel.schemas import SchemaSet, load_schema_dir
from cityos.kernel.settings import Settings
from cityos.kernel.strictjson import SCAN
from cityos.kernel.validation import ValidatorRegistry
from services.ingest.checkpoint import PRODUCER_SETTINGS
from services.ingest.dedup import DeadLetterFollower, RecentDeadLetters
from services.ingest.metrics import IngestMetrics
from services.ingest.routing import Topics
from services.ingest.service import IngestService

log = logging.getLogger(__name__)

# Longest start-up wait for reading back recent dead letters: past it, ingest starts anyway and the
# rest of the tail still arrives while it runs (only a duplicate in between could slip through).
DEADLETTER_CATCH_UP_S = 20.0


def ingest_side(settings: Settings) -> tuple[SchemaSet, KafkaAccess, ValidatorRegistry]:
    """What every ingesting process (Kafka or HTTP) starts from: the schemas, the ingest principal's
    Kafka access with the topics it reads and writes in place, and the compiled validators."""
    log.info("strict decoding scans bytes with the %s scanner", SCAN)
    schema_set = load_schema_dir(settings.schemas_dir)
    kafka = kafka_access(settings, Principal.ingest)

    def topics() -> None:
        ensure_pipeline_topics(
            kafka,
            validated=settings.validated_topic,
            deadletter=settings.deadletter_topic,
            department_topics=[
                settings.department_topic(department) for department in schema_set.departments
            ],
        )
        ensure_schema_topic(kafka, settings.schemas_topic)

    retry_at_start("ingest: topics", topics, backoff=Backoff(budget_s=settings.kafka_start_retry_s))
    registry = ValidatorRegistry(schema_set, bundle=bundled_definitions(settings.schemas_dir))
    return schema_set, kafka, registry


def serve(settings: Settings) -> None:
    configure_logging()
    schema_set, kafka, registry = ingest_side(settings)
    metrics = IngestMetrics(REGISTRY)
    # /metrics is unauthenticated: only public datasets are named, the others count as "non-public".
    metrics.start_series(
        {dataset_label(d.id, d.classification): d.department for d in schema_set.datasets.values()}
    )
    start_http_server(settings.ingest_metrics_port, addr=settings.ingest_metrics_host)
    # Registry-side metric kept here: it is about this process's live view of the schema topic.
    known_versions = Gauge(
        "cityos_ingest_schema_versions",
        "Schema versions this ingest process validates against (start-up set plus live registrations).",
        registry=REGISTRY,
    )
    known_versions.set(registry.version_count)
    recent = RecentDeadLetters(settings.ingest_deadletter_memory)
    follower = (
        retry_at_start(
            "ingest: dead-letter memory",
            lambda: DeadLetterFollower(kafka, settings.deadletter_topic, recent),
            backoff=Backoff(budget_s=settings.kafka_start_retry_s),
        )
        if recent.capacity > 0
        else None
    )
    if follower is not None:
        started = time.monotonic()
        read = follower.catch_up(timeout_s=DEADLETTER_CATCH_UP_S)
        log.info(
            "remembered %d dead-letter fingerprints from %d dead letters in %.2f s",
            len(recent),
            read,
            time.monotonic() - started,
        )
        metrics.deadletter_memory.set(len(recent))
    service = IngestService(
        consumer=Consumer(consumer_config(kafka, settings.ingest_group)),
        producer=Producer(producer_config(kafka, **PRODUCER_SETTINGS)),
        registry=registry,
        topics=Topics(validated=settings.validated_topic, deadletter=settings.deadletter_topic),
        metrics=metrics,
        known_departments=frozenset(schema_set.departments),
        max_future=timedelta(seconds=settings.max_future_skew_s),
        schema_follower=SchemaFollower(kafka, settings.schemas_topic),
        on_schemas_changed=known_versions.set,
        recent_deadletters=recent,
        deadletter_follower=follower,
    )
    service.subscribe(settings.department_topic_pattern)
    # What start-up built (schemas, compiled validators, clients) lives as long as the process:
    # moved out of the collector's reach, so its collections scan only per-batch garbage.
    gc.collect()
    gc.freeze()
    stop = stop_on_signals()
    try:
        service.run(stop)
    finally:
        service.close()

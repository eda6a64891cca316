"""bench/ingest: the ingest service's throughput against the bare loop it is built from.

In one run, on the same local broker and the same input topic (~1 KB AED events), alternating:
  limit   — the same work with nothing else: consume → orjson parse → one validation of the whole
            event by the validator the service compiles (envelope + dataset schema, linear-time
            patterns) → produce the same output message (topic, key, bytes, department header);
  ingest  — the real IngestService (strict decoding, time and record-key checks, ownership,
            routing, metrics, offsets stored only after acknowledgement).
Prints the machine, events/s of both and the ratio of the medians; exits 1 when the ratio is
below 0.8 (the machine is shared, so the absolute figures are reported, not judged), 2 when the
service did not validate every event.

    .venv/bin/python -m bench.ingest [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from cityos.kernel.kafka import consumer_config, ensure_topics, producer_config
from cityos.kernel.kafka_access import KafkaAccess, Principal, kafka_access
from cityos.kernel.references import rust_validator
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import Settings
from cityos.kernel.validation import ValidatorRegistry, upsert_event_schema
from services.ingest.metrics import IngestMetrics
from services.ingest.routing import Topics, validated_headers
from services.ingest.service import IngestService

PARTITIONS = 3
TARGET_RATIO = 0.8


def aed_event(index: int) -> bytes:
    record = {
        "都道府県コード又は市区町村コード": "401005",
        "NO": f"B{index:08d}",
        "都道府県名": "福岡県",
        "市区町村名": "北九州市",
        "名称": f"北九州市立ベンチマーク施設{index}",
        "名称_カナ": "キタキュウシュウシリツベンチマークシセツ",
        "住所": "福岡県北九州市小倉北区城内1-1",
        "方書": "1階ロビー",
        "緯度": 33.88 + (index % 1000) / 100000,
        "経度": 130.87 + (index % 1000) / 100000,
        "設置位置": "正面玄関を入って右側、受付の横",
        "電話番号": "093-582-2102",
        "利用可能曜日": "月火水木金",
        "開始時間": "08:30",
        "終了時間": "17:15",
        "利用可能日時特記事項": "土日祝日、年末年始は閉館のため利用できません。",
        "小児対応設備の有無": "有",
        "備考": "ベンチマーク用の合成データです。",
    }
    event = {
        "specversion": "1.0",
        "id": f"bench-{index}",
        "source": "/departments/fire/bench",
        "type": "jp.cityos.record.upserted",
        "time": datetime.now(UTC).isoformat(),
        "dataschema": schema_uri("aed", 1),
        "datacontenttype": "application/json",
        "data": record,
    }
    return json.dumps(event, ensure_ascii=False).encode()


def fill(kafka: KafkaAccess, topic: str, count: int) -> float:
    producer = Producer(producer_config(kafka))
    size = 0
    for index in range(count):
        value = aed_event(index)
        size += len(value)
        while True:
            try:
                producer.produce(topic, value=value, key=f"aed/B{index:08d}".encode())
                break
            except BufferError:
                producer.poll(0.1)
        if index % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return size / count


class Progress:
    """Events handled so far by a loop running in a worker thread."""

    def __init__(self) -> None:
        self.count = 0


def timed(work: threading.Thread, progress: Progress, total: int) -> float:
    """events/s of ``work`` measured the same way for both loops: the clock starts once the first
    batch is through (consumer group joined, first fetch done) and stops when the loop has
    finished, output flushed; events of that first batch are not counted."""
    work.start()
    while progress.count == 0:
        time.sleep(0.001)
    started, first = time.perf_counter(), progress.count
    work.join()
    return (total - first) / (time.perf_counter() - started)


def bare_loop(
    kafka: KafkaAccess, topic: str, out_topic: str, count: int, uri: str, document: dict[str, Any]
) -> float:
    """The limit: the same work with the same libraries, and no strictness, bookkeeping or metrics."""
    validator = rust_validator(upsert_event_schema(uri, document))  # what the registry compiles
    headers = validated_headers("fire")
    consumer = Consumer(consumer_config(kafka, f"bench-bare-{uuid.uuid4().hex[:6]}"))
    producer = Producer(producer_config(kafka))
    consumer.subscribe([topic])
    progress = Progress()
    valid = 0

    def loop() -> None:
        nonlocal valid
        while progress.count < count:
            messages = consumer.consume(num_messages=1000, timeout=1.0)
            for message in messages:
                if message.error():
                    continue
                event = orjson.loads(message.value() or b"")
                valid += validator.is_valid(event)
                while True:
                    try:
                        producer.produce(out_topic, value=message.value(), key=message.key(), headers=headers)
                        break
                    except BufferError:
                        producer.poll(0.1)
            producer.poll(0)
            progress.count += len(messages)
        producer.flush(120)

    rate = timed(threading.Thread(target=loop), progress, count)
    consumer.close()
    if valid != count:  # the limit counts only if it did the work: every event validated
        print(f"bench invalid: the limit validated {valid} of {count} events", file=sys.stderr)
        sys.exit(2)
    return rate


def service_loop(settings: Settings, topic_pattern: str, count: int) -> float:
    schema_set = load_schema_dir(settings.schemas_dir)
    metrics_registry = CollectorRegistry()
    service = IngestService(
        consumer=Consumer(
            consumer_config(kafka_access(settings, Principal.admin), f"bench-ingest-{uuid.uuid4().hex[:6]}")
        ),
        producer=Producer(producer_config(kafka_access(settings, Principal.admin))),
        registry=ValidatorRegistry(schema_set),
        topics=Topics(validated=settings.validated_topic, deadletter=settings.deadletter_topic),
        metrics=IngestMetrics(metrics_registry),
        known_departments=frozenset(schema_set.departments),
    )
    service.subscribe(topic_pattern)
    stop = threading.Event()
    progress = Progress()

    def loop() -> None:
        # The service's own run(), stopped once every event went through; run() then drains:
        # every output acknowledged and offsets committed.
        watcher = threading.Thread(target=_stop_after, args=(service, progress, count, stop))
        watcher.start()
        service.run(stop)
        watcher.join()

    rate = timed(threading.Thread(target=loop), progress, count)
    service.close()
    # The measurement only counts if every event really went the whole way as valid.
    valid = metrics_registry.get_sample_value(
        "cityos_ingest_events_valid_total", {"department": "fire", "dataset": "aed"}
    )
    if valid != count:
        print(f"bench invalid: ingest validated {valid} of {count} events", file=sys.stderr)
        sys.exit(2)
    return rate


def _stop_after(service: IngestService, progress: Progress, count: int, stop: threading.Event) -> None:
    while service.processed < count:
        progress.count = service.processed
        time.sleep(0.002)
    progress.count = service.processed
    stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each loop")
    parser.add_argument("--bootstrap", default=Settings().kafka_bootstrap)
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    # The bench is the operator's: every client acts as the administrator (any topic, any group).
    settings = Settings(kafka_bootstrap=args.bootstrap, topic_prefix=prefix, kafka_username=Principal.admin)
    kafka = kafka_access(settings, Principal.admin)
    topic = settings.department_topic("fire")
    outputs = {settings.validated_topic: 6, settings.deadletter_topic: 3, f"{prefix}bare.out": 6}
    ensure_topics(kafka, {topic: PARTITIONS, **outputs})
    avg = fill(kafka, topic, args.events)
    latest = load_schema_dir(settings.schemas_dir).latest("aed")
    # The broker shares the machine's cores, so single runs are noisy: alternate the two loops
    # over the same input (fresh consumer groups) and compare medians.
    limits: list[float] = []
    ingests: list[float] = []
    for round_ in range(args.rounds):
        # Alternate which loop goes first, so neither always meets a freshly written log.
        def limit_run() -> None:
            limits.append(
                bare_loop(kafka, topic, f"{prefix}bare.out", args.events, latest.uri, latest.document)
            )

        def ingest_run() -> None:
            ingests.append(service_loop(settings, settings.department_topic_pattern, args.events))

        for run in (limit_run, ingest_run) if round_ % 2 == 0 else (ingest_run, limit_run):
            run()
    limit, ingest = statistics.median(limits), statistics.median(ingests)
    ratio = ingest / limit
    print(f"machine  {machine()}")
    print(
        f"bench/ingest  events={args.events} x {args.rounds} rounds  avg_event_bytes={avg:.0f}  partitions={PARTITIONS}"
    )
    print(f"  limit  (bare consume→parse→validate→produce): {limit:>10,.0f} events/s  runs {_runs(limits)}")
    print(
        f"  ingest (IngestService, one process):           {ingest:>10,.0f} events/s  runs {_runs(ingests)}"
    )
    verdict = "PASS" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"  ratio ingest/limit (medians): {ratio:.2f}   (target ≥ {TARGET_RATIO:.2f}: {verdict})")
    if ratio < TARGET_RATIO:
        sys.exit(1)


def machine() -> str:
    """CPU model, cores and Python: the figures mean little without them."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass  # not Linux: the platform's own name
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, Python {platform.python_version()} ({platform.python_implementation()})"


def _runs(values: list[float]) -> str:
    return " ".join(f"{value:,.0f}" for value in values)


if __name__ == "__main__":
    main()

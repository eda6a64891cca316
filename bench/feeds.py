"""bench/feeds: the feed republisher with Kafka transactions against the same republisher without.

In one run, on the same local broker and the same input (AED and copier-usage events on a
validated topic of 6 partitions, 3 subscriptions: one full, one granted a field subset, one
filtered and projected):
  exactly-once   — one Kafka transaction per batch: feed events + consumed offsets
                   (send_offsets_to_transaction), revoke guard before each commit;
  at-least-once  — the same code with an idempotent producer: flush, then commit offsets.
Each mode runs ``--rounds`` times, alternating, each with a fresh consumer group; medians are
printed with the ratio. A benchmark, not a test.

    .venv/bin/python -m bench.feeds [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from cityos.department.outbox import record_event
from cityos.domain import grants as admin
from cityos.domain.access import Caller, CallerKind
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.kafka import ensure_pipeline_topics, producer_config
from cityos.kernel.kafka_access import Principal, kafka_access
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import Settings
from services.catalog.store import sync_schema_set
from services.feeds.main import feeds_consumer_config, feeds_producer_config, transactional_producer
from services.feeds.metrics import FeedsMetrics
from services.feeds.republisher import Republisher

ADMIN = Caller(CallerKind.admin, principal="bench")


def events(count: int) -> list[tuple[bytes, bytes]]:
    out = []
    for index in range(count):
        number = index % 5000
        if index % 5 < 3:
            record = {
                "NO": f"B{number:05d}",
                "名称": f"ベンチ施設{number}",
                "住所": "福岡県北九州市小倉北区城内1-1",
                "設置位置": ("1階", "2階", "玄関")[number % 3],
                "緯度": 33.88,
                "経度": 130.87,
                "備考": "ベンチマーク用の合成データです。" * 4,
            }
            dataset, key = "aed", record["NO"]
        else:
            key = f"digital-{2000 + number // 12}-{number % 12 + 1:02d}"
            record = {
                "ID": key,
                "部局コード": "digital",
                "部局名": "試験",
                "年月": "2026-01",
                "枚数_モノクロ": index,
            }
            dataset = "copier-usage"
        value = record_event(
            record=record, dataschema=schema_uri(dataset, 1), source="/bench/feeds", event_id=f"b{index}"
        )
        out.append((f"{dataset}/{key}".encode(), value))
    return out


def prepare(settings: Settings, count: int) -> None:
    migrate(settings.database_url)
    sessions = session_factory(make_engine(settings.database_url), sqlite_begin="IMMEDIATE")
    with sessions.begin() as session:
        sync_schema_set(session, schema_set=load_schema_dir(settings.schemas_dir))
    with sessions.begin() as session:
        admin.grant(
            session, caller=ADMIN, dataset_id="copier-usage", grantee="fire", fields=["ID", "枚数_モノクロ"]
        )
        for department, dataset, filter_, fields in (
            ("health-welfare", "aed", {}, None),
            ("fire", "copier-usage", {}, None),
            ("planning", "aed", {"設置位置": "1階"}, ["名称"]),
        ):
            request = admin.SubscriptionRequest(dataset, filter_, fields, admin.StartMode.now)
            admin.subscribe(
                session,
                caller=ADMIN,
                department=department,
                request=request,
                topic_prefix=settings.topic_prefix,
            )
    kafka = kafka_access(settings, Principal.admin)
    ensure_pipeline_topics(kafka, validated=settings.validated_topic, deadletter=settings.deadletter_topic)
    producer = Producer(producer_config(kafka))
    for key, value in events(count):
        while True:
            try:
                producer.produce(settings.validated_topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0


def run_once(base: Settings, count: int, *, transactional: bool, round_: int) -> float:
    """Events/s of one republisher run over the whole input, from assignment to the last batch."""
    tag = f"{'txn' if transactional else 'alo'}{round_}"
    settings = base.model_copy(
        update={"feeds_group": f"{base.topic_prefix}g-{tag}", "feeds_instance": round_ * 2 + transactional}
    )
    sessions = session_factory(make_engine(settings.database_url))
    republisher = Republisher(
        consumer=Consumer(feeds_consumer_config(settings)),
        # The service's own start: transactions initialised before the republisher runs.
        producer=(
            transactional_producer(settings)
            if transactional
            else Producer(feeds_producer_config(settings, transactional=False))
        ),
        kafka=kafka_access(settings, Principal.admin),
        validated_topic=settings.validated_topic,
        state_topic=f"{settings.topic_prefix}state-{tag}",
        sessions=sessions,
        metrics=FeedsMetrics(CollectorRegistry()),
        transactional=transactional,
        batch_size=settings.feeds_batch_size,
        audit=False,
    )
    stop = threading.Event()
    republisher.start()
    worker = threading.Thread(target=republisher.run, args=(stop,))
    worker.start()
    republisher.ready.wait(60)
    started = time.perf_counter()
    while republisher.consumed < count:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    stop.set()
    worker.join()
    republisher.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", default=Settings().kafka_bootstrap)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            kafka_bootstrap=args.bootstrap,
            # The bench is the operator's: every client acts as the administrator (any topic, any group).
            kafka_username=Principal.admin,
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
        )
        print(f"preparing {args.events} events, 3 subscriptions (prefix {settings.topic_prefix})")
        prepare(settings, args.events)
        results: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(args.rounds):
            for transactional in (True, False):
                rate = run_once(settings, args.events, transactional=transactional, round_=round_)
                results[transactional].append(rate)
                print(
                    f"round {round_ + 1}: {'exactly-once ' if transactional else 'at-least-once'} {rate:10,.0f} events/s"
                )
    txn, alo = statistics.median(results[True]), statistics.median(results[False])
    print(f"exactly-once (transactions)   {txn:10,.0f} events/s (median of {args.rounds})")
    print(f"at-least-once (no transactions) {alo:8,.0f} events/s (median of {args.rounds})")
    print(f"ratio exactly-once / at-least-once: {txn / alo:.2f}")


if __name__ == "__main__":
    main()

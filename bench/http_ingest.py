"""CloudEvents over HTTP against producing the same events straight to Kafka from Python.

The real `cityos serve ingest-http` process is measured from outside, over real HTTP with a
department's credential: batched requests (every event validated by the same ``route`` as on Kafka,
produced idempotently with acks=all, answered 202 once every event is acknowledged) and single-event
POSTs (their p99 latency printed). The limit is the same work without the service: a Python
producer with the same configuration writing the same event bytes, headers and keys, waiting for
every acknowledgement. Every event of the run is distinct. Rounds alternate; medians are compared;
a sample of what the service wrote is compared byte for byte with what was sent.

The service is scaled by running more processes: the bench starts ``--processes`` of them (each on
its own port, as behind a balancer) and measures the batched senders against one process and spread
over all of them, in the same rounds.

Goal: batched HTTP ≥ 0.5 × direct produce, judged on the best configuration (printed). Exits 1 below it.

    .venv/bin/python -m bench.http_ingest [--events 20000] [--rounds 3] [--singles 1000] [--processes 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.ingest import free_port, machine
from cityos.domain.apikeys import SCOPE_INGEST, OwnerKind
from cityos.domain.kafka_setup import setup_kafka
from cityos.kernel.kafka import ensure_topics, producer_config, reader_config
from cityos.kernel.kafka_access import KafkaAccess, Principal, kafka_access
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT, Settings
from services.ingest.routing import validated_headers
from tests.support.credentials import issue_credential

TARGET = 0.5
BATCH = 500
CLIENTS = 4  # concurrent batched senders, as several departmental systems would be


def aed_event(run: str, index: int) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": f"{run}-{index}",
            "source": "/departments/fire/bench",
            "type": "jp.cityos.record.upserted",
            "time": "2026-11-27T12:00:00+09:00",
            "dataschema": schema_uri("aed", 1),
            "data": {
                "NO": f"{run}-{index}",
                "名称": f"施設{index}",
                "名称_カナ": "シセツ",
                "住所": f"北九州市小倉北区城内{index}",
                "設置位置": "1階",
                "緯度": 33.0 + index / 1e6,
                "経度": 130.0 + index / 1e6,
            },
        }
    )


def issue_ingest_key(database_url: str) -> str:
    return issue_credential(
        database_url,
        owner_kind=OwnerKind.department,
        owner_id="fire",
        purpose="bench",
        actor="admin:bench",
        scopes=[SCOPE_INGEST],
    )


def start_service(settings: Settings, database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "CITYOS_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "CITYOS_TOPIC_PREFIX": settings.topic_prefix,
            "CITYOS_DATABASE_URL": database_url,
            "CITYOS_INGEST_HTTP_PORT": str(port),
            "CITYOS_INGEST_HTTP_RATE_PER_MINUTE": "100000000",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "cityos", "serve", "ingest-http"],
        env=env,
        cwd=REPO_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    sys.exit(f"ingest-http did not start: see {log}")


def http_batched(urls: Sequence[str], key: str, events: Sequence[bytes]) -> float:
    """Events/s of ``CLIENTS`` senders posting batches, spread evenly over the service processes
    (as a balancer in front of them would)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents-batch+json"}
    batches = [b"[" + b",".join(events[i : i + BATCH]) + b"]" for i in range(0, len(events), BATCH)]

    def send(client_index: int) -> None:
        url, share = urls[client_index % len(urls)], batches[client_index::CLIENTS]
        with httpx.Client(timeout=60) as client:
            for body in share:
                answer = client.post(url, content=body, headers=headers)
                if answer.status_code != 202:
                    sys.exit(f"batched POST answered {answer.status_code}: {answer.text[:300]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(send, range(CLIENTS)))
    return len(events) / (time.perf_counter() - started)


def http_single(url: str, key: str, events: Sequence[bytes]) -> tuple[float, list[float]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/cloudevents+json"}
    latencies: list[float] = []
    with httpx.Client(timeout=60) as client:
        started = time.perf_counter()
        for body in events:
            sent = time.perf_counter()
            answer = client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - sent)
            if answer.status_code != 202:
                sys.exit(f"single POST answered {answer.status_code}: {answer.text[:300]}")
        elapsed = time.perf_counter() - started
    return len(events) / elapsed, latencies


def direct_produce(kafka: KafkaAccess, topic: str, events: Sequence[bytes]) -> float:
    """The same events, keys and headers, produced from Python and every acknowledgement awaited."""
    producer = Producer(producer_config(kafka))
    headers = validated_headers("fire")
    failed: list[object] = []

    def report(error: object, _message: object) -> None:
        if error is not None:
            failed.append(error)

    keyed = [(_key(value), value) for value in events]  # derived before the clock starts
    started = time.perf_counter()
    for key, value in keyed:
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)
        producer.poll(0)
    producer.flush(60)
    rate = len(events) / (time.perf_counter() - started)
    if failed:
        sys.exit(f"direct produce failed: {failed[0]}")
    return rate


def _key(value: bytes) -> bytes:
    # The validated topic's key, <dataset>/<record key>, as ingest derives it.
    number: str = orjson.loads(value)["data"]["NO"]
    return b"aed/" + number.encode()


def written_sample(kafka: KafkaAccess, topic: str, sent: set[bytes], count: int) -> int:
    """How many of the first ``count`` messages the service wrote are byte for byte an event sent."""
    consumer = Consumer(reader_config(kafka, f"bench-reader-{uuid.uuid4().hex[:6]}"))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        found: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(found) < count and time.monotonic() < deadline:
            found += [m.value() or b"" for m in consumer.consume(500, 0.5) if m.error() is None]
    finally:
        consumer.close()
    return sum(1 for value in found[:count] if value in sent)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per batched/direct round")
    parser.add_argument("--singles", type=int, default=1_000, help="single-event POSTs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--processes", type=int, default=2, help="service processes to compare with one (1: only one)"
    )
    parser.add_argument("--bootstrap", default=Settings().kafka_bootstrap)
    args = parser.parse_args()
    settings = Settings(kafka_bootstrap=args.bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    kafka = kafka_access(settings, Principal.admin)  # the bench acts as the operator
    departments = [
        (d.id, d.kafka_principal) for d in load_schema_dir(settings.schemas_dir).departments.values()
    ]
    setup_kafka(settings, departments, admin=kafka)
    direct_topic = settings.topic_prefix + "bench.direct"
    ensure_topics(kafka, {settings.validated_topic: 6, direct_topic: 6})
    log_dir = REPO_ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite:///{Path(folder) / 'catalog.db'}"
        key = issue_ingest_key(database_url)
        services: list[subprocess.Popen[bytes]] = []
        urls: list[str] = []
        try:
            for index in range(max(1, args.processes)):
                port = free_port()
                log = log_dir / f"{settings.topic_prefix}ingest-http-{index}.log"
                services.append(start_service(settings, database_url, port, log))
                urls.append(f"http://127.0.0.1:{port}/api/v1/events")
            run(args, kafka, urls, key, direct_topic, settings.validated_topic)
        finally:
            for service in services:
                service.terminate()
            for service in services:
                service.wait(30)


def run(
    args: argparse.Namespace,
    kafka: KafkaAccess,
    urls: Sequence[str],
    key: str,
    direct_topic: str,
    validated: str,
) -> None:
    # Each configuration: how many service processes the batched senders are spread over.
    configurations = sorted({1, len(urls)})
    batched: dict[int, list[float]] = {n: [] for n in configurations}
    direct: list[float] = []
    singles: list[float] = []
    latencies: list[float] = []
    first: list[bytes] = []
    for round_index in range(args.rounds):
        # Rotating order: a load change on the shared machine hits every side alike.
        sides: list[int | None] = [None, *configurations]
        sides = sides[round_index % len(sides) :] + sides[: round_index % len(sides)]
        for side in sides:
            if side is None:
                direct.append(direct_produce(kafka, direct_topic, distinct(f"r{round_index}d", args.events)))
            else:
                events = distinct(f"r{round_index}b{side}", args.events)
                first = first or list(events)
                batched[side].append(http_batched(urls[:side], key, events))
        rate, waited = http_single(urls[0], key, distinct(f"r{round_index}s", args.singles))
        singles.append(rate)
        latencies += waited
        shown = "  ".join(f"http batched ×{n} {batched[n][-1]:7.0f}" for n in configurations)
        print(f"round {round_index + 1}: {shown}  direct {direct[-1]:7.0f}  single {rate:5.0f} ev/s")
    matched = written_sample(kafka, validated, set(first), 1000)
    report(batched, direct, singles, latencies, matched)


def distinct(run: str, count: int) -> list[bytes]:
    return [aed_event(run, i) for i in range(count)]


def report(
    batched: dict[int, list[float]],
    direct: list[float],
    singles: list[float],
    latencies: list[float],
    matched: int,
) -> None:
    direct_median = statistics.median(direct)
    p99 = sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000
    p50 = statistics.median(latencies) * 1000
    print(f"machine  {machine()}")
    ratios = {n: statistics.median(rates) / direct_median for n, rates in batched.items()}
    for n, rates in batched.items():
        print(
            f"http batched ({BATCH}/request, {CLIENTS} clients, {n} process{'es' if n > 1 else ''})"
            f"  median {statistics.median(rates):9.0f} events/s  ({ratios[n]:.2f} × direct)"
        )
    print(f"direct produce (Python, same bytes)                  median {direct_median:9.0f} events/s")
    print(
        f"http single-event POST (1 process)                   median {statistics.median(singles):9.0f} events/s"
    )
    print(f"single-event POST latency                            p50 {p50:.1f} ms  p99 {p99:.1f} ms")
    print(f"byte-for-byte sample: {matched}/1000 written values equal a sent event")
    best = max(ratios, key=lambda n: ratios[n])
    print(
        f"batched/direct = {ratios[best]:.2f} with {best} service process{'es' if best > 1 else ''}"
        f" (best configuration; target ≥ {TARGET})"
    )
    if matched < 1000:
        sys.exit("the service's output differs from what was sent")
    if ratios[best] < TARGET:
        print(
            f"target missed: the service processes, the {CLIENTS} client threads and the broker share "
            f"{os.cpu_count()} cores here; direct produce pays for none of the HTTP, validation or "
            "acknowledgement work"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()

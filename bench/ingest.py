"""bench/ingest: the real `cityos serve ingest` process against the bare loop it is built from.

Each run reads its own freshly written input (~1 KB AED events, 6 partitions) from the end of
the previous one, alternating:
  limit   — the best bare Python loop with the same guarantee and the same work: consume → orjson
            parse → one validation of the whole event by the validator the service compiles
            (envelope + dataset schema, linear-time patterns) → pipelined asynchronous produce of
            the same output message (topic, key, bytes, department header) → input offsets stored
            only once the broker acknowledged every output before them (a flush every
            CHECKPOINT_S that must end with nothing outstanding and no delivery error);
  ingest  — `cityos serve ingest` started as its own process (its own Kafka principal, metrics
            server, schema and dead-letter followers and all), with a fresh consumer group and a
            fresh validated topic per run, measured from outside.
The input of a run is written in one Kafka transaction, committed once the run's consumers are
in place (for ingest: once every process holds its partitions), so every run starts on a full
backlog and two processes start together.
How it is timed: every output topic is created with ``message.timestamp.type=LogAppendTime``, so
the broker stamps each output message as it appends it. After a run the bench reads the outputs
back and takes the rate over the middle 90 % of them (5th to 95th percentile of those stamps):
the first fetches and the last flush are left out the same way for every run, and nothing of the
bench runs while the measured process works (it only reads the output topic's end offsets ten
times a second to know when the run is over).
Every run is checked: the output holds every event exactly once, a sample of outputs equals its
input byte for byte with the department header, and ingest's own metrics count every event valid.

Scale-out: two ingest processes in one consumer group against one (6 input partitions, three
each; the services see the schema set cut down to the fire department, so no empty department
topic skews the split); the broker shares the machine's cores with them.

Prints the machine, events/s of each and the ratio of the medians; exits 1 when ingest/limit is
below 0.8 (the machine is shared, so absolute figures are reported, not judged), 2 when a run did
not validate every event.

    .venv/bin/python -m bench.ingest [--events 100000] [--rounds 3] [--scale-rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from cityos.domain.kafka_setup import setup_kafka
from cityos.kernel.deadletter import DEPARTMENT
from cityos.kernel.kafka import admin_client, consumer_config, producer_config, reader_config
from cityos.kernel.kafka_access import KafkaAccess, Principal, kafka_access
from cityos.kernel.references import rust_validator
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT, Settings
from cityos.kernel.strictjson import SCAN
from cityos.kernel.validation import upsert_event_schema
from services.ingest.routing import validated_headers

PARTITIONS = 6  # input partitions: two processes of one group get three each
OUTPUT_PARTITIONS = 6
TARGET_RATIO = 0.8
TARGET_SCALE = 1.6
CHECKPOINT_S = 0.25  # the limit's acknowledgement checkpoint (the service's own cadence)
SAMPLE_EVERY = 97  # input events kept to compare with their output byte for byte
RUN_TIMEOUT_S = 300.0


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


@dataclass
class Input:
    """The pre-produced input: its size and a sample of it by key."""

    count: int
    avg_bytes: float
    sample: dict[bytes, bytes] = field(default_factory=dict)


def fill(kafka: KafkaAccess, topic: str, count: int) -> tuple[Input, Producer]:
    """``count`` events written in one transaction left open: a read-committed consumer sees none
    of them until the caller commits it, and then all of them at once."""
    producer = Producer(
        producer_config(
            kafka,
            **{"transactional.id": f"bench-fill-{uuid.uuid4().hex[:6]}", "transaction.timeout.ms": 600_000},
        )
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    result = Input(count, 0.0)
    size = 0
    for index in range(count):
        value, key = aed_event(index), f"aed/B{index:08d}".encode()
        size += len(value)
        if index % SAMPLE_EVERY == 0:
            result.sample[key] = value
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        if index % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    result.avg_bytes = size / count
    return result, producer


def start_group_at_end(kafka: KafkaAccess, group: str, topic: str) -> None:
    """Commit the input's current end for ``group``: its run reads only the input written next."""
    consumer = Consumer(consumer_config(kafka, group))
    try:
        ends = [
            TopicPartition(
                topic, partition, consumer.get_watermark_offsets(TopicPartition(topic, partition))[1]
            )
            for partition in range(PARTITIONS)
        ]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def create_output(kafka: KafkaAccess, topic: str) -> None:
    """An output topic stamped by the broker on append: the clock the bench reads the rate from."""
    create_topic(kafka, topic, OUTPUT_PARTITIONS, {"message.timestamp.type": "LogAppendTime"})


def create_topic(kafka: KafkaAccess, topic: str, partitions: int, config: dict[str, str]) -> None:
    admin = admin_client(kafka)  # kept until the end: its futures fail once the client is collected
    for future in admin.create_topics([NewTopic(topic, partitions, 1, config=config)]).values():
        future.result()


def wait_for_output(kafka: KafkaAccess, topic: str, count: int, alive: Callable[[], bool]) -> None:
    reader = Consumer(reader_config(kafka, f"bench-watch-{uuid.uuid4().hex[:6]}"))
    partitions = [TopicPartition(topic, partition) for partition in range(OUTPUT_PARTITIONS)]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while sum(reader.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions) < count:
            if not alive() or time.monotonic() > deadline:
                raise SystemExit(_invalid(f"no complete output on {topic} (process ended or timed out)"))
            time.sleep(0.1)
    finally:
        reader.close()


def output_stamps(kafka: KafkaAccess, topic: str, source: Input) -> list[int]:
    """The broker's append stamps (ms) of every output, sorted, once the output is checked."""
    reader = Consumer(reader_config(kafka, f"bench-read-{uuid.uuid4().hex[:6]}"))
    reader.assign([TopicPartition(topic, partition, 0) for partition in range(OUTPUT_PARTITIONS)])
    stamps: list[int] = []
    keys: set[bytes] = set()
    mismatched = 0
    expected_headers = [(DEPARTMENT, b"fire")]  # what validated_headers("fire") says
    while len(stamps) < source.count:
        for message in reader.consume(num_messages=10_000, timeout=5.0):
            if message.error():
                continue
            stamps.append(message.timestamp()[1])
            key = message.key() or b""
            keys.add(key)
            sent = source.sample.get(key)
            if sent is not None and (message.value() != sent or message.headers() != expected_headers):
                mismatched += 1
    reader.close()
    if len(stamps) != source.count or len(keys) != source.count or mismatched:
        raise SystemExit(
            _invalid(
                f"{topic}: {len(stamps)} outputs, {len(keys)} distinct keys, {mismatched} sample mismatches"
            )
        )
    return sorted(stamps)


def middle_rate(stamps: list[int]) -> float:
    """events/s over the middle 90 % of the output: start-up and the last flush left out."""
    edge = len(stamps) // 20
    return (len(stamps) - 2 * edge) / max((stamps[-1 - edge] - stamps[edge]) / 1000, 0.001)


def bare_loop(kafka: KafkaAccess, group: str, topic: str, out_topic: str, count: int, validator: Any) -> int:
    """The limit: the same work and guarantee with the same libraries, and nothing else. Returns
    how many events the validator accepted."""
    headers = validated_headers("fire")
    consumer = Consumer(consumer_config(kafka, group))
    producer = Producer(producer_config(kafka, **{"delivery.report.only.error": True}))
    failures: list[KafkaError] = []

    def failed(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    consumer.subscribe([topic])
    positions: dict[tuple[str, int], int] = {}
    valid = seen = 0
    next_checkpoint = time.monotonic() + CHECKPOINT_S
    while seen < count:
        messages = consumer.consume(num_messages=1000, timeout=1.0)
        for message in messages:
            value = message.value() or b""
            valid += validator.is_valid(orjson.loads(value))
            while True:
                try:
                    producer.produce(out_topic, value, message.key(), headers=headers, on_delivery=failed)
                    break
                except BufferError:
                    producer.poll(0.1)
            positions[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
        seen += len(messages)
        producer.poll(0)
        if time.monotonic() >= next_checkpoint or seen >= count:
            next_checkpoint = time.monotonic() + CHECKPOINT_S
            if producer.flush(30) == 0 and not failures:
                consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()])
                positions.clear()
    consumer.close()
    return valid


@dataclass
class Plant:
    """The bench's topics and the settings every run derives from."""

    kafka: KafkaAccess
    settings: Settings
    departments: Sequence[tuple[str, str | None]]
    log_dir: Path
    event_bytes: float = 0.0  # average input event size, for the report

    @property
    def input_topic(self) -> str:
        return plant_input(self.settings)

    def output_topic(self, run: str) -> str:
        topic = f"{self.settings.topic_prefix}out.{run}"
        create_output(self.kafka, topic)
        return topic

    def service_env(self, run: str) -> dict[str, str]:
        """`cityos serve ingest` of one run: its own group and validated topic, the Kafka grants for them."""
        settings = self.settings.model_copy(
            update={
                "validated_topic_name": f"out.{run}",
                "ingest_group": f"{self.settings.topic_prefix}{run}",
            }
        )
        setup_kafka(settings, self.departments, admin=self.kafka)
        env = dict(os.environ)
        env.update(
            {
                "CITYOS_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
                "CITYOS_TOPIC_PREFIX": settings.topic_prefix,
                "CITYOS_SCHEMAS_DIR": str(settings.schemas_dir),
                "CITYOS_VALIDATED_TOPIC_NAME": settings.validated_topic_name,
                "CITYOS_INGEST_GROUP": settings.ingest_group,
            }
        )
        env.pop("CITYOS_KAFKA_USERNAME", None)  # the service's own principal, as deployed
        return env


def fire_only_schemas(source: Path, target: Path) -> Path:
    """The project's schemas cut down to the department whose topic carries the input: ingest
    subscribes to every department topic and a consumer group balances partition counts, not
    load, so other (empty) department topics would let one of two processes get all the input."""
    target.mkdir(parents=True)
    departments = orjson.loads((source / "departments.json").read_bytes())
    fire = [department for department in departments if department["id"] == "fire"]
    (target / "departments.json").write_bytes(orjson.dumps(fire))
    for dataset in source.glob("*/dataset.json"):
        if orjson.loads(dataset.read_bytes()).get("department") == "fire":
            shutil.copytree(dataset.parent, target / dataset.parent.name)
    return target


def plant_input(settings: Settings) -> str:
    return settings.department_topic("fire")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ingest_processes(
    plant: Plant, env: dict[str, str], run: str, processes: int
) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    ports = [free_port() for _ in range(processes)]
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for port in ports:
            log = (plant.log_dir / f"{run}-{port}.log").open("ab")
            process = subprocess.Popen(
                [sys.executable, "-m", "cityos", "serve", "ingest"],
                env={**env, "CITYOS_INGEST_METRICS_PORT": str(port)},
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            started.append((process, port))
        yield started
    finally:
        for process, _port in started:
            process.terminate()
        for process, _port in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def valid_count(port: int) -> float:
    """``cityos_ingest_events_valid_total`` of fire/aed as the process itself reports it."""
    return _sample(port, 'cityos_ingest_events_valid_total{dataset="aed",department="fire"} ')


def _sample(port: int, prefix: str) -> float:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def assigned(port: int) -> float:
    """``cityos_ingest_assigned_partitions`` of a process; 0 while it is not serving yet."""
    try:
        return _sample(port, "cityos_ingest_assigned_partitions ")
    except httpx.HTTPError:
        return 0.0


def wait_until_assigned(started: list[tuple[subprocess.Popen[bytes], int]]) -> None:
    """Until every process holds some of the input's partitions and together they hold all."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        held = [assigned(port) for _process, port in started]
        if all(held) and sum(held) == PARTITIONS:
            return
        if any(process.poll() is not None for process, _port in started):
            raise SystemExit(_invalid("an ingest process ended early"))
        time.sleep(0.05)
    raise SystemExit(_invalid("the ingest processes did not share the partitions within 120 s"))


def ingest_run(plant: Plant, count: int, processes: int) -> float:
    """events/s of ``processes`` ingest processes in one group, started and settled (each holding
    its partitions) before the run's input becomes visible."""
    run = f"ingest{processes}-{uuid.uuid4().hex[:6]}"
    topic = plant.output_topic(run)
    env = plant.service_env(run)
    start_group_at_end(plant.kafka, env["CITYOS_INGEST_GROUP"], plant.input_topic)
    source, transaction = fill(plant.kafka, plant.input_topic, count)
    with ingest_processes(plant, env, run, processes) as started:
        wait_until_assigned(started)
        transaction.commit_transaction(60)
        wait_for_output(plant.kafka, topic, source.count, lambda: all(p.poll() is None for p, _ in started))
        # Outputs are acknowledged before they are counted: wait until every process counted them.
        deadline = time.monotonic() + 30
        valid = 0.0
        while time.monotonic() < deadline:
            valid = sum(valid_count(port) for _process, port in started)
            if valid >= source.count:
                break
            time.sleep(0.2)
    if valid != source.count:
        raise SystemExit(_invalid(f"ingest validated {valid:.0f} of {source.count} events"))
    plant.event_bytes = source.avg_bytes
    return middle_rate(output_stamps(plant.kafka, topic, source))


def limit_run(plant: Plant, count: int, validator: Any) -> float:
    topic = plant.output_topic(f"bare-{uuid.uuid4().hex[:6]}")
    group = f"bench-bare-{uuid.uuid4().hex[:6]}"
    start_group_at_end(plant.kafka, group, plant.input_topic)
    source, transaction = fill(plant.kafka, plant.input_topic, count)
    transaction.commit_transaction(60)
    valid = bare_loop(plant.kafka, group, plant.input_topic, topic, source.count, validator)
    if valid != source.count:  # the limit counts only if it did the work: every event validated
        raise SystemExit(_invalid(f"the limit validated {valid} of {source.count} events"))
    return middle_rate(output_stamps(plant.kafka, topic, source))


def _invalid(message: str) -> int:
    print(f"bench invalid: {message}", file=sys.stderr)
    return 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of the limit and one ingest")
    parser.add_argument("--scale-rounds", type=int, default=3, help="runs of two ingest processes (0: skip)")
    parser.add_argument("--bootstrap", default=Settings().kafka_bootstrap)
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    log_dir = REPO_ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    schemas_dir = fire_only_schemas(Settings().schemas_dir, log_dir / f"{prefix}schemas")
    settings = Settings(kafka_bootstrap=args.bootstrap, topic_prefix=prefix, schemas_dir=schemas_dir)
    kafka = kafka_access(settings, Principal.admin)  # the bench itself acts as the operator
    schema_set = load_schema_dir(settings.schemas_dir)
    departments = [(d.id, d.kafka_principal) for d in schema_set.departments.values()]
    create_topic(kafka, plant_input(settings), PARTITIONS, {})
    setup_kafka(settings, departments, admin=kafka)
    plant = Plant(kafka, settings, departments, log_dir)
    latest = schema_set.latest("aed")
    validator = rust_validator(upsert_event_schema(latest.uri, latest.document))  # what the registry compiles
    # The broker shares the machine's cores, so single runs are noisy: alternate the two over the
    # same input (fresh consumer groups and output topics) and compare medians.
    limits: list[float] = []
    singles: list[float] = []
    for round_ in range(args.rounds):
        # Alternate which goes first, so neither always meets a freshly written log.
        for which in ("limit", "ingest") if round_ % 2 == 0 else ("ingest", "limit"):
            if which == "limit":
                limits.append(limit_run(plant, args.events, validator))
            else:
                singles.append(ingest_run(plant, args.events, 1))
    pairs = [ingest_run(plant, args.events, 2) for _ in range(args.scale_rounds)]
    report(args, plant.event_bytes, limits, singles, pairs)


def report(
    args: argparse.Namespace,
    event_bytes: float,
    limits: list[float],
    singles: list[float],
    pairs: list[float],
) -> None:
    limit, ingest = statistics.median(limits), statistics.median(singles)
    ratio = ingest / limit
    print(f"machine  {machine()}")
    print(
        f"bench/ingest  events={args.events} x {args.rounds} rounds  avg_event_bytes={event_bytes:.0f}"
        f"  partitions={PARTITIONS}  strict scan={SCAN}  (rate: broker append stamps, middle 90 % of the output)"
    )
    print(
        f"  limit  (bare consume→parse→validate→produce, acked offsets): {limit:>9,.0f} events/s  runs {_runs(limits)}"
    )
    print(
        f"  ingest (`cityos serve ingest`, one process):                {ingest:>9,.0f} events/s  runs {_runs(singles)}"
    )
    verdict = "PASS" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"  ratio ingest/limit (medians): {ratio:.2f}   (target ≥ {TARGET_RATIO:.2f}: {verdict})")
    if pairs:
        two = statistics.median(pairs)
        scale = two / ingest
        met = "met" if scale >= TARGET_SCALE else "NOT met"
        print(
            f"  ingest, two processes in one group:                         {two:>9,.0f} events/s  runs {_runs(pairs)}"
        )
        print(
            f"  scale-out 2 vs 1 process: {scale:.2f}x   (goal ≥ {TARGET_SCALE:.1f}x on 2 cores shared with the"
            f" broker: {met}; reported, not judged)"
        )
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

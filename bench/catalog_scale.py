"""bench/catalog scale-out: two `cityos serve catalog` processes in one consumer group against one.

Each run provisions a fresh validated topic (6 partitions) and consumer group under a bench-only
prefix with ``setup_kafka``, as a deployment is (principals and ACLs), and starts real catalog
processes on it -- their own Kafka principal, a fresh PostgreSQL database. Once the group is stable
(every process holds partitions: no rebalance inside the measurement), the bench produces the AED
events as ingest writes them (key ``aed/<NO>``, the department header) and measures from outside:
when every event is in the ledger, the rate is taken over the middle 90 % of the ledger's
``processed_at`` stamps. Runs alternate between one and
two processes; the broker and PostgreSQL share the machine's cores with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import ConsumerGroupState, Producer

from bench.ingest import aed_event, free_port
from cityos.domain.kafka_setup import setup_kafka
from cityos.kernel.kafka import admin_client, producer_config
from cityos.kernel.kafka_access import KafkaAccess, Principal, kafka_access
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT, Settings
from services.ingest.routing import validated_headers

TARGET_SCALE = 1.6
RUN_TIMEOUT_S = 300.0
COMMAND = [sys.executable, "-m", "cityos", "serve", "catalog"]


@dataclass
class Plant:
    """The bench's prefix, the events and what every run derives from."""

    kafka: KafkaAccess
    settings: Settings
    departments: Sequence[tuple[str, str | None]]
    owner: str  # the department ingest read the events from (the dataset's owner)
    events: list[tuple[bytes, bytes]]  # (key, value) as ingest writes them
    log_dir: Path

    @property
    def count(self) -> int:
        return len(self.events)


def plant(pg_url: str, count: int) -> Plant:
    settings = Settings(topic_prefix=f"benchcat{uuid.uuid4().hex[:6]}.", database_url=pg_url)
    kafka = kafka_access(settings, Principal.admin)  # the bench acts as the operator
    schema_set = load_schema_dir(settings.schemas_dir)
    departments: list[tuple[str, str | None]] = [
        (d.id, d.kafka_principal) for d in schema_set.departments.values()
    ]
    events = [(f"aed/B{index:08d}".encode(), aed_event(index)) for index in range(count)]
    log_dir = REPO_ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    return Plant(kafka, settings, departments, schema_set.datasets["aed"].department, events, log_dir)


def produce(plant: Plant, topic: str) -> None:
    producer = Producer(producer_config(plant.kafka))
    headers = validated_headers(plant.owner)
    for key, value in plant.events:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)


def wait_until_stable(plant: Plant, group: str, members: int, alive: Callable[[], bool]) -> None:
    """Every process has joined the group and holds partitions: no rebalance inside the measurement."""
    admin = admin_client(plant.kafka)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        if not alive():
            raise SystemExit("bench invalid: a catalog process exited; see var/bench/catalog*.log")
        description: Any = admin.describe_consumer_groups([group])[group].result()
        assigned = [m for m in description.members if m.assignment and m.assignment.topic_partitions]
        if description.state == ConsumerGroupState.STABLE and len(assigned) == members:
            return
        time.sleep(0.2)
    raise SystemExit(f"bench invalid: {members} catalog processes never formed a stable group")


@contextmanager
def catalog_processes(
    plant: Plant, database_url: str, processes: int
) -> Iterator[tuple[Settings, list[subprocess.Popen[bytes]]]]:
    """``processes`` catalog processes of a fresh group on a fresh, empty validated topic."""
    run = f"catalog{processes}-{uuid.uuid4().hex[:6]}"
    settings = plant.settings.model_copy(
        update={
            "catalog_group": f"{plant.settings.topic_prefix}{run}",
            "validated_topic_name": f"validated.{run}",
        }
    )
    setup_kafka(settings, plant.departments, admin=plant.kafka)  # the run's topic and group in the ACLs
    env = dict(os.environ)
    env.update(
        {
            "CITYOS_KAFKA_BOOTSTRAP": plant.kafka.bootstrap,
            "CITYOS_TOPIC_PREFIX": settings.topic_prefix,
            "CITYOS_VALIDATED_TOPIC_NAME": settings.validated_topic_name,
            "CITYOS_CATALOG_GROUP": settings.catalog_group,
            "CITYOS_DATABASE_URL": database_url,
        }
    )
    env.pop("CITYOS_KAFKA_USERNAME", None)  # the service's own principal, as deployed
    started: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(processes):
            port = free_port()
            log = (plant.log_dir / f"{run}-{port}.log").open("ab")
            started.append(
                subprocess.Popen(
                    COMMAND,
                    env={**env, "CITYOS_CATALOG_PORT": str(port)},
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        yield settings, started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _driver_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def wait_for_ledger(url: str, count: int, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with psycopg.connect(_driver_url(url), autocommit=True) as conn:
        while time.monotonic() < deadline:
            try:
                row = conn.execute("SELECT count(*) FROM processed_events").fetchone()
            except psycopg.errors.UndefinedTable:
                row = (0,)  # not migrated yet
            if row is not None and row[0] >= count:
                return
            if not alive():
                raise SystemExit("bench invalid: a catalog process exited; see var/bench/catalog*.log")
            time.sleep(0.2)
    raise SystemExit(f"bench invalid: the catalog did not apply {count} events in {RUN_TIMEOUT_S:.0f} s")


def measured_rate(url: str, count: int) -> float:
    """Events/s over the middle 90 % of the ledger's stamps; every event applied exactly once."""
    with psycopg.connect(_driver_url(url)) as conn:
        stamps: list[datetime] = [
            row[0] for row in conn.execute("SELECT processed_at FROM processed_events ORDER BY processed_at")
        ]
        records = conn.execute("SELECT count(*) FROM records WHERE deleted_at IS NULL").fetchone()
    if len(stamps) != count or records is None or records[0] != count:
        raise SystemExit(f"bench invalid: {len(stamps)} ledger rows, {records} records for {count} events")
    low, high = stamps[int(count * 0.05)], stamps[int(count * 0.95) - 1]
    return (int(count * 0.95) - int(count * 0.05)) / max((high - low).total_seconds(), 1e-3)


def run(plant: Plant, database: Callable[[], AbstractContextManager[str]], processes: int) -> float:
    """Events/s of ``processes`` catalog processes on an empty database from ``database``."""
    with database() as url, catalog_processes(plant, url, processes) as (settings, started):
        alive = lambda: all(p.poll() is None for p in started)  # noqa: E731
        wait_until_stable(plant, settings.catalog_group, processes, alive)
        produce(plant, settings.validated_topic)
        wait_for_ledger(url, plant.count, alive)
        rate: float = measured_rate(url, plant.count)
    return rate


def scale_out(
    pg_url: str, database: Callable[[], AbstractContextManager[str]], count: int, rounds: int
) -> tuple[list[float], list[float]]:
    """(one process, two processes) events/s per round, alternating which goes first."""
    setup = plant(pg_url, count)
    singles: list[float] = []
    pairs: list[float] = []
    for number in range(rounds):
        for processes in (1, 2) if number % 2 == 0 else (2, 1):
            (singles if processes == 1 else pairs).append(run(setup, database, processes))
    return singles, pairs

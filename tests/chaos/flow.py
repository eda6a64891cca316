"""A steady flow of department events for the fault tests, and the exact check of what arrived.

Every record changes several times (versions in production order), so a lost event shows as an
older value, a redelivered old event that overwrote a newer one shows as the wrong value, and a
doubled application shows in the ledger. Some events are bad on purpose: they, and only they,
must be dead-lettered, each once.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select

from cityos.department.outbox import record_event
from cityos.kernel.db.engine import normalize_url
from cityos.kernel.db.models import ProcessedEvent, Record
from cityos.kernel.kafka import producer_config
from cityos.kernel.schemas import schema_uri
from tests.support.cluster import QUIET
from tests.support.feeds import read_settled
from tests.support.stack import Stack

DEPARTMENT = "fire"
DATASET = "aed"
VERSIONS = 5  # events per record
BAD_EVERY = 997  # one event in this many is malformed (a prime: bad ones land on every partition)
SOURCE = "/departments/fire/chaos"


def events_per_test() -> int:
    """100,000 by default, as the fault scenarios are specified; fewer while developing."""
    return int(os.environ.get("CITYOS_CHAOS_EVENTS", "100000"))


def aed(number: int, version: int, event_id: str) -> dict[str, Any]:
    # Every value depends on the event: a record holding another event's values is caught.
    return {
        "NO": f"K{number:06d}",
        "名称": f"障害試験施設{number}-{event_id}",
        "名称_カナ": "ショウガイシケンシセツ",
        "住所": f"福岡県北九州市小倉北区城内{version + 1}-{number % 50 + 1}",
        "設置位置": ("1階", "2階", "玄関")[version % 3],
        "緯度": round(33.8 + (number % 1000) / 10_000, 6),
        "経度": round(130.8 + version / 1000, 6),
    }


@dataclass(frozen=True)
class Planned:
    key: bytes
    value: bytes
    event_id: str | None  # None: a bad event, which must be dead-lettered
    data: dict[str, Any] | None


def plan(total: int) -> list[Planned]:
    records = max(total // VERSIONS, 1)
    planned = []
    for index in range(total):
        if index % BAD_EVERY == BAD_EVERY - 1:
            key = f"bad/{index}".encode()
            planned.append(Planned(key, b'{"specversion": "1.0", "id": "bad-%d",' % index, None, None))
            continue
        number, version = index % records, index // records
        event_id = f"chaos-{index}"
        data = aed(number, version, event_id)
        value = record_event(record=data, dataschema=schema_uri(DATASET, 1), source=SOURCE, event_id=event_id)
        planned.append(Planned(f"{DATASET}/{data['NO']}".encode(), value, event_id, data))
    return planned


@dataclass
class Flow:
    """Produces the plan at ``rate`` events/s in a thread, as a department system would (idempotent,
    acks=all); remembers which events the cluster acknowledged.

    The rate is set low enough for every fault to land mid-flow however slowly this machine restarts
    a broker; once the faults are done, ``hurry`` sends the rest as fast as the cluster takes it."""

    stack: Stack
    total: int
    rate: float
    planned: list[Planned] = field(init=False)
    acked: set[bytes] = field(default_factory=set)  # values acknowledged by the cluster
    failed: list[str] = field(default_factory=list)
    produced: int = 0
    _hurry: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.planned = plan(self.total)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-producer", daemon=True)
        self._thread.start()

    def wait_started(self, fraction: float = 0.02) -> None:
        """Until this share of the plan was handed to the producer: the flow is under way."""
        while self.produced < self.total * fraction:
            assert self.running, "the producer stopped before the flow was under way"
            time.sleep(0.05)

    def hurry(self) -> None:
        self._hurry.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float = 600) -> None:
        assert self._thread is not None
        self.hurry()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the producer did not finish"
        assert not self.failed, f"{len(self.failed)} events refused by the cluster, e.g. {self.failed[:3]}"
        assert len(self.acked) == self.total, f"only {len(self.acked)} of {self.total} events acknowledged"

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.acked.add(message.value() or b"")
        else:
            self.failed.append(str(error))

    def _run(self) -> None:
        producer = Producer(producer_config(self.stack.kafka, log_level=QUIET))
        topic = self.stack.settings.department_topic(DEPARTMENT)
        started = time.monotonic()
        for index, event in enumerate(self.planned):
            while True:
                try:
                    producer.produce(topic, key=event.key, value=event.value, on_delivery=self._delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            self.produced = index + 1
            if index % 50 == 49:
                producer.poll(0)
                if self._hurry.is_set():
                    continue
                ahead = started + (index + 1) / self.rate - time.monotonic()
                if ahead > 0:
                    self._hurry.wait(ahead)
        while producer.flush(5) > 0:
            pass


def expected_records(flow: Flow) -> dict[str, tuple[str, dict[str, Any]]]:
    """Record key -> (event id, values) of the last acknowledged event of each record."""
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for event in flow.planned:
        if event.event_id is not None and event.data is not None and event.value in flow.acked:
            latest[str(event.data["NO"])] = (event.event_id, event.data)
    return latest


def catalog_state(database_url: str) -> tuple[dict[str, tuple[str, dict[str, Any]]], list[tuple[str, str]]]:
    """(record key -> (event id, values), [(event id, outcome)] of the ledger) of the chaos dataset."""
    engine = create_engine(normalize_url(database_url))
    try:
        with engine.connect() as conn:
            records = {
                key: (event_id, data)
                for key, event_id, data in conn.execute(
                    select(Record.record_key, Record.event_id, Record.data).where(
                        Record.dataset_id == DATASET, Record.event_source == SOURCE
                    )
                )
            }
            ledger = [
                (event_id, outcome)
                for event_id, outcome in conn.execute(
                    select(ProcessedEvent.event_id, ProcessedEvent.outcome).where(
                        ProcessedEvent.source == SOURCE
                    )
                )
            ]
    finally:
        engine.dispose()
    return records, ledger


def wait_for_catalog(flow: Flow, database_url: str, timeout_s: float = 300) -> None:
    """Until the ledger holds every acknowledged good event (or the time is up), then 2 s longer:
    anything redelivered late must change nothing. A stack service exiting meanwhile fails at once."""
    good = sum(1 for e in flow.planned if e.event_id is not None and e.value in flow.acked)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        flow.stack.assert_running()
        try:
            _records, ledger = catalog_state(database_url)
        except Exception:  # the database may be restarting
            ledger = []
        if len(ledger) >= good:
            break
        time.sleep(1)
    time.sleep(2)


def assert_exactly_once(flow: Flow, database_url: str) -> None:
    """Every acknowledged good event applied once; every record holds its last event's id and values."""
    records, ledger = catalog_state(database_url)
    expected = expected_records(flow)
    good_ids = {e.event_id for e in flow.planned if e.event_id is not None and e.value in flow.acked}
    ledger_ids = Counter(event_id for event_id, _outcome in ledger)
    lost = good_ids - set(ledger_ids)
    doubled = [event_id for event_id, n in ledger_ids.items() if n > 1]
    unknown = set(ledger_ids) - good_ids
    assert not lost, f"{len(lost)} acknowledged events never applied, e.g. {sorted(lost)[:5]}"
    assert not doubled, f"{len(doubled)} events applied more than once, e.g. {doubled[:5]}"
    assert not unknown, f"{len(unknown)} events applied that were never sent, e.g. {sorted(unknown)[:5]}"
    outcomes = Counter(outcome for _event_id, outcome in ledger)
    assert set(outcomes) == {"applied"}, f"every event applied in production order, got {dict(outcomes)}"
    assert set(records) == set(expected), f"records: {len(records)} in the catalog, {len(expected)} expected"
    wrong = [key for key, (event_id, data) in expected.items() if records[key] != (event_id, data)]
    assert not wrong, (
        f"{len(wrong)} records hold another event's values, e.g. {wrong[0]}: "
        f"{records[wrong[0]]} instead of {expected[wrong[0]]}"
    )


def assert_dead_letters_exact(flow: Flow) -> None:
    """The dead-letter topic holds exactly the injected bad events, each once, original bytes kept."""
    stack = flow.stack
    bad = Counter(e.value for e in flow.planned if e.event_id is None and e.value in flow.acked)
    letters = read_settled(stack, stack.settings.deadletter_topic, sum(bad.values()), timeout_s=60)
    got = Counter(m.value() or b"" for m in letters)
    assert got == bad, f"dead letters: {sum(got.values())} for {sum(bad.values())} bad events sent"


def metrics(url: str) -> dict[str, float]:
    """A process's Prometheus samples, ``name{label="v",…}`` -> value (empty when it cannot answer)."""
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def validated_ids(stack: Stack, at_least: int) -> Counter[str]:
    """Event id -> copies on the validated topic (ingest's redeliveries after a kill show as > 1)."""
    messages = read_settled(stack, stack.settings.validated_topic, at_least, timeout_s=120)
    return Counter(orjson.loads(m.value() or b"")["id"] for m in messages)

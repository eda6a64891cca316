"""Nothing lost, nothing doubled over HTTP: the HTTP ingestion service is killed with SIGKILL at
random moments while a client sends 10 000 events in batches and retries every request that got no
answer or a 5xx. Every event the client saw accepted is in the catalog exactly once, with the values
and origin it was sent with; no event that was refused is anywhere in it."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityos.domain.apikeys import SCOPE_INGEST
from cityos.kernel.db.engine import make_engine
from cityos.kernel.db.models import ProcessedEvent, Record
from cityos.kernel.kafka_access import KafkaAccess
from cityos.kernel.schemas import schema_uri
from tests.integration.test_http_ingest import department_key
from tests.support.stack import INGEST_HTTP, Stack

EVENTS = 10_000
BATCH = 100
KILLS = 4
REFUSED_EVERY = 37  # every 37th event breaks the schema: it must be refused and never stored
SOURCE = "/departments/fire/http-faults"


def data(index: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "NO": f"k{index:05d}",
        "名称": f"施設{index}",
        "名称_カナ": "シセツ",
        "住所": f"北九州市小倉北区城内{index}",
        "設置位置": ("1階", "2階", "玄関")[index % 3],
        "緯度": 33.0 + index / 100_000,
        "経度": 130.0 + index / 100_000,
    }
    if index % REFUSED_EVERY == 0:
        record["緯度"] = "north"
    return record


def event(index: int) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": f"e{index:05d}",
            "source": SOURCE,
            "type": "jp.cityos.record.upserted",
            "time": "2026-11-27T12:00:00+09:00",
            "dataschema": schema_uri("aed", 1),
            "data": data(index),
        }
    )


class Client:
    """Sends every batch until it is answered with 202 or 422, retrying anything else."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/cloudevents-batch+json",
        }
        self.accepted: set[int] = set()
        self.refused: set[int] = set()
        self.retries = 0
        self.batches_answered = 0

    def send_all(self) -> None:
        with httpx.Client(timeout=30) as http:
            for start in range(0, EVENTS, BATCH):
                indexes = list(range(start, min(start + BATCH, EVENTS)))
                self._send(http, indexes, b"[" + b",".join(event(i) for i in indexes) + b"]")

    def _send(self, http: httpx.Client, indexes: list[int], body: bytes) -> None:
        while True:
            try:
                answer = http.post(self.url, content=body, headers=self.headers)
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code in (202, 422):
                for result in answer.json()["results"]:
                    index = indexes[result["index"]]
                    (self.accepted if result["status"] == "accepted" else self.refused).add(index)
                self.batches_answered += 1
                return
            self.retries += 1
            time.sleep(0.2)


def killer(stack: Stack, client: Client, done: threading.Event, kills: list[float]) -> None:
    """kill -9 the service at random points of the client's flow, then start it again on the same port.

    The points are batch counts, not wall-clock moments, so every kill lands while the client still has
    batches to send however fast the machine is; a short random delay after each point makes the kill
    hit a request in flight rather than the gap between two.
    """
    chance = random.Random(20261202)
    batches = EVENTS // BATCH
    for point in sorted(chance.sample(range(5, batches - 5), KILLS)):
        while client.batches_answered < point:
            if done.wait(0.005):
                return
        if done.wait(chance.uniform(0.0, 0.05)):
            return
        stack.kill(INGEST_HTTP)
        kills.append(time.monotonic())
        stack.start(INGEST_HTTP)


@pytest.mark.timeout(300)
def test_kill_9_while_sending_loses_nothing_and_doubles_nothing(kafka: KafkaAccess, tmp_path: Path) -> None:
    stack = Stack(kafka=kafka, database_url=f"sqlite:///{tmp_path / 'catalog.db'}", log_dir=tmp_path)
    try:
        stack.start("catalog")
        client = Client(stack.url(INGEST_HTTP, "/api/v1/events"), department_key(stack, "fire", SCOPE_INGEST))
        stack.start(INGEST_HTTP)
        done, kills = threading.Event(), list[float]()
        chaos = threading.Thread(target=killer, args=(stack, client, done, kills))
        chaos.start()
        try:
            client.send_all()
        finally:
            done.set()
            chaos.join(60)
        assert len(kills) == KILLS, "the service must have been killed while the client was sending"
        assert client.accepted | client.refused == set(range(EVENTS))
        assert client.refused == {i for i in range(EVENTS) if i % REFUSED_EVERY == 0}
        stored = wait_for_records(stack.database_url, len(client.accepted))
        assert set(stored) == {f"k{i:05d}" for i in client.accepted}, "every accepted event is stored"
        for index in client.accepted:
            record = stored[f"k{index:05d}"]
            assert record == (data(index), SOURCE, f"e{index:05d}"), "values and origin as sent"
        assert ledger_count(stack.database_url) == len(client.accepted), "each event applied exactly once"
        print(f"kills={len(kills)} retries={client.retries} accepted={len(client.accepted)}")
    finally:
        stack.stop_all()


def wait_for_records(
    url: str, count: int, timeout_s: float = 90
) -> dict[str, tuple[dict[str, Any], str, str]]:
    engine = make_engine(url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with Session(engine) as session:
                rows = session.execute(
                    select(Record.record_key, Record.data, Record.event_source, Record.event_id).where(
                        Record.dataset_id == "aed"
                    )
                ).all()
            found = {key: (value, source, event_id) for key, value, source, event_id in rows}
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.5)
    finally:
        engine.dispose()


def ledger_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.source == SOURCE)
                )
                or 0
            )
    finally:
        engine.dispose()

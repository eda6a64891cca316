"""A leaked ingest credential is no way around the registry: the catalog checks every validated event.

The broker already lets only ingest write the validated topic (see test_kafka_access_matrix.py). Here
the test writes to it as the administrator, standing in for a stolen ingest password, and sends what
the reproduced attacks sent: a record into a public anonymized release, a record of a dataset under
another department's name, an unknown schema version, an unknown dataset with junk fields, and an
event without ingest's department header. Each must be dead-lettered with its reason, and none may
reach the API; an honest event in the same stream still goes through.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import httpx
from confluent_kafka import Message

from cityos.department.outbox import record_event
from cityos.kernel.db.engine import make_engine, session_factory
from cityos.kernel.schemas import schema_uri
from tests.support.feeds import as_ingest
from tests.support.releases import store_synthetic_moves
from tests.support.stack import Stack, header

AED = {"NO": "", "名称": "侵入試験", "名称_カナ": "シンニュウ", "住所": "北九州市", "設置位置": "1階"}


def event(dataset: str, key: str, version: int = 1, **extra: object) -> tuple[bytes, bytes]:
    record = {**AED, "NO": key, **extra}
    value = record_event(
        record=record, dataschema=schema_uri(dataset, version), source="/attacker", event_id=f"forged-{key}"
    )
    return f"{dataset}/{key}".encode(), value


def public_release(stack: Stack) -> str:
    """A public anonymized release of synthetic resident moves, made by the release gate."""
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session:
            store_synthetic_moves(session, count=400, seed=91, now=datetime.now(UTC))
    finally:
        engine.dispose()
    made = stack.cli("release", "run", "--classification", "public", "--operator", "citizens")
    assert made.returncode == 0, made.stderr.decode()
    found = re.search(r'"dataset": "([^"]+)"', made.stdout.decode())
    assert found is not None, made.stdout.decode()
    return found[1]


def test_the_catalog_refuses_what_the_registry_would_not_pass(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.start("catalog", "publish")
    release = public_release(stack)
    release_rows_before = httpx.get(stack.url("publish", f"/api/v1/datasets/{release}/records"), timeout=30)
    assert release_rows_before.status_code == 200

    forged: list[tuple[str, bytes, bytes, list[tuple[str, str | bytes]]]] = []
    key, value = event(release, "R1", 年齢=34, 氏名="山田太郎", 住民番号="000123456789")
    forged.append(("release_dataset", key, value, as_ingest(key, "citizens")))
    key, value = event("aed", "W1")
    forged.append(("wrong_department", key, value, as_ingest(key, "planning")))
    key, value = event("aed", "V1", version=99)
    forged.append(("unknown_schema_version", key, value, as_ingest(key)))
    key, value = event("aed", "ZZ2", junk="<x>")  # the reproduced attack: a junk column in a public dataset
    forged.append(("schema_violation", key, value, as_ingest(key)))
    key, value = event("zz-nowhere", "J1")
    forged.append(("unknown_dataset", key, value, as_ingest(key, "fire")))
    key, value = event("aed", "K1")
    forged.append(("missing_record_key", b"aed/K2", value, as_ingest(key)))  # key and record disagree
    key, value = event("aed", "H1")
    forged.append(("wrong_department", key, value, []))  # no department header at all
    honest_key, honest_value = event("aed", "OK1")

    producer = stack.producer()
    for _reason, key, value, headers in forged:
        producer.produce(stack.settings.validated_topic, key=key, value=value, headers=headers, partition=0)
    producer.produce(
        stack.settings.validated_topic,
        key=honest_key,
        value=honest_value,
        headers=as_ingest(honest_key),
        partition=0,
    )
    assert producer.flush(30) == 0

    letters = stack.read(stack.settings.deadletter_topic, until=lambda found: len(found) >= len(forged))
    by_key: dict[bytes, Message] = {m.key() or b"": m for m in letters}
    for reason, key, _value, _headers in forged:
        assert key in by_key, f"{key!r} was not dead-lettered"
        assert header(by_key[key], "cityos_reason") == reason, key
        assert by_key[key].value() == _value, "the dead letter keeps the original bytes"

    # The honest event is stored; nothing forged is served.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = httpx.get(stack.url("publish", "/api/v1/datasets/aed/records/OK1"), timeout=10)
        if got.status_code == 200:
            break
        time.sleep(0.3)
    assert got.status_code == 200, got.text
    for record in ("W1", "V1", "H1", "ZZ2", "K1", "K2"):
        path = f"/api/v1/datasets/aed/records/{record}"
        assert httpx.get(stack.url("publish", path), timeout=10).status_code == 404, path
    after = httpx.get(stack.url("publish", f"/api/v1/datasets/{release}/records"), timeout=30)
    assert after.json() == release_rows_before.json(), "the release is exactly what the gate wrote"
    assert "山田太郎" not in after.text and "000123456789" not in after.text
    csv = httpx.get(
        stack.url("publish", "/api/v1/datasets/aed/records"), params={"format": "csv"}, timeout=30
    )
    assert "junk" not in csv.text and "ZZ2" not in csv.text
    assert (
        httpx.get(stack.url("publish", "/api/v1/datasets/zz-nowhere/records"), timeout=10).status_code == 404
    )

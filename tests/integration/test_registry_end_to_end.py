"""Schema evolution and dead-letter repair end to end, on the real broker, SQLite and PostgreSQL.

aed at v1 → events at v1 flow → v2 (an optional field) accepted under BACKWARD and used by the running
ingest without a restart → events at v1 and v2 served → v3 removing a required field refused with
reasons → events naming v3 dead-lettered as unknown_schema_version → a compatible v3 registered with
the CLI → ``cityos dlq replay`` brings every one into the catalog; sent = served; replaying again
changes nothing, a forced replay only makes catalog duplicates.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from cityos.department.csvimport import iter_csv_records
from cityos.department.outbox import STRUCTURED_HEADERS, record_event
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT
from tests.support.fixtures_path import OPENDATA_SAMPLES
from tests.support.promtool import assert_promtool_clean
from tests.support.stack import Stack

PER_STEP = 5


def aed_records(count: int) -> list[dict[str, Any]]:
    schema_set = load_schema_dir(REPO_ROOT / "schemas")
    meta = schema_set.datasets["aed"]
    rows = iter_csv_records(
        OPENDATA_SAMPLES / "yaizu-222127" / "222127_aed.csv", meta, schema_set.latest("aed").document
    )
    records = [row.record for row in rows if row.record is not None]
    return records[:count]


def send(stack: Stack, version: int, records: list[dict[str, Any]]) -> list[str]:
    producer = stack.producer()
    ids = []
    for record in records:
        event_id = f"reg-{uuid.uuid4().hex}"
        value = record_event(
            record=record,
            dataschema=schema_uri("aed", version),
            source="/departments/fire/aed-system",
            event_id=event_id,
        )
        producer.produce(
            stack.settings.department_topic("fire"),
            key=record["NO"].encode(),
            value=value,
            headers=STRUCTURED_HEADERS,
        )
        ids.append(event_id)
    assert producer.flush(30) == 0
    return ids


def wait_until(what: str, check: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def served(stack: Stack) -> dict[str, dict[str, Any]]:
    body = httpx.get(stack.url("publish", "/api/v1/datasets/aed/records"), params={"limit": 1000}).json()
    return {record["NO"]: record for record in body["records"]}


def metric(url: str, line_start: str) -> float | None:
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


@pytest.mark.timeout(300)
def test_schema_evolution_and_deadletter_replay(stack: Stack, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {stack.admin_token}"}
    stack.start("catalog")
    stack.start("ingest", "publish")
    records = aed_records(3 * PER_STEP)
    first, second, third = records[:PER_STEP], records[PER_STEP : 2 * PER_STEP], records[2 * PER_STEP :]
    v1 = json.loads((REPO_ROOT / "schemas" / "aed" / "v1.schema.json").read_text(encoding="utf-8"))
    catalog = stack.url("catalog")
    ingest_metrics = stack.url("ingest", "/metrics")
    start_versions = metric(ingest_metrics, "cityos_ingest_schema_versions")
    assert start_versions is not None

    # v1 flows.
    send(stack, 1, first)
    wait_until("v1 records", lambda: len(served(stack)) == PER_STEP)

    # v2 adds an optional field: accepted under BACKWARD (the default), registered once.
    v2 = copy.deepcopy(v1)
    del v2["$id"]
    v2["properties"]["点検日"] = {"type": "string", "title": "点検日", "format": "date", "maxLength": 10}
    answer = httpx.post(f"{catalog}/api/v1/admin/schemas/aed", json=v2, headers=auth)
    assert answer.status_code == 201, answer.text
    assert (answer.json()["version"], answer.json()["uri"]) == (2, schema_uri("aed", 2))
    again = httpx.post(f"{catalog}/api/v1/admin/schemas/aed", json=v2, headers=auth)
    assert (again.status_code, again.json()["version"], again.json()["existing"]) == (200, 2, True)
    assert httpx.post(f"{catalog}/api/v1/admin/schemas/aed", json=v2).status_code == 401
    document = httpx.get(f"{catalog}/schemas/aed/2", headers=auth).json()
    assert document["$id"] == schema_uri("aed", 2)
    assert "点検日" in document["properties"]

    # The running ingest picks v2 up from the schema topic, without a restart.
    wait_until(
        "ingest to know v2",
        lambda: metric(ingest_metrics, "cityos_ingest_schema_versions") == start_versions + 1,
    )
    send(stack, 2, [{**record, "点検日": "2026-11-01"} for record in second])
    got = wait_until("v1 and v2 records", lambda: (s := served(stack)) and len(s) == 2 * PER_STEP and s)
    assert all(got[r["NO"]].get("点検日") == "2026-11-01" for r in second)
    assert all("点検日" not in got[r["NO"]] for r in first)

    # v3 removes a required field: refused with reasons (check-only first: same answer, nothing written).
    v3_bad = copy.deepcopy(v2)
    del v3_bad["properties"]["名称_カナ"]
    v3_bad["required"].remove("名称_カナ")
    checked = httpx.post(f"{catalog}/api/v1/admin/schemas/aed/check", json=v3_bad, headers=auth).json()
    refused = httpx.post(f"{catalog}/api/v1/admin/schemas/aed", json=v3_bad, headers=auth)
    assert refused.status_code == 409
    for body in (checked, refused.json()):
        assert body["acceptable"] is False and body["compatibility"] == "BACKWARD"
        reasons = body["incompatibilities"]
        assert [(r["pointer"], r["rule"], r["version"]) for r in reasons] == [
            ("/properties/名称_カナ", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", 2)
        ]
        assert "名称_カナ" in reasons[0]["message"]["en"] and "名称_カナ" in reasons[0]["message"]["ja"]
    listing = httpx.get(f"{catalog}/api/v1/admin/schemas/aed", headers=auth).json()
    assert [v["version"] for v in listing["versions"]] == [1, 2]

    # Events naming v3 arrive anyway: dead-lettered as unknown_schema_version.
    without_kana = [{k: v for k, v in record.items() if k != "名称_カナ"} for record in third]
    sent_v3 = send(stack, 3, without_kana)

    def unknown_version_letters() -> list[dict[str, Any]]:
        result = stack.cli("dlq", "list", "--reason", "unknown_schema_version", "--dataset", "aed", "--json")
        assert result.returncode == 0, result.stderr.decode()
        letters: list[dict[str, Any]] = json.loads(result.stdout)["deadletters"]
        return letters if len(letters) == PER_STEP else []

    letters = wait_until("v3 events dead-lettered", unknown_version_letters)
    assert sorted(letter["event_id"] for letter in letters) == sorted(sent_v3)
    assert all(letter["pointer"] == "/dataschema" and letter["department"] == "fire" for letter in letters)
    shown = httpx.get(f"{catalog}/api/v1/admin/dlq/{letters[0]['id']}", headers=auth).json()
    original = json.loads(shown["value"]["text"])
    assert original["dataschema"] == schema_uri("aed", 3) and original["id"] == letters[0]["event_id"]
    assert len(served(stack)) == 2 * PER_STEP

    # A compatible v3 (名称_カナ optional, still declared) registered with the CLI.
    v3 = copy.deepcopy(v2)
    v3["required"].remove("名称_カナ")
    v3_file = tmp_path / "aed-v3.schema.json"
    v3_file.write_text(json.dumps(v3, ensure_ascii=False), encoding="utf-8")
    registered = stack.cli("schemas", "register", "aed", str(v3_file))
    assert registered.returncode == 0, registered.stderr.decode()
    assert json.loads(registered.stdout)["version"] == 3
    wait_until(
        "ingest to know v3",
        lambda: metric(ingest_metrics, "cityos_ingest_schema_versions") == start_versions + 2,
    )

    # Replay brings every one of them into the catalog: sent = served.
    replayed = stack.cli("dlq", "replay", "--reason", "unknown_schema_version")
    assert replayed.returncode == 0, replayed.stderr.decode()
    assert json.loads(replayed.stdout)["counts"] == {
        "replayed": PER_STEP,
        "skipped": 0,
        "refused": 0,
        "failed": 0,
    }
    final = wait_until("replayed records", lambda: (s := served(stack)) and len(s) == 3 * PER_STEP and s)
    assert {no: final[no] for no in (r["NO"] for r in third)} == {r["NO"]: r for r in without_kana}
    datasets = {d["id"]: d for d in httpx.get(f"{catalog}/api/v1/admin/datasets", headers=auth).json()}
    assert datasets["aed"]["record_count"] == 3 * PER_STEP

    # Replaying again sends nothing; a forced replay is absorbed by the catalog's ledger.
    again_cli = stack.cli("dlq", "replay", "--reason", "unknown_schema_version")
    assert json.loads(again_cli.stdout)["counts"]["skipped"] == PER_STEP
    forced = httpx.post(
        f"{catalog}/api/v1/admin/dlq/replay",
        json={"reason": "unknown_schema_version", "force": True},
        headers=auth,
    ).json()
    assert forced["counts"]["replayed"] == PER_STEP
    wait_until(
        "forced replays seen as duplicates",
        lambda: metric(f"{catalog}/metrics", 'cityos_catalog_events_total{outcome="duplicate"}') == PER_STEP,
    )
    assert len(served(stack)) == 3 * PER_STEP
    assert {d["id"]: d for d in httpx.get(f"{catalog}/api/v1/admin/datasets", headers=auth).json()}["aed"][
        "record_count"
    ] == 15

    # Metrics: dead letters by reason and dataset (ingest), replays by outcome (catalog).
    assert (
        metric(
            ingest_metrics,
            'cityos_ingest_events_deadlettered_total{dataset="aed",department="fire",reason="unknown_schema_version"}',
        )
        == PER_STEP
    )
    assert metric(f"{catalog}/metrics", 'cityos_dlq_replays_total{outcome="replayed"}') == 2 * PER_STEP
    assert metric(f"{catalog}/metrics", 'cityos_dlq_replays_total{outcome="skipped"}') == PER_STEP
    assert metric(f"{catalog}/metrics", 'cityos_registry_registrations_total{outcome="registered"}') == 1
    assert metric(f"{catalog}/metrics", 'cityos_registry_registrations_total{outcome="refused"}') == 1

    # The level is per dataset: with NONE the refused change would be acceptable (check only).
    level_url = f"{catalog}/api/v1/admin/schemas/aed/compatibility"
    assert httpx.put(level_url, json={"compatibility": "NONE"}).status_code == 401
    assert httpx.put(level_url, json={"compatibility": "NONE"}, headers=auth).status_code == 200
    assert httpx.get(level_url, headers=auth).json() == {"dataset": "aed", "compatibility": "NONE"}
    relaxed = httpx.post(f"{catalog}/api/v1/admin/schemas/aed/check", json=v3_bad, headers=auth).json()
    assert (relaxed["acceptable"], relaxed["version"], relaxed["incompatibilities"]) == (True, 4, [])
    assert httpx.put(level_url, json={"compatibility": "SOMETIMES"}, headers=auth).status_code == 422

    # The schema topic holds every registered version: the catalog republished the start-up set.
    expected_uris = set(load_schema_dir(REPO_ROOT / "schemas").versions)  # every bundled version
    expected_uris |= {schema_uri("aed", 2), schema_uri("aed", 3)}
    on_topic = stack.read(
        stack.settings.schemas_topic,
        until=lambda msgs: {(m.key() or b"").decode() for m in msgs} >= expected_uris,
    )
    assert {(m.key() or b"").decode() for m in on_topic} == expected_uris
    for service in ("ingest", "catalog"):
        assert_promtool_clean(stack.url(service, "/metrics"))

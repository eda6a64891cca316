"""Dead-letter repair on the real broker: browse by dataset, reason, department and time; show the
original bytes and headers; replay a corrected payload; refuse what is not a department's event;
the admin API needs the administrator's credential."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cityos.department.outbox import STRUCTURED_HEADERS, record_event
from cityos.kernel.schemas import schema_uri
from tests.support.stack import Stack

OTHER = {
    "NO": "9000000002",
    "名称": "小倉北区役所",
    "名称_カナ": "コクラキタクヤクショ",
    "住所": "福岡県北九州市小倉北区大手町1番1号",
    "設置位置": "正面玄関",
}
GOOD = {
    "NO": "9000000001",
    "名称": "北九州市役所",
    "名称_カナ": "キタキュウシュウシヤクショ",
    "住所": "福岡県北九州市小倉北区城内1番1号",
    "設置位置": "1階ロビー",
}


def wait_for(what: str, check: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def letters(stack: Stack, *filters: str) -> list[dict[str, Any]]:
    result = stack.cli("dlq", "list", "--json", *filters)
    assert result.returncode == 0, result.stderr.decode()
    found: list[dict[str, Any]] = json.loads(result.stdout)["deadletters"]
    return found


@pytest.mark.timeout(240)
def test_browse_show_correct_and_replay(stack: Stack, tmp_path: Path) -> None:
    stack.start("catalog")
    stack.start("ingest", "publish")
    producer = stack.producer()
    fire = stack.settings.department_topic("fire")
    # A schema violation (名称 too long), a wrong department, and a foreign dead letter.
    bad_id = f"bad-{uuid.uuid4().hex}"
    bad = record_event(
        record={**GOOD, "名称": "長" * 300},
        dataschema=schema_uri("aed", 1),
        source="/departments/fire/x",
        event_id=bad_id,
    )
    producer.produce(
        fire, key=b"aed/9000000001", value=bad, headers=[*STRUCTURED_HEADERS, ("x-trace", b"t-1")]
    )
    wrong = record_event(
        record=GOOD, dataschema=schema_uri("aed", 1), source="/departments/general-affairs/x", event_id="w-1"
    )
    producer.produce(
        stack.settings.department_topic("general-affairs"), value=wrong, headers=STRUCTURED_HEADERS
    )
    producer.produce(
        stack.settings.deadletter_topic,
        value=b"{}",
        headers=[("cityos_reason", b"catalog_rejected"), ("cityos_source_topic", b"elsewhere.validated")],
    )
    # What the catalog dead-letters when its database refuses a validated event: the validated
    # message as it was, from this environment's validated topic.
    refused_by_catalog = record_event(
        record=OTHER, dataschema=schema_uri("aed", 1), source="/departments/fire/x", event_id="c-1"
    )
    producer.produce(
        stack.settings.deadletter_topic,
        key=b"aed/9000000002",
        value=refused_by_catalog,
        headers=[
            ("cityos_reason", b"catalog_rejected"),
            ("cityos_dataset", b"aed"),
            ("cityos_department", b"fire"),  # the department ingest had read it from
            ("cityos_source_topic", stack.settings.validated_topic.encode()),
        ],
    )
    assert producer.flush(30) == 0

    wait_for("four dead letters", lambda: len(letters(stack)) == 4)
    [violation] = letters(stack, "--reason", "schema_violation", "--dataset", "aed", "--department", "fire")
    assert violation["event_id"] == bad_id and violation["pointer"] == "/data/名称"
    assert [w["reason"] for w in letters(stack, "--department", "general-affairs")] == ["wrong_department"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert letters(stack, "--since", future) == []
    assert len(letters(stack, "--until", future)) == 4

    shown = stack.cli("dlq", "show", violation["id"])
    assert shown.returncode == 0, shown.stderr.decode()
    details = json.loads(shown.stdout)
    assert details["value"]["text"].encode() == bad, "the original bytes, unchanged"
    assert {"name": "x-trace", "value": {"text": "t-1"}} in details["headers"]

    # The admin API: only with the administrator's credential.
    catalog = stack.url("catalog")
    assert httpx.get(f"{catalog}/api/v1/admin/dlq").status_code == 401
    listed = httpx.get(
        f"{catalog}/api/v1/admin/dlq",
        params={"reason": "schema_violation"},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    ).json()
    assert [d["id"] for d in listed["deadletters"]] == [violation["id"]]
    one_payload_for_many = httpx.post(
        f"{catalog}/api/v1/admin/dlq/replay",
        json={"all": True, "value": GOOD},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    assert one_payload_for_many.status_code == 400

    # Replaying unchanged would fail again; a corrected payload goes through ingest and is served.
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(
        record_event(
            record=GOOD, dataschema=schema_uri("aed", 1), source="/departments/fire/x", event_id=bad_id
        )
    )
    replayed = stack.cli("dlq", "replay", violation["id"], "--value-file", str(fixed))
    assert replayed.returncode == 0, replayed.stderr.decode()
    assert json.loads(replayed.stdout)["counts"]["replayed"] == 1

    def served() -> list[dict[str, Any]]:
        response = httpx.get(stack.url("publish", "/api/v1/datasets/aed/records"))
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    assert wait_for("the corrected record", served) == [GOOD]
    assert [d["replays"] for d in letters(stack, "--reason", "schema_violation")] == [1]

    # The catalog's dead letter goes back through ingest, to the topic of the department it came from
    # (only ingest may write the validated topic); the foreign one came from no topic of this
    # environment: refused, nothing sent.
    again = stack.cli("dlq", "replay", "--reason", "catalog_rejected")
    assert again.returncode == 0, again.stderr.decode()
    report = json.loads(again.stdout)
    assert report["counts"] == {"replayed": 1, "skipped": 0, "refused": 1, "failed": 0}
    assert "not a department topic" in report["refused"][0]["why"]
    wait_for(
        "the catalog's dead letter applied",
        lambda: sorted(r["NO"] for r in served()) == ["9000000001", "9000000002"],
    )
    # Asking for nothing is an error, not "everything".
    assert stack.cli("dlq", "replay").returncode != 0

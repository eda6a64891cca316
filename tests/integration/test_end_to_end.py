"""Real data end to end: import-csv → Kafka → ingest → catalog → open-data API, on SQLite and
PostgreSQL. Rows sent = rows served + rows dead-lettered, and served values equal the CSV's."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from cityos.department.csvimport import iter_csv_records
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT
from tests.support.fixtures_path import OPENDATA_SAMPLES
from tests.support.promtool import assert_promtool_clean
from tests.support.stack import Stack

YAIZU = OPENDATA_SAMPLES / "yaizu-222127"


def import_csv(stack: Stack, path: Path, dataset: str, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    summary_file = tmp_path / f"{dataset}-summary.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cityos",
            "import-csv",
            str(path),
            "--dataset",
            dataset,
            "--json-summary",
            str(summary_file),
        ],
        env=stack.env,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=180,
        check=False,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert summary_file.exists(), output
    return result.returncode, json.loads(summary_file.read_text(encoding="utf-8")), output


def served(stack: Stack, dataset: str, expected: int, timeout_s: float = 60) -> dict[str, Any]:
    """The records page once the catalog holds ``expected`` records (the catalog is async)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(
            stack.url("publish", f"/api/v1/datasets/{dataset}/records"), params={"limit": 10000}
        )
        body: dict[str, Any] = response.json()
        if (response.status_code == 200 and body["total"] >= expected) or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def wait_for_line(url: str, line: str, timeout_s: float = 30) -> bool:
    """True once ``line`` appears in the metrics at ``url`` (the catalog applies asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if line in httpx.get(url, timeout=5).text:
            return True
        time.sleep(0.3)
    return False


def csv_records(path: Path, dataset: str) -> dict[str, dict[str, Any]]:
    schema_set = load_schema_dir(REPO_ROOT / "schemas")
    meta = schema_set.datasets[dataset]
    rows = iter_csv_records(path, meta, schema_set.latest(dataset).document)
    return {str(row.record[meta.record_key]): row.record for row in rows if row.record is not None}


@pytest.mark.timeout(420)
def test_real_csvs_flow_to_the_api_with_exact_values(stack: Stack, tmp_path: Path) -> None:
    stack.start("catalog")  # migrates and registers the schemas before anything consumes
    stack.start("ingest", "publish")

    for dataset, file, rows in [
        ("aed", "222127_aed.csv", 82),
        ("public-facility", "222127_public_facility.csv", 230),
    ]:
        code, summary, output = import_csv(stack, YAIZU / file, dataset, tmp_path)
        assert code == 0, output
        assert (summary["rows_read"], summary["rows_sent"], summary["rows_valid"]) == (rows, rows, rows), (
            output
        )
        body = served(stack, dataset, rows)
        assert body["total"] == rows
        expected = csv_records(YAIZU / file, dataset)
        assert len(expected) == rows
        key = "NO"
        got = {record[key]: record for record in body["records"]}
        assert got == expected, f"{dataset}: served values differ from the CSV"

    # The same AED file as departments often have it: Shift_JIS (CP932) with CRLF. Different bytes,
    # so new event ids; the records end up with the same values.
    cp932 = tmp_path / "222127_aed_cp932.csv"
    cp932.write_bytes((YAIZU / "222127_aed.csv").read_text(encoding="utf-8-sig").encode("cp932"))
    code, summary, output = import_csv(stack, cp932, "aed", tmp_path)
    assert code == 0, output
    assert summary["rows_valid"] == 82
    body = served(stack, "aed", 82)
    assert {r["NO"]: r for r in body["records"]} == csv_records(YAIZU / "222127_aed.csv", "aed")

    # Real invalid rows: Yaizu's evacuation sites flag hazards with ○ where the standard says 1.
    code, summary, output = import_csv(
        stack, YAIZU / "222127_evacuation_space.csv", "evacuation-space", tmp_path
    )
    assert code == 1, "an import with rejected rows exits non-zero"
    body = served(stack, "evacuation-space", 0, timeout_s=5)
    assert summary["rows_sent"] == 31
    assert summary["rows_sent"] == body["total"] + summary["rows_deadlettered"]
    assert summary["rows_deadlettered"] > 0
    assert set(summary["reasons"]) == {"schema_violation"}
    assert all(
        r["pointer"].startswith("/data/災害種別_") or r["pointer"].startswith("/data/指定避難所")
        for r in summary["rejected"]
    )
    assert "○" in output or "schema_violation" in output

    # Importing the same file again is a no-op downstream (same event ids).
    code, summary, _ = import_csv(stack, YAIZU / "222127_aed.csv", "aed", tmp_path)
    assert code == 0
    catalog = httpx.get(stack.url("catalog", "/api/v1/admin/datasets"), headers=stack.admin_headers).json()
    assert {d["id"]: d["record_count"] for d in catalog}["aed"] == 82
    # import-csv --wait follows ingest's verdicts; the catalog applies them a moment later.
    assert wait_for_line(
        stack.url("catalog", "/metrics"), 'cityos_catalog_events_total{outcome="duplicate"} 82.0'
    )

    # A department deletes a record with a binary-mode CloudEvent: gone from the API, count follows.
    gone = "0000000001"  # Yaizu's first AED
    producer = stack.producer()
    producer.produce(
        stack.settings.department_topic("fire"),
        key=f"aed/{gone}".encode(),
        value=json.dumps({"NO": gone}).encode(),
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"delete-1"),
            ("ce_source", b"/departments/fire/aed-system"),
            ("ce_type", b"jp.cityos.record.deleted"),
            ("ce_dataschema", schema_uri("aed", 1).encode()),
            ("content-type", b"application/json"),
        ],
    )
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 60
    while served(stack, "aed", 0, timeout_s=1)["total"] != 81 and time.monotonic() < deadline:
        time.sleep(0.3)
    remaining = served(stack, "aed", 81)
    assert remaining["total"] == 81
    assert gone not in {record["NO"] for record in remaining["records"]}

    # Each service counts what it did, in valid Prometheus exposition.
    ingest_metrics = httpx.get(stack.url("ingest", "/metrics")).text
    # 82 rows, again 82 as CP932, again 82 as the same file (duplicates for the catalog), 1 deletion.
    assert 'cityos_ingest_events_valid_total{dataset="aed",department="fire"} 247.0' in ingest_metrics
    assert 'reason="schema_violation"' in ingest_metrics
    assert wait_for_line(
        stack.url("catalog", "/metrics"),
        'cityos_catalog_records_upserted_total{dataset="public-facility"} 230.0',
    )
    assert wait_for_line(
        stack.url("catalog", "/metrics"), 'cityos_catalog_events_total{outcome="deleted"} 1.0'
    )
    publish_metrics = httpx.get(stack.url("publish", "/metrics")).text
    assert "cityos_publish_http_requests_total" in publish_metrics
    for service in ("ingest", "catalog", "publish"):
        assert_promtool_clean(stack.url(service, "/metrics"))


@pytest.mark.timeout(300)
def test_demo_records_are_readable_within_60_seconds(stack: Stack) -> None:
    stack.start("catalog")
    stack.start("ingest", "publish")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cityos", "demo", "--per-dataset", "25"],
        env=stack.env,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    listing = httpx.get(stack.url("publish", "/api/v1/datasets")).json()
    public = {d["id"] for d in listing["datasets"]}
    assert public == {"aed", "public-facility", "evacuation-space", "public-toilet", "tourism", "dx-kpi"}
    # dx-kpi is computed from the KPI datasets by `cityos kpi publish`, never written by the demo.
    for dataset in sorted(public - {"dx-kpi"}):
        body = served(stack, dataset, 25, timeout_s=60 - (time.monotonic() - started))
        assert body["total"] == 25, dataset
    # Internal and personal demo data reached the catalog but is not published. The KPI datasets
    # carry a monthly series per department from April 2021 through this month.
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    series = ((today.year - 2021) * 12 + today.month - 4 + 1) * len(
        load_schema_dir(REPO_ROOT / "schemas").departments
    )
    expected = {"resident-moves": 25, "copier-usage": series, "rpa-ai-hours": series, "e-approval": series,
                "telework": series, "dx-kpi": 0}  # fmt: skip
    while True:
        counts = {
            d["id"]: d["record_count"]
            for d in httpx.get(
                stack.url("catalog", "/api/v1/admin/datasets"), headers=stack.admin_headers
            ).json()
        }
        if {d: counts[d] for d in expected} == expected or time.monotonic() - started > 60:
            break
        time.sleep(0.3)
    assert {d: counts[d] for d in expected} == expected
    assert time.monotonic() - started < 60
    for hidden in ("copier-usage", "rpa-ai-hours", "e-approval", "telework", "resident-moves"):
        assert httpx.get(stack.url("publish", f"/api/v1/datasets/{hidden}/records")).status_code == 404

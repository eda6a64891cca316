"""高松市's public toilets through the real pipeline: import-csv → Kafka → ingest → catalog → API.

The file uses local English keys and the five-digit code 37201. The 36 rows that fill 設置位置 are
served with the completed code 372013; the 133 that leave it empty (◎ in the standard) are
dead-lettered with the reason, and the summary names every problem of each in Japanese and English.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cityos.department.importer import file_digest
from cityos.kernel.deadletter import parse_verdict
from cityos.kernel.kafka import headers_list
from cityos.kernel.settings import REPO_ROOT
from tests.support.fixtures_path import OPENDATA_SAMPLES
from tests.support.stack import Stack

TOILETS = OPENDATA_SAMPLES / "takamatsu-372013" / "public_toilet.csv"


def _rows_by_line() -> dict[int, dict[str, str]]:
    """Each data row by the physical line it starts on (no multi-line cells in this file)."""
    with TOILETS.open(encoding="utf-8", newline="") as handle:
        return {number: row for number, row in enumerate(csv.DictReader(handle), start=2)}


def _served(stack: Stack, expected: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(
            stack.url("publish", "/api/v1/datasets/public-toilet/records"), params={"limit": 1000}
        )
        body: dict[str, Any] = response.json()
        if (response.status_code == 200 and body["total"] >= expected) or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.timeout(300)
def test_takamatsu_toilets_load_except_rows_without_installation_location(
    stack: Stack, tmp_path: Path
) -> None:
    stack.start("catalog")
    stack.start("ingest", "publish")
    rows = _rows_by_line()
    good = {line for line, row in rows.items() if row["installationPosition"].strip()}
    bad = set(rows) - good
    assert (len(good), len(bad)) == (36, 133)

    summary_file = tmp_path / "summary.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cityos", "import-csv", str(TOILETS), "--dataset", "public-toilet"),
            *("--json-summary", str(summary_file), "--show-rejected", "200"),
        ],
        env={**stack.env, "COLUMNS": "60"},  # a narrow pipe: messages must still not wrap
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=240,
        check=False,
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 1, output  # rows were refused
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert (summary["rows_read"], summary["rows_sent"], summary["rows_valid"]) == (169, 169, 36), output
    assert summary["rows_deadlettered"] == 133 and summary["reasons"] == {"schema_violation": 133}
    assert summary["rows_refused_before_sending"] == []
    assert {r["line"] for r in summary["rejected"]} == bad
    for rejected in summary["rejected"]:
        assert rejected["pointer"] == "/data" and "設置位置" in rejected["detail"]
        assert rejected["problems"] == [
            {"pointer": "/設置位置", "ja": "必須項目が空です", "en": "required item is empty or missing"}
        ]
    # Every refused row and its problem, each on one whole line of the piped output.
    lines = output.splitlines()
    for rejected in summary["rejected"]:
        whole = f"line {rejected['line']}: dead-lettered: schema_violation at /data: {rejected['detail']}"
        assert whole in lines, whole
    assert lines.count("    /設置位置: 必須項目が空です / required item is empty or missing") == 133

    # Accepted rows are served, with the completed 全国地方公共団体コード.
    body = _served(stack, 36)
    assert body["total"] == 36
    served = {record["ID"]: record for record in body["records"]}
    assert set(served) == {rows[line]["identification"] for line in good}
    assert {record["全国地方公共団体コード"] for record in served.values()} == {"372013"}
    first = served["1"]
    assert (first["名称"], first["設置位置"]) == ("高松市片原町公衆便所", "片原町商店街南はいる")

    # Refused rows are dead-lettered, each once, with the reason and the pointer.
    digest = file_digest(TOILETS)
    expected_ids = {f"{digest}-{line}" for line in bad}

    def verdicts(messages: list[Any]) -> dict[str, Any]:
        found = {}
        for message in messages:
            verdict = parse_verdict(headers_list(message.headers()))
            if verdict.event_id in expected_ids:
                found[verdict.event_id] = verdict
        return found

    messages = stack.read(stack.settings.deadletter_topic, until=lambda m: len(verdicts(m)) == 133)
    dead = verdicts(messages)
    assert set(dead) == expected_ids
    assert {str(v.reason) for v in dead.values()} == {"schema_violation"}
    assert {v.pointer for v in dead.values()} == {"/data"}
    assert {v.dataset for v in dead.values()} == {"public-toilet"}

"""Re-importing an unchanged file with bad rows, through the real CLI, ingest and catalog: one dead
letter per bad row however often it is imported, every import reports the same refused rows with
their reasons and exits alike, and without waiting out ``--wait``; an edited file is new events."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cityos.kernel.deadletter import EVENT_ID
from cityos.kernel.settings import REPO_ROOT
from tests.support.fixtures_path import OPENDATA_SAMPLES
from tests.support.stack import Stack, header

AED_CSV = OPENDATA_SAMPLES / "yaizu-222127" / "222127_aed.csv"
WAIT_S = 60.0
BAD_LINES = [3, 5]  # file lines (the header is line 1)


def write_csv(path: Path, *, latitude: str) -> None:
    """Five AEDs of Yaizu; ingest refuses two: a latitude out of range and an unknown 有/無."""
    lines = AED_CSV.read_text(encoding="utf-8-sig").splitlines()[:6]
    rows = [line.split(",") for line in lines]
    columns = rows[0]
    rows[2][columns.index("緯度")] = latitude
    rows[4][columns.index("小児対応設備の有無")] = "たぶん"
    path.write_text("\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")


def import_csv(stack: Stack, path: Path, tmp_path: Path) -> tuple[int, dict[str, Any], str, float]:
    summary_file = tmp_path / "summary.json"
    summary_file.unlink(missing_ok=True)
    started = time.monotonic()
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cityos", "import-csv", str(path), "--dataset", "aed"),
            *("--wait", str(WAIT_S), "--json-summary", str(summary_file)),
        ],
        env=stack.env,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=180,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert summary_file.exists(), output
    return result.returncode, json.loads(summary_file.read_text(encoding="utf-8")), output, elapsed


def refused(summary: dict[str, Any]) -> list[tuple[int, str, str, str]]:
    return [(r["line"], r["reason"], r["pointer"], r["detail"]) for r in summary["rejected"]]


def dead_letter_ids(stack: Stack) -> list[str]:
    # Every import has finished, and ingest commits a row only after its dead letter is written:
    # what the topic holds now is all there will be.
    messages = stack.read(stack.settings.deadletter_topic, until=lambda _m: False, timeout_s=3)
    return sorted(header(m, EVENT_ID) or "" for m in messages)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the database is not the point
def test_reimporting_a_file_leaves_one_dead_letter_per_bad_row(stack: Stack, tmp_path: Path) -> None:
    stack.start("catalog")
    stack.start("ingest")
    path = tmp_path / "aed.csv"
    write_csv(path, latitude="134.5")

    code, first, output, _ = import_csv(stack, path, tmp_path)
    assert code == 1, output
    assert [r["line"] for r in first["rejected"]] == BAD_LINES, output
    assert {r["reason"] for r in first["rejected"]} == {"schema_violation"}
    assert not any(r["earlier"] for r in first["rejected"])
    assert (first["rows_valid"], first["rows_deadlettered"], first["rows_undecided"]) == (3, 2, 0)
    ids = dead_letter_ids(stack)
    assert len(ids) == 2

    for _ in range(2):
        code, again, output, elapsed = import_csv(stack, path, tmp_path)
        assert code == 1, output
        assert elapsed < WAIT_S / 2, f"re-import took {elapsed:.1f} s:\n{output}"
        assert refused(again) == refused(first), output
        assert all(r["earlier"] for r in again["rejected"])
        assert (again["rows_valid"], again["rows_deadlettered"], again["rows_undecided"]) == (3, 2, 0)
        assert "already dead-lettered earlier / 以前に受け付けなかった行" in output
        assert dead_letter_ids(stack) == ids

    # A corrected-but-still-wrong cell changes the file: new events, new dead letters for it.
    write_csv(path, latitude="135.5")
    code, edited, output, _ = import_csv(stack, path, tmp_path)
    assert code == 1, output
    assert [r["line"] for r in edited["rejected"]] == BAD_LINES
    assert not any(r["earlier"] for r in edited["rejected"])
    assert len(dead_letter_ids(stack)) == 4

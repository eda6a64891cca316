"""Re-importing an unchanged file: its events carry the file's time, so they are the same bytes again,
and the rows ingest passes without writing anything are reported with their earlier dead letter."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cityos.department.importer import ImportSummary, file_time
from cityos.department.outcomes import (
    NOT_FOUND_REASON,
    Outcome,
    caught_up,
    earlier_outcomes,
    handled_without_output,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _touch(path: Path, when: datetime) -> Path:
    path.write_text("NO\n1\n", encoding="utf-8")
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def test_events_carry_the_time_of_the_file(tmp_path: Path) -> None:
    changed = NOW - timedelta(days=3)
    path = _touch(tmp_path / "aed.csv", changed)
    assert file_time(path, now=NOW) == changed
    assert file_time(path, now=NOW + timedelta(days=1)) == changed  # the same on every import


def test_a_file_dated_in_the_future_is_stamped_now(tmp_path: Path) -> None:
    path = _touch(tmp_path / "aed.csv", NOW + timedelta(hours=9))
    assert file_time(path, now=NOW) == NOW


def test_rows_below_ingests_committed_offset_are_handled() -> None:
    positions = {("fire", 0): {10: "f-2", 11: "f-3"}, ("fire", 1): {4: "f-4"}}
    assert handled_without_output(positions, {("fire", 0): 11, ("fire", 1): -1001}) == {"f-2"}
    assert handled_without_output(positions, {}) == set()


def test_caught_up_once_every_output_is_read_to_its_mark() -> None:
    marks = {("validated", 0): 7, ("dlq", 0): 3}
    assert not caught_up({("validated", 0): 7, ("dlq", 0): 2}, marks)
    assert caught_up({("validated", 0): 8, ("dlq", 0): 3}, marks)


def test_an_earlier_dead_letter_not_found_is_said_so() -> None:
    outcome = earlier_outcomes({"f-3"}, {})["f-3"]
    assert (outcome.valid, outcome.reason, outcome.earlier) == (False, NOT_FOUND_REASON, True)
    assert "以前" in outcome.detail


def test_summary_marks_rows_refused_on_an_earlier_import() -> None:
    summary = ImportSummary(rows_read=1, rows_sent=1, lines_by_event={"f-3": 3})
    summary.outcomes = {
        "f-3": Outcome("f-3", valid=False, reason="schema_violation", detail="too far", earlier=True)
    }
    assert summary.rejected_lines(limit=5) == [
        "line 3: already dead-lettered earlier / 以前に受け付けなかった行: schema_violation at -: too far"
    ]
    assert summary.as_dict()["rejected"] == [
        {
            "line": 3,
            "reason": "schema_violation",
            "pointer": "",
            "detail": "too far",
            "earlier": True,
            "problems": [],
        }
    ]
    assert summary.rows_deadlettered == 1

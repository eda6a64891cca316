"""The import summary as the operator reads it: every problem of a refused row in Japanese and
English, one message per line even when piped into a narrow pipe."""

from __future__ import annotations

import io
import json

from rich.console import Console

from cityos.cli.main import print_plain
from cityos.department.importer import ImportSummary
from cityos.department.outcomes import Outcome
from cityos.department.rowcheck import RowProblem


def _summary() -> ImportSummary:
    summary = ImportSummary(rows_read=3, rows_sent=2)
    summary.local_errors.append((4, "local government code 372014 has a wrong check digit (expected 372013)"))
    summary.lines_by_event = {"f-2": 2, "f-3": 3}
    summary.outcomes = {
        "f-2": Outcome("f-2", valid=True),
        "f-3": Outcome(
            "f-3", valid=False, reason="schema_violation", detail='"設置位置" is required', pointer="/data"
        ),
    }
    summary.problems = {
        3: [
            RowProblem("/設置位置", "必須項目が空です", "required item is empty or missing"),
            RowProblem("/画像", "形式（uri）が正しくありません", "is not a valid uri"),
        ],
        4: [RowProblem("/全国地方公共団体コード", "検査数字が誤っています", "wrong check digit")],
    }
    return summary


def test_every_problem_of_each_refused_row_in_file_order() -> None:
    assert _summary().rejected_lines(limit=20) == [
        'line 3: dead-lettered: schema_violation at /data: "設置位置" is required',
        "    /設置位置: 必須項目が空です / required item is empty or missing",
        "    /画像: 形式（uri）が正しくありません / is not a valid uri",
        "line 4: refused before sending: local government code 372014 has a wrong check digit (expected 372013)",
        "    /全国地方公共団体コード: 検査数字が誤っています / wrong check digit",
    ]
    assert _summary().rejected_lines(limit=1)[-1].startswith("    /画像")


def test_json_summary_carries_the_problems() -> None:
    document = json.loads(json.dumps(_summary().as_dict(), ensure_ascii=False))
    assert document["rejected"][0]["problems"][1] == {
        "pointer": "/画像",
        "ja": "形式（uri）が正しくありません",
        "en": "is not a valid uri",
    }
    assert document["rows_refused_before_sending"][0]["line"] == 4


def test_messages_are_never_wrapped_nor_read_as_markup() -> None:
    out = io.StringIO()
    narrow = Console(file=out, width=30, force_terminal=False, color_system=None)
    lines = [*_summary().rejected_lines(limit=20), "pattern [0-9]{6} and [red]not markup[/red]"]
    print_plain(narrow, lines)
    assert out.getvalue().splitlines() == lines

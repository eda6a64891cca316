"""全国地方公共団体コード: the check digit rule against the whole national list in the fixtures."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cityos.department import lgcode
from cityos.department.importer import ImportSummary, csv_events
from cityos.kernel.errors import CsvImportError
from cityos.kernel.schemas import default_schema_dir, load_schema_dir
from tests.support.fixtures_path import FIXTURES

NATIONAL_LIST = FIXTURES / "opendata-jp" / "reference" / "localgovjp-utf8.csv"


def _national_codes() -> list[str]:
    with NATIONAL_LIST.open(encoding="utf-8-sig", newline="") as handle:
        return [row["lgcode"] for row in csv.DictReader(handle)]


def test_every_listed_code_completes_from_its_first_five_digits() -> None:
    codes = _national_codes()
    assert len(codes) == 1916
    for code in codes:
        assert lgcode.complete(code[:5]) == code
        assert lgcode.complete(code) == code


def test_kitakyushu_and_takamatsu() -> None:
    assert lgcode.complete("40100") == "401005"
    assert lgcode.complete("37201") == "372013"
    assert lgcode.complete("３７２０１") == "372013"  # full-width digits typed in a Japanese IME


def test_a_wrong_check_digit_is_a_problem_in_both_languages() -> None:
    problem = lgcode.complete("372014")
    assert isinstance(problem, lgcode.CodeProblem)
    assert "372013" in problem.ja and "検査数字" in problem.ja
    assert "372013" in problem.en and "check digit" in problem.en


def test_the_check_digit_catches_most_typos_and_the_national_list_the_rest() -> None:
    """The figures lgcode's documentation gives: 98% of single wrong digits, 97% of adjacent swaps.
    With the national list, every typo that names no municipality is caught too."""
    codes = _national_codes()
    known = lgcode.read_code_list(NATIONAL_LIST)
    typos = [code[:i] + digit + code[i + 1 :] for code in codes for i in range(5) for digit in "0123456789"]
    typos = [t for t in typos if t not in known]
    swaps = [c[:i] + c[i + 1] + c[i] + c[i + 2 :] for c in codes for i in range(4) if c[i] != c[i + 1]]
    swaps = [t for t in swaps if t not in known]

    def caught(values: list[str], list_: frozenset[str] | None) -> float:
        hits = sum(isinstance(lgcode.complete(v, list_), lgcode.CodeProblem) for v in values)
        return hits / len(values)

    assert caught(typos, None) > 0.98
    assert caught(swaps, None) > 0.97
    assert caught(typos, known) == caught(swaps, known) == 1.0


def test_a_completed_code_is_checked_against_the_national_list() -> None:
    known = lgcode.read_code_list(NATIONAL_LIST)
    assert len(known) == 1916
    assert lgcode.complete("37201", known) == "372013"
    assert lgcode.complete("37202", known) == "372021"  # 丸亀市
    problem = lgcode.complete("37299", known)  # 372994: a valid check digit, but no municipality
    assert isinstance(problem, lgcode.CodeProblem)
    assert "372994" in problem.en and "national list" in problem.en and "一覧にありません" in problem.ja


def test_a_list_that_lost_leading_zeros_is_padded() -> None:
    prefectures = FIXTURES / "opendata-jp" / "reference" / "prefjp-utf8.csv"
    codes = lgcode.read_code_list(prefectures)
    assert "010006" in codes and len(codes) == 47  # 北海道 written 10006 in the file


def test_a_file_without_codes_is_not_a_list(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("name\n高松市\n", encoding="utf-8")
    with pytest.raises(CsvImportError, match="not a list of local government codes"):
        lgcode.read_code_list(other)


def test_a_lost_leading_zero_is_not_guessed() -> None:
    """Five digits always mean "without check digit": for 15 listed codes the other reading (a
    six-digit code whose leading zero Excel dropped) names another real municipality."""
    codes = set(_national_codes())
    ambiguous = {code for code in codes if "0" + code[:5] in codes}
    assert len(ambiguous) == 15
    assert lgcode.complete("44211") == "442119" and "044211" in codes


@pytest.mark.parametrize("value", ["", "abc", "1234", "1234567", "40-100"])
def test_other_values_are_left_to_the_schema(value: str) -> None:
    assert lgcode.complete(value) == value


def test_check_digit_needs_five_digits() -> None:
    with pytest.raises(ValueError, match="five digits"):
        lgcode.check_digit("4010")


def test_a_row_with_a_wrong_check_digit_is_not_sent_and_every_problem_is_named(tmp_path: Path) -> None:
    schemas = load_schema_dir(default_schema_dir())
    path = tmp_path / "toilets.csv"
    path.write_text(
        "ID,名称,所在地_連結表記,設置位置,全国地方公共団体コード\r\n"
        "1,片原町公衆便所,香川県高松市片原町9番地9,商店街南,37201\r\n"
        "2,駅前公衆便所,香川県高松市浜ノ町1番19号,,372014\r\n",
        encoding="utf-8",
    )
    summary = ImportSummary()
    events = list(
        csv_events(
            path,
            meta=schemas.datasets["public-toilet"],
            version=schemas.latest("public-toilet"),
            summary=summary,
        )
    )
    assert [event.line_no for event in events] == [2]
    assert summary.local_errors == [
        (3, "local government code 372014 has a wrong check digit (expected 372013)")
    ]
    assert [(p.pointer, p.en) for p in summary.problems[3]] == [
        ("/全国地方公共団体コード", "local government code 372014 has a wrong check digit (expected 372013)"),
        ("/設置位置", "required item is empty or missing"),
    ]

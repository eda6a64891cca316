"""The check digit of 全国地方公共団体コード, against the national list (every one of its 1,916 codes)."""

from __future__ import annotations

import csv

import pytest

from cityos.department import lgcode
from cityos.domain.geo.codes import check_digit, with_check_digit
from tests.support.fixtures_path import FIXTURES

NATIONAL_LIST = FIXTURES / "opendata-jp" / "reference" / "localgovjp-utf8.csv"


def test_every_code_of_the_national_list_carries_its_check_digit() -> None:
    with NATIONAL_LIST.open(encoding="utf-8-sig", newline="") as handle:
        codes = [row["lgcode"].zfill(6) for row in csv.DictReader(handle)]
    assert len(codes) == 1916
    assert all(with_check_digit(code[:5]) == code for code in codes)


def test_kitakyushu_and_its_wards() -> None:
    assert with_check_digit("40100") == "401005"
    wards = ["40101", "40103", "40105", "40106", "40107", "40108", "40109"]
    assert [with_check_digit(c) for c in wards] == [
        "401013",
        "401030",
        "401056",
        "401064",
        "401072",
        "401081",
        "401099",
    ]


@pytest.mark.parametrize("bad", ["4010", "401013", "4010a", "４０１０１", ""])
def test_only_five_ascii_digits_have_a_check_digit(bad: str) -> None:
    with pytest.raises(ValueError, match="five digits"):
        check_digit(bad)


def test_the_importer_uses_the_same_rule() -> None:
    assert lgcode.check_digit is check_digit

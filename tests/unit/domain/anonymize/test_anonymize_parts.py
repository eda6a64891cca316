"""Parts of the gate on their own: the synthetic generator, hierarchies, profile checks, verifier."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import pandas as pd
import pytest

from cityos.domain.anonymize import hierarchy as h
from cityos.domain.anonymize.places import WARDS
from cityos.domain.anonymize.profile import (
    ProfileError,
    check_against_schema,
    load_profile,
    parse_profile,
    profile_path,
)
from cityos.domain.anonymize.synthetic import as_records, synthetic_moves
from cityos.domain.anonymize.verify import verify_release
from cityos.kernel.settings import REPO_ROOT
from tests.support.fixtures_path import FIXTURES

SCHEMA = json.loads((REPO_ROOT / "schemas" / "resident-moves" / "v1.schema.json").read_text(encoding="utf-8"))
PROFILE = load_profile(profile_path("resident-moves"))


def test_synthetic_records_are_seeded_valid_and_skewed() -> None:
    first, again, other = (synthetic_moves(20_000, seed=s) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    validator = jsonschema_rs.validator_for(SCHEMA, validate_formats=True)
    assert all(validator.is_valid(record) for record in as_records(first.head(2000)))
    shares = first["住所_区"].value_counts(normalize=True)
    assert set(shares.index) == {ward.name for ward in WARDS}
    assert shares.index[0] == "八幡西区" and shares["戸畑区"] < 0.1
    benign = (first["要介護度"] == "非該当").mean()
    assert 0.88 < benign < 0.97
    ages = h.ages_at(first["生年月日"], first["異動日"])
    assert 0 < (ages >= 90).mean() < 0.03 and ages.min() == 0
    assert first["前住所地_都道府県"].isna().any()  # births, deaths, moves out: no previous address
    assert first["住民番号"].is_unique and first["住民番号"].str.fullmatch(r"9\d{11}").all()
    # Register order: by date, the thing a release must not reveal.
    assert first["異動日"].is_monotonic_increasing


def test_ward_names_and_codes_match_the_national_code_list() -> None:
    codes = pd.read_csv(
        FIXTURES / "opendata-jp" / "reference" / "localgovjp-utf8.csv", dtype=str, encoding="utf-8-sig"
    )
    kitakyushu = codes[codes["city"].str.startswith("北九州市 ")]
    official = dict(zip(kitakyushu["city"].str.removeprefix("北九州市 "), kitakyushu["lgcode"], strict=True))
    assert {ward.name: ward.code for ward in WARDS} == official


def test_age_hierarchy_top_codes_and_nests() -> None:
    ages = pd.Series([0, 4, 37, 89, 90, 116, None], dtype="Int64")
    hier = h.integer_hierarchy("年齢", ages, h.age_bounds([1, 5, 10, 20], 90))
    assert list(hier.labels_at(0)) == ["0", "4", "37", "89", "90以上", "90以上", ""]
    assert list(hier.labels_at(1)) == ["0〜4", "0〜4", "35〜39", "85〜89", "90以上", "90以上", ""]
    assert list(hier.labels_at(3)) == ["0〜19", "0〜19", "20〜39", "80以上", "80以上", "80以上", ""]
    assert list(hier.labels_at(4)) == ["*"] * 7


def test_previous_address_and_date_hierarchies() -> None:
    prefs = pd.Series(["福岡県", "佐賀県", "東京都", "国外", None])
    hier = h.prefecture_hierarchy("前住所地", prefs)
    assert list(hier.labels_at(1)) == ["福岡県", "九州・沖縄", "関東", "国外", ""]
    assert list(hier.labels_at(2)) == ["県内", "県外", "県外", "国外", ""]
    dates = h.date_hierarchy("異動時期", pd.Series(["2025-04-01", "2026-03-31"]))
    assert list(dates.labels_at(1)) == ["2025年4月", "2026年3月"]
    assert list(dates.labels_at(2)) == ["2025年第2四半期", "2026年第1四半期"]


def test_a_value_outside_its_hierarchy_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside the hierarchy"):
        h.category_hierarchy("性別", pd.Series(["男", "X"]), ["男", "女"], [])


def test_profile_problems_are_all_reported() -> None:
    document = {**PROFILE.document, "k": 1, "max_suppression": 1.5}
    with pytest.raises(ProfileError) as refused:
        parse_profile(document)
    assert len(refused.value.problems) == 2
    keep_name = parse_profile({**PROFILE.document, "keep": ["氏名"], "delete": ["異動ID"]})
    problems = check_against_schema(keep_name, SCHEMA)
    assert "氏名 is kept as is but the schema marks it 'direct'" in problems
    assert "direct identifier 住民番号 must be listed in delete" in problems
    assert check_against_schema(PROFILE, SCHEMA) == []


def _write(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "release.csv"
    pd.DataFrame(rows, columns=PROFILE.output_columns).to_csv(path, index=False, lineterminator="\n")
    return path


def _row(i: int, **changes: str) -> dict[str, str]:
    base = {
        "仮ID": "R" + "abcdefghjkmnpqrstuvwxyz"[i % 23] * 12,
        "年齢": "20〜39",
        "性別": "男",
        "地域": "小倉北区",
        "異動時期": "2025年第2四半期",
        "異動事由": "転入",
        "前住所地_区分": "県外",
        "世帯人数": "1",
        "要介護度": "非該当",
        "全国地方公共団体コード": "401005",
    }
    return {**base, **changes}


ALLOWED = {
    "年齢": {"20〜39"},
    "性別": {"男", "女", ""},
    "地域": {"小倉北区"},
    "異動時期": {"2025年第2四半期"},
    "異動事由": {"転入"},
    "前住所地_区分": {"県外", ""},
    "世帯人数": {"1"},
}


def test_verifier_counts_a_lone_missing_value_as_its_own_class(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(6)] + [_row(6, 性別="")]
    problems = verify_release(_write(tmp_path, rows), PROFILE, ALLOWED, expected_rows=7)
    assert problems == ["smallest class has 1 records, fewer than k=5"]
    # The trap it avoids: pandas' default groupby drops the missing key and sees one class of 6.
    frame = pd.read_csv(tmp_path / "release.csv", dtype=str)
    assert frame.groupby([q.name for q in PROFILE.quasi]).size().min() == 6


def test_verifier_finds_identifiers_labels_and_the_sensitive_bound(tmp_path: Path) -> None:
    rows = [_row(i) for i in range(5)]
    rows[0]["全国地方公共団体コード"] = "093-582-2102"
    rows[1]["全国地方公共団体コード"] = "someone@example.jp"
    rows[2]["全国地方公共団体コード"] = "2025-04-01"
    rows[3]["全国地方公共団体コード"] = "魚町3-1"
    rows[4]["全国地方公共団体コード"] = "912345678901"
    rows.append(_row(5, 地域="小倉北区魚町"))
    rows += [_row(6 + i, 要介護度="要介護5") for i in range(3)]
    problems = verify_release(_write(tmp_path, rows), PROFILE, ALLOWED, expected_rows=9)
    text = "\n".join(problems)
    for shape in ("phone number", "e-mail address", "full date", "番地", "12-digit number"):
        assert f"look like a {shape}" in text, shape
    assert "地域: labels outside the declared hierarchy level" in text
    assert "smallest class has 1 records" in text
    assert "要介護度" not in text  # 3 of 8 in one care level: 0.38, within alpha=0.5
    assert verify_release(
        _write(tmp_path, [_row(i, 要介護度="要介護5") for i in range(5)]), PROFILE, ALLOWED, expected_rows=5
    ) == ["要介護度: a class has 1.00 of one non-benign value, above alpha=0.5"]


def test_verifier_refuses_deleted_and_index_columns(tmp_path: Path) -> None:
    path = tmp_path / "release.csv"
    frame = pd.DataFrame([_row(i) for i in range(5)])
    frame.insert(0, "氏名", "試験 太郎")
    frame.to_csv(path, index=True, lineterminator="\n")  # the classic leak: the index written out
    problems = verify_release(path, PROFILE, ALLOWED, expected_rows=5)
    assert any("differ from the declared" in p for p in problems)
    assert "deleted column 氏名 is present" in problems
    assert "column Unnamed: 0 looks like a row number or index" in problems


def test_wards_match_the_n03_ward_boundaries() -> None:
    """Each ward's boundary file (5-digit N03 code = our code without its check digit) names that ward."""
    folder = FIXTURES / "opendata-jp" / "boundaries" / "kitakyushu-wards-n03-2022"
    for ward in WARDS:
        features = json.loads((folder / f"{ward.code[:5]}.json").read_text(encoding="utf-8"))["features"]
        assert {f["properties"]["name"] for f in features} == {f"福岡県北九州市{ward.name}"}

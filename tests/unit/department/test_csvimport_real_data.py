"""Real municipal CSVs (fixtures, read in place) through csvimport and the dataset schemas.

Validity is judged by jsonschema-rs with format assertions, as the ingest service does; Python
jsonschema supplies the error details (pointer, keyword).
"""

from __future__ import annotations

import codecs
import csv
import io
import shutil
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from jsonschema import Draft202012Validator

from cityos.department.csvimport import HeaderMapping, iter_csv_records, map_headers, normalize_header
from cityos.kernel.schemas import SchemaSet, default_schema_dir, load_schema_dir
from tests.support.fixtures_path import OPENDATA_SAMPLES

YAIZU = OPENDATA_SAMPLES / "yaizu-222127"
KITAKYUSHU = OPENDATA_SAMPLES / "kitakyushu-401005"
TAKAMATSU = OPENDATA_SAMPLES / "takamatsu-372013"

REAL_FILES = {
    # file: (dataset, rows)
    "yaizu-222127/222127_aed.csv": ("aed", 82),
    "yaizu-222127/222127_public_facility.csv": ("public-facility", 230),
    "yaizu-222127/222127_evacuation_space.csv": ("evacuation-space", 31),
    "yaizu-222127/222127_tourism.csv": ("tourism", 234),
    "yaizu-222127/222127_public_toilet.csv": ("public-toilet", 112),
    "kitakyushu-401005/public-toilet-normalized-first20.csv": ("public-toilet", 20),
    "takamatsu-372013/public_toilet.csv": ("public-toilet", 169),
}


@cache
def _schemas() -> SchemaSet:
    return load_schema_dir(default_schema_dir())


@cache
def _rust(dataset: str) -> Any:
    return jsonschema_rs.validator_for(_schemas().latest(dataset).document, validate_formats=True)


def _python(dataset: str) -> Draft202012Validator:
    document = _schemas().latest(dataset).document
    return Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _convert(path: Path, dataset: str) -> tuple[HeaderMapping, list[dict[str, Any]]]:
    assert path.is_file(), f"fixture missing: {path} (set CITYOS_FIXTURES)"
    schemas = _schemas()
    seen: list[HeaderMapping] = []
    rows = list(
        iter_csv_records(
            path, schemas.datasets[dataset], schemas.latest(dataset).document, on_header=seen.append
        )
    )
    assert [r.error for r in rows if r.error is not None] == []
    records = [r.record for r in rows if r.record is not None]
    return seen[0], records


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _errors(dataset: str, record: dict[str, Any]) -> list[tuple[str, str]]:
    """(keyword, JSON pointer) of each violation; also checks both validators agree on validity."""
    found = [(e.validator, _pointer(e.absolute_path)) for e in _python(dataset).iter_errors(record)]
    rust_found = [_pointer(e.instance_path) for e in _rust(dataset).iter_errors(record)]
    python_pointers = [p for _, p in found]
    # jsonschema lacks a `uri` format checker unless rfc3987 is installed; rust checks it.
    uri_only = [p for p in rust_found if p not in python_pointers]
    for pointer in uri_only:
        prop = pointer.lstrip("/")
        assert _schemas().latest(dataset).document["properties"][prop].get("format") == "uri", pointer
        found.append(("format", pointer))
    return found


@pytest.mark.parametrize(
    ("relative", "dataset", "count"),
    [
        ("yaizu-222127/222127_aed.csv", "aed", 82),
        ("yaizu-222127/222127_public_facility.csv", "public-facility", 230),
        ("yaizu-222127/222127_public_toilet.csv", "public-toilet", 112),
    ],
)
def test_every_real_row_converts_and_validates(relative: str, dataset: str, count: int) -> None:
    mapping, records = _convert(OPENDATA_SAMPLES / relative, dataset)
    assert len(records) == count
    assert mapping.unknown == () and mapping.missing_required == () and mapping.duplicates == ()
    invalid = {r[_schemas().datasets[dataset].record_key]: _errors(dataset, r) for r in records}
    assert {k: v for k, v in invalid.items() if v} == {}
    assert all(_rust(dataset).is_valid(r) for r in records)


def test_aed_values_are_typed() -> None:
    _, records = _convert(YAIZU / "222127_aed.csv", "aed")
    first = records[0]
    assert first["NO"] == "0000000001"  # leading zeros kept: NO is a string
    assert first["都道府県コード又は市区町村コード"] == "222127"
    assert first["緯度"] == pytest.approx(34.866918) and isinstance(first["緯度"], float)
    assert first["設置位置"] == "２階正面入口"  # strings are not width-folded
    assert "方書" not in first  # empty cells are omitted


def test_yaizu_evacuation_circle_flags_fail_at_the_flag() -> None:
    """Yaizu marks hazards with ○; the 2019 definition allows only "1" (or empty)."""
    path = YAIZU / "222127_evacuation_space.csv"
    _, records = _convert(path, "evacuation-space")
    assert len(records) == 31
    flags = [
        p for p in _schemas().latest("evacuation-space").document["properties"] if p.startswith("災害種別_")
    ]
    flags.append("指定避難所との重複")
    failing = 0
    for record in records:
        circles = {"/" + f for f in flags if record.get(f) == "○"}
        errors = _errors("evacuation-space", record)
        assert {pointer for _, pointer in errors} == circles
        assert {keyword for keyword, _ in errors} <= {"enum"}
        failing += bool(circles)
        # With the standard's own mark the same row is valid: only the flags are wrong.
        repaired = {k: ("1" if v == "○" else v) for k, v in record.items()}
        assert _rust("evacuation-space").is_valid(repaired)
    assert failing == 31


def test_kitakyushu_toilets_lack_the_mandatory_installation_location() -> None:
    """設置位置 is ◎ (必須) in the current standard; the normalised BODIK rows leave it empty."""
    mapping, records = _convert(KITAKYUSHU / "public-toilet-normalized-first20.csv", "public-toilet")
    assert len(records) == 20
    assert mapping.unknown == ()
    for record in records:
        assert _errors("public-toilet", record) == [("required", "")]
        assert _rust("public-toilet").is_valid({**record, "設置位置": "敷地内"})
    assert "ﾄｲﾚ" in records[17]["名称"]  # half-width katakana kept as published


def test_takamatsu_english_headers_map_through_aliases() -> None:
    """高松市 uses English keys and the five-digit code 37201, which the import completes to 372013;
    one real defect remains: 設置位置 (◎) is empty in 133 rows."""
    mapping, records = _convert(TAKAMATSU / "public_toilet.csv", "public-toilet")
    assert len(records) == 169
    assert mapping.unknown == ("#property",)
    assert mapping.mapped["iamgeLicense"] == "画像_ライセンス"  # the publisher's own typo
    assert {r["全国地方公共団体コード"] for r in records} == {"372013"}
    problems: Counter[tuple[str, str]] = Counter()
    for record in records:
        problems.update(set(_errors("public-toilet", record)))
    assert problems == {("required", ""): 133}  # installationPosition empty


def test_tourism_maps_every_defined_header() -> None:
    path = YAIZU / "222127_tourism.csv"
    mapping, records = _convert(path, "tourism")
    assert len(records) == 234
    properties = list(_schemas().latest("tourism").document["properties"])
    assert sorted(mapping.mapped.values()) == sorted(properties)
    assert mapping.mapped["料金（基本）"] == "料金(基本)"
    assert mapping.mapped["料金（詳細）"] == "料金(詳細)"
    # Yaizu's own additions are reported, not mapped.
    assert "区分1" in mapping.unknown and "ふるさと納税" in mapping.unknown
    assert len(mapping.unknown) == len(mapping.headers) - len(properties) == 19
    # Quoted cells span lines; inside a record line breaks are \n and the cell is trimmed.
    multiline = [r for r in records if "\n" in r.get("説明", "")]
    assert multiline and all("\r" not in r["説明"] and not r["説明"].endswith("\n") for r in multiline)
    assert (
        records[0]["説明"]
        == "焼津に来たならまず鮪握り。15貫1,100円より。\n鮪丼1,100円より。夜と土日祝日は要予約。"
    )
    assert records[0]["連絡先電話番号"] == "054-627-0933"  # trailing U+3000 stripped


def test_tourism_line_numbers_count_physical_lines() -> None:
    schemas = _schemas()
    rows = list(
        iter_csv_records(
            YAIZU / "222127_tourism.csv", schemas.datasets["tourism"], schemas.latest("tourism").document
        )
    )
    lines = (YAIZU / "222127_tourism.csv").read_bytes().decode("utf-8").split("\r\n")
    assert rows[0].line_no == 2 and rows[-1].line_no == len(lines) - 1 > len(rows) + 1
    for row in rows:
        # Each row starts on the line the file shows it on, whatever multi-line cells came before.
        assert lines[row.line_no - 1].startswith(f"222127,{row.raw['NO']},"), row.line_no


def test_tourism_rows_validate_except_one_url_without_scheme() -> None:
    _, records = _convert(YAIZU / "222127_tourism.csv", "tourism")
    invalid = {
        r["NO"]: (r.get("URL"), _errors("tourism", r)) for r in records if not _rust("tourism").is_valid(r)
    }
    assert len(invalid) == 1
    ((url, errors),) = invalid.values()
    assert url == "www.kusukami.jp"  # real defect: not an absolute URI
    assert errors == [("format", "/URL")]


@pytest.mark.parametrize("relative", sorted(REAL_FILES))
def test_record_keys_are_unique_in_real_files(relative: str) -> None:
    dataset, count = REAL_FILES[relative]
    _, records = _convert(OPENDATA_SAMPLES / relative, dataset)
    record_key = _schemas().datasets[dataset].record_key
    keys = [r.get(record_key) for r in records]
    assert len(keys) == count
    assert None not in keys
    assert [k for k, n in Counter(keys).items() if n > 1] == []


@pytest.mark.parametrize(
    ("relative", "dataset"),
    [
        ("yaizu-222127/222127_tourism.csv", "tourism"),
        ("yaizu-222127/222127_public_toilet.csv", "public-toilet"),
    ],
)
def test_cp932_and_bom_copies_give_the_same_records(tmp_path: Path, relative: str, dataset: str) -> None:
    original = OPENDATA_SAMPLES / relative
    text = original.read_bytes().decode("utf-8")
    cp932 = tmp_path / "cp932.csv"
    cp932.write_bytes(text.encode("cp932"))
    bom = tmp_path / "bom.csv"
    bom.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    plain = tmp_path / "plain.csv"
    shutil.copy(original, plain)
    schemas = _schemas()

    def rows(path: Path) -> list[tuple[int, dict[str, Any] | None]]:
        meta, document = schemas.datasets[dataset], schemas.latest(dataset).document
        return [(r.line_no, r.record) for r in iter_csv_records(path, meta, document)]

    expected = rows(plain)
    assert len(expected) > 100
    assert rows(cp932) == expected
    assert rows(bom) == expected


def test_preschool_horizontal_bar_header_normalises() -> None:
    """Yaizu's preschool file writes コ―ド with U+2015 HORIZONTAL BAR instead of ー."""
    path = YAIZU / "222127_preschool.csv"
    header = next(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert header[0] == "都道府県コ\u2015ド又は市区町村コ\u2015ド"
    assert normalize_header(header[0]) == "都道府県コード又は市区町村コード"
    schemas = _schemas()
    mapping = map_headers(
        header, schemas.datasets["public-facility"], schemas.latest("public-facility").document
    )
    assert mapping.columns[0] == "都道府県コード又は市区町村コード"
    assert mapping.mapped[header[0]] == "都道府県コード又は市区町村コード"

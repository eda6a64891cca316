"""CSV → record conversion on small hand-made files: decoding, header matching, coercion, structure."""

from __future__ import annotations

import codecs
import logging
from pathlib import Path
from typing import Any

import pytest

from cityos.department.csvimport import (
    CsvRow,
    HeaderMapping,
    detect_and_decode,
    iter_csv_records,
    map_headers,
    normalize_header,
)
from cityos.kernel.errors import CityOSError, CsvImportError
from cityos.kernel.schemas import DatasetMeta

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["NO", "名称"],
    "properties": {
        "NO": {"type": "string", "maxLength": 10},
        "名称": {"type": "string", "maxLength": 100},
        "都道府県コード又は市区町村コード": {"type": "string", "maxLength": 6},
        "料金(基本)": {"type": "number"},
        "男性トイレ数（小便器）": {"type": "integer"},
        "標高": {"type": ["number", "null"]},
        "有料": {"type": "boolean"},
        "開設日": {"type": "string", "format": "date", "maxLength": 10},
        "説明": {"type": "string", "maxLength": 1000},
    },
}
META = DatasetMeta(
    id="sample",
    title={"ja": "見本", "en": "Sample"},
    description={"ja": "見本", "en": "Sample"},
    department="digital",
    classification="public",
    record_key="NO",
    update_frequency="irregular",
    csv_aliases={"施設名": "名称", "ID": "NO"},
)


def _write(tmp_path: Path, content: bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _rows(path: Path, **kwargs: Any) -> list[CsvRow]:
    return list(iter_csv_records(path, META, SCHEMA, **kwargs))


# --- decoding -------------------------------------------------------------------------------------

TEXT = "NO,名称\r\n1,焼津市役所　本館\r\n"


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("cp932"), "cp932"),
        (b"NO,name\n1,ascii only\n", "utf-8"),
    ],
)
def test_decode_accepts_utf8_bom_and_cp932(raw: bytes, encoding: str) -> None:
    text, detected = detect_and_decode(raw)
    assert detected == encoding
    assert not text.startswith("\ufeff")
    assert "ascii only" in text or text == TEXT


def test_decode_handles_cp932_only_characters() -> None:
    # ① and ～ exist in CP932 but not in plain Shift_JIS; a strict shift_jis codec would refuse them.
    text = "NO,名称\r\n1,会議室①～③\r\n"
    assert detect_and_decode(text.encode("cp932")) == (text, "cp932")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (codecs.BOM_UTF16_LE + "NO,名称".encode("utf-16-le"), "UTF-16"),
        ("NO,名称".encode("utf-16-be").join([codecs.BOM_UTF16_BE, b""]), "UTF-16"),
        (codecs.BOM_UTF32_LE + "NO".encode("utf-32-le"), "UTF-32"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "control character"),
        (b"NO,name\n1,\x81\x20\n", "neither UTF-8 nor Shift_JIS"),
        (b"NO,name\n1,\xa0\xff\n", "unassigned bytes"),
        ("NO,name\n1,caf\u00c3\u0083\u00c2\u00a9\n".encode(), "U\\+0083"),
        (codecs.BOM_UTF8 + "名称".encode("cp932"), "BOM but is not UTF-8"),
        (b"NO,name\n1,\xf0\x40\n", "外字"),
    ],
)
def test_decode_rejects_garbage(raw: bytes, message: str) -> None:
    with pytest.raises(CsvImportError, match=message) as caught:
        detect_and_decode(raw)
    assert isinstance(caught.value, CityOSError)


# --- header normalisation and mapping -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("料金（基本）", "料金(基本)"),
        ("料金(基本)", "料金(基本)"),
        ("都道府県コ―ド又は市区町村コ―ド", "都道府県コード又は市区町村コード"),  # U+2015
        ("都道府県コ‐ド又は市区町村コ−ド", "都道府県コード又は市区町村コード"),  # U+2010, U+2212
        ("都道府県ｺｰﾄﾞ又は市区町村ｺｰﾄﾞ", "都道府県コード又は市区町村コード"),  # half-width katakana
        ("都道府県コード又は市区町村コード", "都道府県コード又は市区町村コード"),
        ("　名称 ", "名称"),
        ("\ufeff名称", "名称"),
        ("名称＿カナ", "名称_カナ"),
        ("〇〇有無", "○○有無"),
        ("◯", "○"),
        ("ＵＲＬ", "URL"),
        ("E‐mail", "E-mail"),
        ("男性トイレ数（小便器）", "男性トイレ数(小便器)"),
    ],
)
def test_normalize_header(header: str, expected: str) -> None:
    assert normalize_header(header) == expected


def test_normalize_header_is_idempotent() -> None:
    for header in ("料金（基本）", "都道府県コ―ド", "ｶﾅ", "〇"):
        once = normalize_header(header)
        assert normalize_header(once) == once


def test_map_headers_by_normalised_name_and_alias() -> None:
    headers = ["ID", "施設名", "料金（基本）", "url", "男性トイレ数(小便器)", "名称", "区分1", ""]
    mapping = map_headers(headers, META, SCHEMA)
    assert isinstance(mapping, HeaderMapping)
    assert mapping.columns == ("NO", "名称", "料金(基本)", None, "男性トイレ数（小便器）", None, None, None)
    assert mapping.unknown == ("url", "区分1", "")
    assert mapping.duplicates == ("名称",)
    assert mapping.missing_required == ()
    assert mapping.mapped == {
        "ID": "NO",
        "施設名": "名称",
        "料金（基本）": "料金(基本)",
        "男性トイレ数(小便器)": "男性トイレ数（小便器）",
    }


def test_map_headers_reports_missing_required() -> None:
    mapping = map_headers(["名称", "説明"], META, SCHEMA)
    assert mapping.missing_required == ("NO",)


def test_a_property_name_wins_over_an_alias() -> None:
    meta = META.model_copy(update={"csv_aliases": {"名称": "説明"}})
    assert map_headers(["名称"], meta, SCHEMA).columns == ("名称",)


# --- rows -----------------------------------------------------------------------------------------


def test_crlf_lf_and_quoted_newlines(tmp_path: Path) -> None:
    body = 'NO,名称,説明\r\n1,a,"一行目\r\n二行目\r\n"\r\n2,b,c\n3,"x,y","He said ""hi"""\r\n'
    rows = _rows(_write(tmp_path, body.encode("utf-8")))
    assert [r.line_no for r in rows] == [2, 5, 6]
    assert [r.record for r in rows] == [
        {"NO": "1", "名称": "a", "説明": "一行目\n二行目"},
        {"NO": "2", "名称": "b", "説明": "c"},
        {"NO": "3", "名称": "x,y", "説明": 'He said "hi"'},
    ]
    assert all(r.error is None for r in rows)
    assert rows[0].raw == {"NO": "1", "名称": "a", "説明": "一行目\r\n二行目\r\n"}


def test_empty_cells_are_omitted_and_values_stripped(tmp_path: Path) -> None:
    body = "NO,名称,説明,標高\n 7 ,　焼津市役所　,,\n"
    (row,) = _rows(_write(tmp_path, body.encode("utf-8")))
    assert row.record == {"NO": "7", "名称": "焼津市役所"}
    assert row.raw == {"NO": " 7 ", "名称": "　焼津市役所　", "説明": "", "標高": ""}


@pytest.mark.parametrize(
    ("column", "cell", "expected"),
    [
        ("料金(基本)", "500", 500),
        ("料金(基本)", "５００", 500),
        ("料金(基本)", "1,500", 1500),
        ("料金(基本)", "1,500.5", 1500.5),
        ("料金(基本)", "34.8669", 34.8669),
        ("料金(基本)", "３４．８６６９", 34.8669),
        ("料金(基本)", "−3", -3),
        ("料金(基本)", "abc", "abc"),
        ("料金(基本)", "1_000", "1_000"),
        ("料金(基本)", "nan", "nan"),
        ("料金(基本)", "1e999", "1e999"),
        ("料金(基本)", "12,34", "12,34"),
        ("男性トイレ数（小便器）", "３", 3),
        ("男性トイレ数（小便器）", "3.0", 3),
        ("男性トイレ数（小便器）", "3.5", "3.5"),
        ("男性トイレ数（小便器）", "三", "三"),
        ("標高", "12.5", 12.5),
        ("有料", "有", True),
        ("有料", "FALSE", False),
        ("有料", "たぶん", "たぶん"),
        ("開設日", "2024/4/1", "2024-04-01"),
        ("開設日", "2024年4月1日", "2024-04-01"),
        ("開設日", "２０２４－０４－０１", "2024-04-01"),
        ("開設日", "2024/2/30", "2024/2/30"),
        ("開設日", "令和6年4月1日", "令和6年4月1日"),
        ("都道府県コード又は市区町村コード", "092011", "092011"),
        ("NO", "0000000001", "0000000001"),
    ],
)
def test_coercion_follows_the_schema(tmp_path: Path, column: str, cell: str, expected: Any) -> None:
    body = f'NO,名称,{column}\n1,a,"{cell}"\n' if column != "NO" else f'名称,NO\na,"{cell}"\n'
    (row,) = _rows(_write(tmp_path, body.encode("utf-8")))
    assert row.error is None
    assert row.record is not None
    assert row.record[column] == expected
    assert type(row.record[column]) is type(expected)


def test_wrong_cell_count_is_a_row_error(tmp_path: Path) -> None:
    body = "NO,名称,説明\n1,a,b\n2,b\n3,c,d,extra\n4,d,e,,\n5,e,f\n"
    rows = _rows(_write(tmp_path, body.encode("utf-8")))
    assert [(r.line_no, r.error) for r in rows] == [
        (2, None),
        (3, "expected 3 cells, found 2"),
        (4, "expected 3 cells, found 4"),
        (5, None),  # trailing empty cells, as Excel writes them
        (6, None),
    ]
    assert rows[1].record is None
    assert rows[1].raw == {"NO": "2", "名称": "b"}
    assert rows[2].raw["column 4"] == "extra"


def test_blank_rows_are_skipped(tmp_path: Path) -> None:
    body = "NO,名称\n\n1,a\n,\n \n2,b\n"
    rows = _rows(_write(tmp_path, body.encode("utf-8")))
    assert [(r.line_no, r.record) for r in rows] == [
        (3, {"NO": "1", "名称": "a"}),
        (6, {"NO": "2", "名称": "b"}),
    ]


def test_unknown_columns_are_ignored_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = "NO,名称,区分1,タグ\n" + "".join(f"{i},n{i},x,y\n" for i in range(50))
    seen: list[HeaderMapping] = []
    with caplog.at_level(logging.WARNING, logger="cityos.department.csvimport"):
        rows = _rows(_write(tmp_path, body.encode("utf-8")), on_header=seen.append)
    assert len(rows) == 50
    assert all(r.record is not None and set(r.record) == {"NO", "名称"} for r in rows)
    assert len(seen) == 1 and seen[0].unknown == ("区分1", "タグ")
    warnings = [r for r in caplog.records if "区分1" in r.getMessage()]
    assert len(warnings) == 1


def test_duplicate_headers_keep_the_first_column(tmp_path: Path) -> None:
    body = "NO,名称,名称\n1,first,second\n"
    (row,) = _rows(_write(tmp_path, body.encode("utf-8")))
    assert row.record == {"NO": "1", "名称": "first"}
    assert row.raw == {"NO": "1", "名称": "first", "名称 (column 3)": "second"}


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    assert _rows(_write(tmp_path, "NO,名称\r\n".encode())) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no header row"),
        (b"\r\n\r\n", "no header row"),
        ("区分1,タグ\n1,2\n".encode(), "no column matches dataset 'sample'"),
        ('NO,名称\n1,"unterminated\n'.encode(), "malformed CSV"),
        (b"\xff\xfeN\x00O\x00", "UTF-16"),
    ],
)
def test_unusable_files_raise(tmp_path: Path, content: bytes, message: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(CsvImportError, match=message) as caught:
        _rows(path)
    assert str(path) in str(caught.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(CsvImportError, match="cannot read"):
        _rows(tmp_path / "nope.csv")

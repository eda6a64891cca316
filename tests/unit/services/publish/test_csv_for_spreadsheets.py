"""CSV cells as written for a data consumer (exact) and for a spreadsheet (never run)."""

from __future__ import annotations

from services.publish import render, stream
from services.publish.render import RecordLike

ROWS = [{"=name": "=1+2", "temperature": -3.5, "note": "-2+3", "ok": True, "n": -7}]


def test_plain_csv_is_exact() -> None:
    body = render.render_csv(["=name", "temperature", "note", "ok", "n"], ROWS, bom=False)
    assert body == b"=name,temperature,note,ok,n\r\n=1+2,-3.5,-2+3,true,-7\r\n"


def test_excel_csv_quotes_formulas_and_keeps_numbers() -> None:
    expected = b"'=name,temperature,note,ok,n\r\n'=1+2,-3.5,'-2+3,true,-7\r\n"
    columns = ["=name", "temperature", "note", "ok", "n"]
    assert render.render_csv(columns, ROWS, bom=False, excel=True) == expected
    assert render.render_csv(columns, ROWS, bom=True) == render.UTF8_BOM + expected


class _Row:
    record_key = "1"
    latitude = None
    longitude = None
    data = ROWS[0]


def test_streamed_csv_agrees_with_the_page() -> None:
    columns = ["=name", "temperature", "note", "ok", "n"]
    records: list[RecordLike] = [_Row()]
    for options in ({"bom": False}, {"bom": True}, {"bom": False, "excel": True}):
        streamed = b"".join(stream.csv_chunks(records, columns, on_row=lambda: None, **options))
        assert streamed == render.render_csv(columns, ROWS, **options)

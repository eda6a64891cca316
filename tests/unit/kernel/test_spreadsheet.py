"""Formula-like cells in CSVs made for spreadsheets (OWASP CSV injection)."""

from __future__ import annotations

import pytest

from cityos.kernel.spreadsheet import formula_safe


@pytest.mark.parametrize(
    "text",
    ["=1+2", '=HYPERLINK("http://x.example","y")', "+81-90-1234-5678", "-1+2", "@SUM(A1:A9)", "\t=1", "\r=1",
     "-", "+", "=", "@", "-3.5 kg", "--1", "-1e", "-０"],
)  # fmt: skip
def test_formula_like_text_gets_a_quote(text: str) -> None:
    assert formula_safe(text) == "'" + text


@pytest.mark.parametrize(
    "text", ["-3.5", "+81", "-1e-3", "-.5", "+2.", "-0", "1=1", "市役所", "", " =1", "'=1", "＝1", "3.5"]
)
def test_numbers_and_ordinary_text_are_kept(text: str) -> None:
    assert formula_safe(text) == text

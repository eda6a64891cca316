"""全国地方公共団体コード (JIS X 0402 local government codes): the check digit, and completing the
five-digit form many cities publish.

The sixth digit is a check digit over the first five: ``(11 - Σ(d_i × (6,5,4,3,2)) mod 11) mod 10``.
Over the 1,916 codes of the national list it catches 98% of single wrong digits and 97% of swaps of
two adjacent digits (the tests measure it). That is the check the importer always makes; no national
list is embedded, because codes change with every municipal merger and a stale copy would refuse a
new town. Where the operator has the current list (``cityos import-csv --lg-codes FILE``, e.g. the
localgovjp CSV), every code, given or completed, must also be on it: a five-digit value gains a
computed check digit, so only the list can tell a typo in it from a real municipality.

A five-digit value is always read as the code without its check digit (``37201`` → ``372013``), the
form of the 総務省 団体コード. It is never read as a six-digit code that lost its leading zero in
Excel: for 15 municipalities both readings name a real code (``44211`` is 442119 and 044211), so a
guess would silently move records to another town.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from cityos.domain.geo.codes import check_digit
from cityos.kernel.errors import CsvImportError

__all__ = ["CODE_ITEMS", "CodeProblem", "check_digit", "complete", "read_code_list"]

# Items of the standards that hold a 全国地方公共団体コード (both generations, and their address parts).
CODE_ITEMS = frozenset(
    {
        "全国地方公共団体コード",
        "所在地_全国地方公共団体コード",
        "住所_全国地方公共団体コード",
        "都道府県コード又は市区町村コード",
        "市区町村コード",
    }
)


@dataclass(frozen=True, slots=True)
class CodeProblem:
    """Why a cell is not a valid 全国地方公共団体コード, in Japanese and English."""

    ja: str
    en: str


def complete(value: str, known: frozenset[str] | None = None) -> str | CodeProblem:
    """The six-digit code for a cell: five digits gain their check digit, six digits must carry the
    right one, and with ``known`` (the national list) the code must be on it. Anything else is
    returned unchanged for the schema to judge."""
    text = unicodedata.normalize("NFKC", value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) not in (5, 6):
        return value
    expected = check_digit(text[:5])
    if len(text) == 6 and text[5] != expected:
        return CodeProblem(
            ja=f"全国地方公共団体コード {text} の検査数字が誤っています（正しくは {text[:5]}{expected}）",
            en=f"local government code {text} has a wrong check digit (expected {text[:5]}{expected})",
        )
    code = text[:5] + expected
    if known is not None and code not in known:
        return CodeProblem(
            ja=f"全国地方公共団体コード {code} は全国地方公共団体コード一覧にありません",
            en=f"local government code {code} is not in the national list",
        )
    return code


def read_code_list(path: Path) -> frozenset[str]:
    """The codes of a national list: a CSV with an ``lgcode`` column (UTF-8, BOM or not). A code that
    lost its leading zero in Excel (``10006``) is padded back: in a list every code has six digits."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CsvImportError(f"{path}: cannot read the list of local government codes: {exc}") from exc
    codes = frozenset(str(row.get("lgcode") or "").strip().zfill(6) for row in rows)
    if not rows or "000000" in codes:
        raise CsvImportError(f"{path}: not a list of local government codes (an lgcode column on every row)")
    return codes

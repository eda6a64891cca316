"""Municipal CSV files → records for a dataset schema. Pure: no Kafka, no I/O beyond reading the file.

Departments hand over the CSVs they already publish in the national layouts: UTF-8 with or without a
BOM or CP932 (Excel's "Shift_JIS"), CRLF or LF, newlines inside quoted cells, header spellings that
differ from the definition by width, dash or circle look-alikes. This module turns such a file into
one record per row, keyed by schema property names, with values typed the way the schema types them.

It does not validate records: the ingest service does, and reports a JSON pointer. So a cell that
cannot be coerced (``"abc"`` for a number) stays a string and fails validation there, and ``error``
is set only when a row is structurally broken (wrong number of cells).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from cityos.department import lgcode
from cityos.department.rowcheck import RowProblem
from cityos.department.standard_names import best_layout, layouts_for
from cityos.kernel.errors import CsvImportError
from cityos.kernel.events import json_pointer
from cityos.kernel.schemas import DatasetMeta

log = logging.getLogger(__name__)

# Characters used in place of a dash or of the katakana prolonged sound mark (ー) in real headers,
# e.g. 都道府県コ―ド with U+2015 in Yaizu's preschool file. NFKC already folds U+FF0D and U+FF70.
_DASH_LIKE = frozenset(
    "-\u00ad\u02d7\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u2500\u2501\u30fc\ufe58\ufe63"
)
# Minus look-alikes seen in numbers typed in Japanese IMEs.
_MINUS_LIKE = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc"})
_CIRCLES = str.maketrans({"\u3007": "\u25cb", "\u25ef": "\u25cb"})  # 〇 and ◯ → ○
_INVISIBLE = str.maketrans({"\ufeff": None, "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None})

_INTEGER = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_THOUSANDS = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")
_DATE = re.compile(r"([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})日?")
_TRUE = frozenset({"true", "t", "yes", "y", "1", "有", "はい"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "無", "いいえ"})
# Control characters other than tab, LF and CR never occur in a text CSV; they mean binary data or a
# wrong codec (C1 controls are typical of double-encoded text).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row: ``record`` for the schema, or ``error`` if the row is structurally broken.

    ``line_no`` is the physical line where the row starts (the header is line 1); ``raw`` maps each
    CSV header to its cell exactly as read. ``problems`` are what the import itself finds wrong in
    cells it repairs (a 全国地方公共団体コード with a wrong check digit): such a row is not sent.
    """

    line_no: int
    record: dict[str, Any] | None
    error: str | None
    raw: dict[str, str]
    problems: tuple[RowProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class HeaderMapping:
    """How the columns of one CSV header map onto a dataset schema."""

    headers: tuple[str, ...]
    # Property for each column, by position; None for a column that is ignored.
    columns: tuple[str | None, ...]
    # Columns no property matches, as written in the file.
    unknown: tuple[str, ...]
    # Columns whose property an earlier column already supplies, as written in the file.
    duplicates: tuple[str, ...]
    # Required properties that no column supplies: every row will fail validation.
    missing_required: tuple[str, ...]

    @property
    def mapped(self) -> dict[str, str]:
        """Header → property for the columns that are used."""
        return {h: p for h, p in zip(self.headers, self.columns, strict=True) if p is not None}


def detect_and_decode(raw: bytes) -> tuple[str, str]:
    """Decode CSV bytes: UTF-8 (BOM stripped) or else CP932. Returns (text, codec name).

    Raises ``CsvImportError`` for anything else, e.g. UTF-16, binary data or text that is neither.
    """
    if raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise CsvImportError("the file is UTF-32; save it as UTF-8 or Shift_JIS (CP932)")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CsvImportError("the file is UTF-16; save it as UTF-8 or Shift_JIS (CP932)")
    if raw.startswith(codecs.BOM_UTF8):
        body, encoding = raw[len(codecs.BOM_UTF8) :], "utf-8-sig"
    else:
        body, encoding = raw, "utf-8"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        if encoding == "utf-8-sig":
            # A BOM promises UTF-8; falling back to CP932 would only produce mojibake.
            raise CsvImportError(f"the file starts with a UTF-8 BOM but is not UTF-8: {utf8_error}") from None
        text, encoding = _decode_cp932(raw, utf8_error), "cp932"
    control = _CONTROL.search(text)
    if control:
        code = ord(control.group())
        raise CsvImportError(
            f"the file contains control character U+{code:04X}: binary data or a wrong encoding"
        )
    return text, encoding


def _decode_cp932(raw: bytes, utf8_error: UnicodeDecodeError) -> str:
    try:
        text = raw.decode("cp932")
    except UnicodeDecodeError as cp932_error:
        raise CsvImportError(
            "the file is neither UTF-8 nor Shift_JIS (CP932): "
            f"UTF-8 fails at byte {utf8_error.start}, CP932 at byte {cp932_error.start}"
        ) from None
    if _PRIVATE_USE.search(text):
        # 外字 (user-defined characters) and bytes Shift_JIS leaves unassigned decode to private-use
        # code points that mean nothing outside the PC that wrote the file.
        raise CsvImportError(
            "the file contains CP932 user-defined characters (外字) or unassigned bytes, "
            "which have no standard Unicode meaning"
        )
    return text


def normalize_header(h: str) -> str:
    """Canonical spelling of a CSV header, for matching against the definition's item names.

    NFKC folds full/half width (``料金（基本）`` → ``料金(基本)``, ``ｶﾅ`` → ``カナ``); dash look-alikes become
    ``ー`` after katakana (``コ―ド`` → ``コード``) and ``-`` elsewhere; ``〇``/``◯`` become ``○``; invisible
    characters and surrounding spaces (U+3000 included) go.
    """
    text = unicodedata.normalize("NFKC", h.translate(_INVISIBLE)).translate(_CIRCLES).strip()
    out: list[str] = []
    for char in text:
        if char in _DASH_LIKE:
            char = "ー" if out and _is_katakana(out[-1]) else "-"
        out.append(char)
    return "".join(out)


def map_headers(
    headers: Sequence[str], dataset_meta: DatasetMeta, schema: Mapping[str, Any]
) -> HeaderMapping:
    """Map CSV headers to schema properties by normalised name, then by the dataset's ``csv_aliases``,
    then by the column names of the standards and known publishers (``standard_names``)."""
    by_key = _name_keys(headers, dataset_meta, schema)

    columns: list[str | None] = []
    unknown: list[str] = []
    duplicates: list[str] = []
    used: set[str] = set()
    for header in headers:
        prop = by_key.get(_match_key(header))
        if prop is None:
            unknown.append(header)
        elif prop in used:
            duplicates.append(header)
            prop = None
        else:
            used.add(prop)
        columns.append(prop)
    missing = tuple(p for p in schema.get("required", []) if p not in used)
    return HeaderMapping(tuple(headers), tuple(columns), tuple(unknown), tuple(duplicates), missing)


def _name_keys(
    headers: Sequence[str], dataset_meta: DatasetMeta, schema: Mapping[str, Any]
) -> dict[str, str]:
    """Normalised column name → property, for every name this dataset's files may use."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    by_key: dict[str, str] = {}
    for name in properties:
        by_key.setdefault(_match_key(name), name)
    for alias, target in dataset_meta.csv_aliases.items():
        # A property's own name wins over an alias that happens to normalise to the same key.
        if target in properties:
            by_key.setdefault(_match_key(alias), target)
    # English (or older) names come in layouts; only the one that fits the file best is used, because
    # two layouts may give one name to different items.
    candidates: list[dict[str, str]] = [
        {_match_key(str(spec["x-en"])): prop for prop, spec in properties.items() if spec.get("x-en")}
    ]
    for layout in layouts_for(dataset_meta.standard):
        names = {_match_key(name): by_key.get(_match_key(item)) for name, item in layout.names.items()}
        candidates.append({key: prop for key, prop in names.items() if prop is not None})
    unmatched = [key for key in map(_match_key, headers) if key not in by_key]
    for key, prop in best_layout(unmatched, candidates).items():
        by_key.setdefault(key, prop)
    return by_key


def _read_text(path: Path) -> tuple[str, str]:
    """The file's text and the encoding it was written in."""
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise CsvImportError(f"{path}: cannot read: {exc}") from exc
    try:
        return detect_and_decode(raw_bytes)
    except CsvImportError as exc:
        raise CsvImportError(f"{path}: {exc}") from exc


def _read_header(path: Path, reader: Iterator[list[str]]) -> list[str]:
    try:
        headers = next(reader, None)
    except csv.Error as exc:
        raise CsvImportError(f"{path}:1: malformed CSV header: {exc}") from exc
    if not headers or not any(h.strip() for h in headers):
        raise CsvImportError(f"{path}: no header row")
    return headers


def _csv_row(
    line_no: int,
    cells: list[str],
    raw_keys: Sequence[str],
    columns: Sequence[str | None],
    coercers: Sequence[Callable[[str], Any] | None],
) -> CsvRow:
    """One data row as a record of the mapped columns, or as an error when its width is wrong."""
    width = len(raw_keys)
    raw = {raw_keys[i] if i < width else f"column {i + 1}": cell for i, cell in enumerate(cells)}
    # Excel often pads rows with empty cells; only extra cells that carry data break the row.
    if len(cells) < width or any(cell.strip() for cell in cells[width:]):
        error = f"expected {width} cells, found {len(cells)}"
        return CsvRow(line_no, None, error, raw)
    record: dict[str, Any] = {}
    problems: list[RowProblem] = []
    for prop, coerce, cell in zip(columns, coercers, cells, strict=False):
        if prop is None or coerce is None:
            continue
        value = _clean(cell)
        if not value:
            continue
        coerced = coerce(value)
        if isinstance(coerced, lgcode.CodeProblem):
            # Keep the cell as written, so that the schema's verdict on the rest of the row still shows.
            problems.append(RowProblem(json_pointer([prop]), coerced.ja, coerced.en))
            coerced = value
        record[prop] = coerced
    return CsvRow(line_no, record, None, raw, tuple(problems))


def iter_csv_records(
    path: Path,
    dataset_meta: DatasetMeta,
    schema: Mapping[str, Any],
    *,
    on_header: Callable[[HeaderMapping], None] | None = None,
    known_codes: frozenset[str] | None = None,
) -> Iterator[CsvRow]:
    """Yield one ``CsvRow`` per data row of the CSV file at ``path``.

    The header mapping is logged once (unknown columns, duplicates, missing required columns) and,
    if given, passed to ``on_header`` before the first row. Rows whose cells are all empty are
    skipped. ``known_codes``, when given, is the national list every 全国地方公共団体コード must be on.
    ``CsvImportError`` means the file as a whole is unusable.
    """
    path = Path(path)
    text, encoding = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    headers = _read_header(path, reader)

    mapping = map_headers(headers, dataset_meta, schema)
    if all(p is None for p in mapping.columns):
        raise CsvImportError(
            f"{path}: no column matches dataset {dataset_meta.id!r}; is this the right dataset and file?"
        )
    _report(path, encoding, dataset_meta, mapping)
    if on_header is not None:
        on_header(mapping)

    properties: Mapping[str, Any] = schema.get("properties", {})
    coercers = [_coercer(p, properties[p], known_codes) if p is not None else None for p in mapping.columns]
    raw_keys = _raw_keys(headers)
    previous_line = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvImportError(f"{path}:{previous_line + 1}: malformed CSV: {exc}") from exc
        line_no, previous_line = previous_line + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        yield _csv_row(line_no, cells, raw_keys, mapping.columns, coercers)


def _report(path: Path, encoding: str, meta: DatasetMeta, mapping: HeaderMapping) -> None:
    log.info(
        "%s: %s, %d of %d columns used for %s",
        path,
        encoding,
        len(mapping.mapped),
        len(mapping.headers),
        meta.id,
    )
    if mapping.unknown:
        log.warning("%s: ignoring columns not in %s: %s", path, meta.id, ", ".join(mapping.unknown))
    if mapping.duplicates:
        log.warning("%s: ignoring repeated columns: %s", path, ", ".join(mapping.duplicates))
    if mapping.missing_required:
        log.warning("%s: no column for required properties: %s", path, ", ".join(mapping.missing_required))


def _raw_keys(headers: Sequence[str]) -> list[str]:
    keys: list[str] = []
    seen: set[str] = set()
    for index, header in enumerate(headers):
        key = header if header not in seen else f"{header} (column {index + 1})"
        seen.add(key)
        keys.append(key)
    return keys


def _match_key(name: str) -> str:
    return normalize_header(name).casefold()


def _is_katakana(char: str) -> bool:
    return "\u30a1" <= char <= "\u30fa" or char == "\u30fc"


def _clean(cell: str) -> str:
    # Line endings inside quoted cells follow the file (CRLF from Excel); inside a record they are \n.
    return cell.strip().replace("\r\n", "\n").replace("\r", "\n")


def _coercer(
    name: str, prop_schema: Mapping[str, Any], known_codes: frozenset[str] | None = None
) -> Callable[[str], Any]:
    if name in lgcode.CODE_ITEMS and prop_schema.get("type", "string") == "string":
        # Many cities publish the five-digit code without its check digit; the sixth is computable.
        return partial(lgcode.complete, known=known_codes)
    declared = prop_schema.get("type", "string")
    types = {declared} if isinstance(declared, str) else set(declared)
    if "integer" in types:
        return _to_integer if "number" not in types else _to_number
    if "number" in types:
        return _to_number
    if "boolean" in types:
        return _to_boolean
    if prop_schema.get("format") == "date":
        return _to_date
    return _keep


def _keep(value: str) -> str:
    return value


def _numeric_text(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).translate(_MINUS_LIKE).strip()
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    return text


def _to_integer(value: str) -> int | str:
    text = _numeric_text(value)
    if not _INTEGER.fullmatch(text):
        return value
    return int(text.split(".", 1)[0])


def _to_number(value: str) -> int | float | str:
    text = _numeric_text(value)
    if not _NUMBER.fullmatch(text):
        return value
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    number = float(text)
    return number if math.isfinite(number) else value


def _to_boolean(value: str) -> bool | str:
    folded = unicodedata.normalize("NFKC", value).casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    return value


def _to_date(value: str) -> str:
    match = _DATE.fullmatch(unicodedata.normalize("NFKC", value))
    if not match:
        return value
    try:
        return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
    except ValueError:
        return value

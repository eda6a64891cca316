"""The independent check of a release file, re-read from disk exactly as it will be published.

It shares nothing with the search but the profile and the hierarchies' label sets: it groups the
file's own cells (an empty cell is a value like any other, so a missing quasi-identifier forms or
joins a class and is counted), and scans every cell for anything shaped like a direct identifier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from cityos.domain.anonymize.profile import Profile

ROW_ID_PATTERN = re.compile(r"R[a-z]{12}")

# What must never appear in a cell: personal numbers, phone numbers, e-mail, full dates, 番地.
IDENTIFIER_SHAPES: dict[str, re.Pattern[str]] = {
    "12-digit number": re.compile(r"(?<!\d)\d{12,}(?!\d)"),
    "phone number": re.compile(r"(?<!\d)0\d{1,4}-\d{1,4}-\d{3,4}(?!\d)|(?<!\d)0\d{9,10}(?!\d)"),
    "e-mail address": re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    "full date": re.compile(r"\d{4}[-/年.]\d{1,2}[-/月.]\d{1,2}"),
    "番地": re.compile(r"\d+\s*[-－]\s*\d+|\d+番地?|\d+号|番地"),
}
INDEX_LIKE = {"index", "unnamed: 0", "行番号", "no", "no.", "id", "row", "連番"}


def read_release(path: Path) -> pd.DataFrame:
    """The file as published: every cell a string, empty cells kept as ''."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def verify_release(
    path: Path,
    profile: Profile,
    allowed_labels: Mapping[str, set[str]],
    *,
    expected_rows: int,
    expected_columns: Sequence[str] | None = None,
) -> list[str]:
    """Every reason the file must not be published (empty when it may).

    ``expected_columns``: the columns the file must hold exactly (a partner release holds its
    proposal's items only); by default the profile's whole output.
    """
    try:
        frame = read_release(path)
    except (OSError, ValueError) as exc:
        return [f"release file unreadable: {exc}"]
    problems: list[str] = []
    expected = list(expected_columns) if expected_columns is not None else profile.output_columns
    if list(frame.columns) != expected:
        problems.append(f"columns {list(frame.columns)} differ from the declared {expected}")
    for column in frame.columns:
        if column in profile.delete:
            problems.append(f"deleted column {column} is present")
        if column.strip().lower() in INDEX_LIKE:
            problems.append(f"column {column} looks like a row number or index")
    if len(frame) != expected_rows:
        problems.append(f"{len(frame)} rows where {expected_rows} were written")
    if frame.empty:
        return [*problems, "the release holds no records"]
    problems += _check_row_ids(frame, profile.row_id)
    quasi = [q.name for q in profile.quasi if q.name in frame]
    problems += _check_classes(
        frame, quasi, profile, sensitive_expected=profile.sensitive.attribute in expected
    )
    for name in quasi:
        outside = set(frame[name].unique()) - allowed_labels.get(name, set())
        if outside:
            problems.append(f"{name}: labels outside the declared hierarchy level: {sorted(outside)[:5]}")
    problems += _scan_identifiers(frame, [c for c in frame.columns if c != profile.row_id])
    return problems


def _check_row_ids(frame: pd.DataFrame, row_id: str) -> list[str]:
    if row_id not in frame:
        return [f"row id column {row_id} missing"]
    ids = frame[row_id]
    problems = []
    if not ids.str.fullmatch(ROW_ID_PATTERN.pattern).all():
        problems.append(f"{row_id}: values not shaped as release pseudonyms")
    if ids.duplicated().any():
        problems.append(f"{row_id}: duplicate pseudonyms")
    return problems


def _check_classes(
    frame: pd.DataFrame, quasi: Sequence[str], profile: Profile, *, sensitive_expected: bool
) -> list[str]:
    problems = []
    groups = frame.groupby(list(quasi), dropna=False, sort=False) if quasi else None
    sizes = groups.size() if groups is not None else pd.Series([len(frame)])
    if int(sizes.sum()) != len(frame):
        problems.append(f"classes hold {int(sizes.sum())} of {len(frame)} records: some escaped grouping")
    if int(sizes.min()) < profile.k:
        problems.append(f"smallest class has {int(sizes.min())} records, fewer than k={profile.k}")
    attribute = profile.sensitive.attribute
    if attribute not in frame:
        # Not delivered (a proposal that did not ask for it): no share of it can be disclosed.
        return [*problems, f"sensitive attribute {attribute} missing"] if sensitive_expected else problems
    cared = frame[~frame[attribute].isin(profile.sensitive.benign)]
    if not cared.empty and quasi:
        per_value = cared.groupby([*quasi, attribute], dropna=False, sort=False).size()
        class_size = sizes.reindex(per_value.index.droplevel(attribute)).to_numpy()
        share = float((per_value.to_numpy() / class_size).max())
        if share > profile.sensitive.alpha + 1e-12:
            problems.append(
                f"{attribute}: a class has {share:.2f} of one non-benign value, above alpha={profile.sensitive.alpha}"
            )
    return problems


def _scan_identifiers(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    problems = []
    for column in columns:
        values = pd.Series(frame[column].unique())
        for what, pattern in IDENTIFIER_SHAPES.items():
            hits = values[values.str.contains(pattern.pattern, regex=True)]
            if not hits.empty:
                problems.append(f"{column}: {len(hits)} value(s) look like a {what}, e.g. {hits.iloc[0]!r}")
    return problems

"""Column names other than the definition's own that real files use for a standard dataset's items.

The table (``standard_names.json``, names only) groups the names by layout, each with the standard or
publisher it comes from: the current standard's official English names, the 2019 推奨データセット item
names where the current standard renamed them, and local English keys such as 高松市's. A file is read
with the one layout that recognises most of its columns, so that two layouts giving the same English
name to different items (the published English list has slips) never mix within one file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

TABLE = Path(__file__).with_name("standard_names.json")


@dataclass(frozen=True, slots=True)
class Layout:
    """One set of column names: ``names`` maps a column name to the standard item it carries."""

    id: str
    standard: str
    dataset: str  # the standard dataset's name, e.g. 公衆トイレ一覧
    names: Mapping[str, str]


@cache
def layouts() -> tuple[Layout, ...]:
    """Every layout of the table, in table order."""
    document = json.loads(TABLE.read_text(encoding="utf-8"))
    return tuple(
        Layout(entry["id"], entry["standard"], entry["dataset"], dict(entry["names"]))
        for entry in document["layouts"]
    )


def standard_dataset_name(standard: str | None) -> str:
    """The standard dataset a ``DatasetMeta.standard`` names: its last word (``… 公衆トイレ一覧``)."""
    return standard.split()[-1] if standard and standard.split() else ""


def layouts_for(standard: str | None) -> tuple[Layout, ...]:
    """The layouts of the standard dataset a dataset follows."""
    name = standard_dataset_name(standard)
    return tuple(layout for layout in layouts() if name and layout.dataset == name)


def best_layout(keys: Sequence[str], candidates: Sequence[Mapping[str, str]]) -> Mapping[str, str]:
    """The candidate (normalised name → item) that recognises most of ``keys``; the first on a tie."""
    best: Mapping[str, str] = {}
    best_hits = 0
    for names in candidates:
        hits = sum(1 for key in keys if key in names)
        if hits > best_hits:
            best, best_hits = names, hits
    return best

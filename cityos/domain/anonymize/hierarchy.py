"""Generalisation hierarchies: each quasi-identifier as leaf codes plus, per level, a map from leaf
code to generalised code and the label of every generalised value.

Level 0 is the most specific, the last level is ``*`` (everything alike). A missing source value is
a leaf of its own: it stays a separate class (published as an empty cell) at every level below
``*``, so records with a missing value are counted, never silently dropped from a group.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from cityos.domain.anonymize.places import ABROAD, HOME_PREFECTURE, REGION_OF

Array = NDArray[Any]

TOP = "*"
MISSING_LABEL = ""
HIERARCHY_VERSION = "1"  # bump when a hierarchy's labels or structure change (recorded in audit)


class OutsideHierarchy(ValueError):
    """Records a hierarchy cannot place (a negative age, an unknown prefecture): the release cannot
    be made until an operator corrects or deletes them, so ``rows`` says which (positions in the
    column, in order)."""

    def __init__(self, name: str, problem: str, rows: Array) -> None:
        super().__init__(f"{name}: values {problem}")
        self.name = name
        self.problem = problem  # completes "N records …", e.g. "below the lowest band 0"
        self.rows = rows


@dataclass(frozen=True)
class Hierarchy:
    """One quasi-identifier: ``leaves`` per record, ``maps[level][leaf] -> code``, ``labels[level][code]``."""

    name: str
    leaves: Array  # int32 leaf code per record; the last leaf code means missing
    maps: tuple[Array, ...]
    labels: tuple[tuple[str, ...], ...]
    min_level: int = 0

    @property
    def top_level(self) -> int:
        return len(self.maps) - 1

    def codes(self, level: int) -> Array:
        return self.maps[level][self.leaves]

    def cardinality(self, level: int) -> int:
        return len(self.labels[level])

    def labels_at(self, level: int) -> Array:
        return np.asarray(self.labels[level], dtype=object)[self.codes(level)]

    def cell_loss(self, level: int) -> Array:
        """Per generalised code: share of the column's distinct leaves it merges (0 exact … 1 ``*``).

        The loss metric of Iyengar (2002), over the leaves present in the data.
        """
        present = np.unique(self.leaves)
        merged = np.bincount(self.maps[level][present], minlength=self.cardinality(level))
        return np.maximum(merged - 1, 0) / max(len(present) - 1, 1)


def _build(
    name: str,
    values: pd.Series,
    leaf_labels: Sequence[str],
    parents: Sequence[Callable[[str], str]],
    min_level: int,
) -> Hierarchy:
    """Leaves are ``leaf_labels`` (+ missing); each function in ``parents`` maps a leaf to a coarser label."""
    leaf_index = {label: i for i, label in enumerate(leaf_labels)}
    missing = len(leaf_labels)
    codes = values.map(leaf_index)
    unknown = values.notna() & codes.isna()
    if unknown.any():
        bad = sorted(set(values[unknown].astype(str)))[:5]
        rows = np.flatnonzero(unknown.to_numpy())
        raise OutsideHierarchy(name, f"outside the hierarchy: {', '.join(bad)}", rows)
    leaves = codes.fillna(missing).to_numpy(dtype=np.int32)
    maps: list[Array] = [np.arange(missing + 1, dtype=np.int32)]
    labels: list[tuple[str, ...]] = [(*leaf_labels, MISSING_LABEL)]
    for parent in parents:
        level_labels: list[str] = []
        index: dict[str, int] = {}
        mapping = np.empty(missing + 1, dtype=np.int32)
        for leaf, label in enumerate(leaf_labels):
            coarse = parent(label)
            mapping[leaf] = index.setdefault(coarse, len(index))
            if mapping[leaf] == len(level_labels):
                level_labels.append(coarse)
        mapping[missing] = len(level_labels)
        maps.append(mapping)
        labels.append((*level_labels, MISSING_LABEL))
    _check_tree(name, maps)
    # ``*``: one code for everything, missing included.
    maps.append(np.zeros(missing + 1, dtype=np.int32))
    labels.append((TOP,))
    return Hierarchy(name, leaves, tuple(maps), tuple(labels), min_level)


def _check_tree(name: str, maps: Sequence[Array]) -> None:
    """Each level must coarsen the one below: leaves sharing a code keep sharing one above."""
    for finer, coarser in itertools.pairwise(maps):
        pairs = np.unique(np.stack([finer, coarser]), axis=1)
        if len(np.unique(pairs[0])) != pairs.shape[1]:
            raise ValueError(f"{name}: a level splits a value of the level below; not a hierarchy")


def band_label(low: int, high: int | None) -> str:
    """'37', '85〜89', '90以上' (a tilde, never a hyphen: '85-89' would read as a 番地)."""
    if high is None:
        return f"{low}以上"
    return str(low) if high == low + 1 else f"{low}〜{high - 1}"


def _band_of(bounds: Sequence[int]) -> Callable[[int], str]:
    edges = list(bounds)

    def label(value: int) -> str:
        position = int(np.searchsorted(edges, value, side="right")) - 1
        low = edges[max(position, 0)]
        high = edges[position + 1] if position + 1 < len(edges) else None
        return band_label(low, high)

    return label


def integer_hierarchy(
    name: str, values: pd.Series, bounds: Sequence[Sequence[int]], min_level: int = 0
) -> Hierarchy:
    """Bands given by lower bounds per level; the last band of each level is open ('6以上')."""
    finest = list(bounds[0])
    numeric = pd.to_numeric(values, errors="coerce").astype("float64")
    below = (numeric < finest[0]).to_numpy()
    if below.any():
        raise OutsideHierarchy(name, f"below the lowest band {finest[0]}", np.flatnonzero(below))
    leaf_labels = [band_label(low, high) for low, high in zip(finest, [*finest[1:], None], strict=True)]
    lows = {label: low for label, low in zip(leaf_labels, finest, strict=True)}
    # Vectorised banding (a per-row Python call costs seconds at a million rows).
    present = numeric.notna().to_numpy()
    position = (
        np.searchsorted(np.asarray(finest, dtype=float), numeric.fillna(finest[0]).to_numpy(), side="right")
        - 1
    )
    labels = np.asarray(leaf_labels, dtype=object)[np.maximum(position, 0)]
    labels[~present] = None
    leaf_values = pd.Series(labels, index=values.index, dtype=object)
    parents = [functools.partial(_coarser_band, lows=lows, band=_band_of(level)) for level in bounds[1:]]
    return _build(name, leaf_values, leaf_labels, parents, min_level)


def _coarser_band(label: str, *, lows: dict[str, int], band: Callable[[int], str]) -> str:
    return band(lows[label])


def age_bounds(widths: Sequence[int], top_code: int) -> list[list[int]]:
    """Lower bounds per level: bands of each width, the top band from ``top_code`` rounded down."""
    return [[*range(0, (top_code // w) * w, w), (top_code // w) * w] for w in widths]


def ages_at(birth: pd.Series, at: pd.Series) -> pd.Series:
    """Completed years of age on the event date (missing when either date is missing or invalid)."""
    born = pd.to_datetime(birth, errors="coerce", format="%Y-%m-%d")
    when = pd.to_datetime(at, errors="coerce", format="%Y-%m-%d")
    years = when.dt.year - born.dt.year
    before_birthday = (when.dt.month < born.dt.month) | (
        (when.dt.month == born.dt.month) & (when.dt.day < born.dt.day)
    )
    return (years - before_birthday.astype("Int64")).astype("Int64")


def category_hierarchy(
    name: str,
    values: pd.Series,
    leaf_labels: Sequence[str],
    groups: Sequence[dict[str, str]],
    min_level: int = 0,
) -> Hierarchy:
    """Declared values, then each level's grouping of the previous level's labels."""
    parents: list[Callable[[str], str]] = []
    chain: list[dict[str, str]] = []
    for grouping in groups:
        chain.append(grouping)
        parents.append(functools.partial(_follow, steps=tuple(chain)))
    return _build(name, values, list(leaf_labels), parents, min_level)


def _follow(label: str, steps: Sequence[dict[str, str]]) -> str:
    for step in steps:
        label = step[label]
    return label


def address_hierarchy(
    name: str, ward: pd.Series, block: pd.Series, blocks_by_ward: dict[str, list[str]]
) -> Hierarchy:
    """町丁目 → 区 → ``*``; a missing ward or 町丁目 is a missing leaf."""
    leaf_labels = [w + b for w, names in blocks_by_ward.items() for b in names]
    ward_of = {w + b: w for w, names in blocks_by_ward.items() for b in names}
    values = ward.where(ward.notna() & block.notna()).astype(object) + block.astype(object)
    return _build(name, values, leaf_labels, [lambda label: ward_of[label]], 0)


def date_hierarchy(name: str, values: pd.Series, min_level: int = 0) -> Hierarchy:
    """Day → month ('2025年4月') → quarter ('2025年第2四半期') → ``*``."""
    dates = pd.to_datetime(values, errors="coerce", format="%Y-%m-%d")
    present = dates.dropna()
    if present.empty:
        days: list[str] = []
    else:
        span = pd.date_range(present.min(), present.max(), freq="D")
        days = [d.strftime("%Y-%m-%d") for d in span]
    leaf_values = dates.dt.strftime("%Y-%m-%d").where(dates.notna())

    def month(day: str) -> str:
        return f"{int(day[:4])}年{int(day[5:7])}月"

    def quarter(day: str) -> str:
        return f"{int(day[:4])}年第{(int(day[5:7]) - 1) // 3 + 1}四半期"

    return _build(name, leaf_values, days, [month, quarter], min_level)


def prefecture_hierarchy(name: str, values: pd.Series, min_level: int = 0) -> Hierarchy:
    """都道府県 (or 国外) → region → 県内/県外/国外 → ``*``.

    The home prefecture stays itself at the region level (it is all of 県内), so the levels nest:
    the region 九州・沖縄 there means the rest of Kyushu and Okinawa.
    """
    leaf_labels = [*REGION_OF, ABROAD]

    def region(pref: str) -> str:
        return pref if pref in (ABROAD, HOME_PREFECTURE) else REGION_OF[pref]

    def scope(pref: str) -> str:
        return ABROAD if pref == ABROAD else ("県内" if pref == HOME_PREFECTURE else "県外")

    return _build(name, values, leaf_labels, [region, scope], min_level)

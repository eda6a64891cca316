"""The SQL of docs/analysis.md's workspace sections, run as written on a workspace of the demo data.

The catalog is filled with ``cityos demo``'s records (the same generator, seed and size) through the
catalog's own write path, the digital department's workspace is built from it, and every SQL block
of the sections "A department's workspace" and "Worked examples" is run in DuckDB. Each result is
compared with the same figures computed here with pandas straight from the demo records -- not from
the workspace -- so a query, the workspace's contents and the docs' claims are checked together.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import duckdb
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from cityos.department.demo import demo_records
from cityos.domain.access import Caller, CallerKind
from cityos.domain.analysis.workspace import build_workspace
from cityos.domain.anonymize.places import WARDS
from cityos.kernel.db.engine import session_factory
from cityos.kernel.events import ValidatedEvent
from cityos.kernel.schemas import SchemaSet, load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from tests.support.publish import events, load
from tests.support.wards import load_wards, reference_outlines

DOC = REPO_ROOT / "docs" / "analysis.md"
SECTIONS = ("## A department's workspace", "## Worked examples: evidence-based policy making")
# `cityos demo`'s defaults: the docs speak of the data a newcomer loads.
PER_DATASET, SEED = 25, 2026
DEPARTMENT = "digital"
EARTH_RADIUS_M = 6371008.8
WARD_NAMES_EN = {
    "門司区": "Moji-ku", "若松区": "Wakamatsu-ku", "戸畑区": "Tobata-ku", "小倉北区": "Kokurakita-ku",
    "小倉南区": "Kokuraminami-ku", "八幡東区": "Yahatahigashi-ku", "八幡西区": "Yahatanishi-ku",
}  # fmt: skip


def sql_blocks(text: str) -> list[str]:
    """The ```sql blocks of the workspace's sections, in order."""
    blocks: list[str] = []
    for heading in SECTIONS:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        section = text[start : end if end != -1 else len(text)]
        blocks += re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    return blocks


Demo = dict[str, pd.DataFrame]


def ward_of(address: Any) -> str | None:
    if not isinstance(address, str):
        return None
    names = [ward.name for ward in WARDS if f"北九州市{ward.name}" in address]
    return names[0] if len(names) == 1 else None


def wards_frame() -> pd.DataFrame:
    return pd.DataFrame({"code": [w.code for w in WARDS], "name": [w.name for w in WARDS]}).sort_values(
        "code"
    )


def expect_datasets(demo: Demo, schema_set: SchemaSet) -> pd.DataFrame:
    rows = [
        (meta.id, meta.classification, meta.department, len(demo[meta.id]))
        for meta in schema_set.datasets.values()
        if meta.classification == "public"
        or (meta.classification == "internal" and meta.department == DEPARTMENT)
    ]
    return pd.DataFrame(rows, columns=["id", "classification", "owner", "row_count"]).sort_values("id")


def expect_aed_by_position(demo: Demo, _schemas: SchemaSet) -> pd.DataFrame:
    """AEDs per ward by point in polygon, with shapely on the boundary files themselves."""
    outlines = reference_outlines()
    codes = {w.code[:5]: w.code for w in WARDS}
    aed = demo["aed"].dropna(subset=["緯度", "経度"])
    counts: dict[str, int] = {}
    for lat, lon in zip(aed["緯度"], aed["経度"], strict=True):
        inside = sorted(codes[n03] for n03, outline in outlines.items() if outline.covers(Point(lon, lat)))
        if inside:
            counts[inside[0]] = counts.get(inside[0], 0) + 1
    return pd.DataFrame(
        [(w["code"], w["name"], counts.get(w["code"], 0)) for _, w in wards_frame().iterrows()]
    )


def expect_aed_coverage(demo: Demo, _schemas: SchemaSet) -> pd.DataFrame:
    aeds = demo["aed"]["住所"].map(ward_of).value_counts()
    facilities = demo["public-facility"]["住所"].map(ward_of).value_counts()
    rows = []
    for _, ward in wards_frame().iterrows():
        a, f = int(aeds.get(ward["name"], 0)), int(facilities.get(ward["name"], 0))
        rows.append(
            (ward["code"], ward["name"], WARD_NAMES_EN[ward["name"]], a, f, 10 * a / f if f else None)
        )
    return pd.DataFrame(rows)


def expect_aed_reach(demo: Demo, _schemas: SchemaSet) -> pd.DataFrame:
    sites = demo["evacuation-space"].dropna(subset=["緯度", "経度"])
    aed = demo["aed"].dropna(subset=["緯度", "経度"])
    lat1, lon1 = np.radians(sites["緯度"].to_numpy())[:, None], np.radians(sites["経度"].to_numpy())[:, None]
    lat2, lon2 = np.radians(aed["緯度"].to_numpy())[None, :], np.radians(aed["経度"].to_numpy())[None, :]
    # Haversine, written out independently of the query's form.
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    nearest = pd.Series((2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))).min(axis=1), index=sites.index)
    ward = sites["住所"].map(ward_of)
    rows = []
    for _, w in wards_frame().iterrows():
        distances = nearest[ward == w["name"]]
        median = float(distances.median()) if len(distances) else None
        rows.append((w["code"], w["name"], len(distances), int((distances <= 500).sum()), median))
    return pd.DataFrame(rows)


def _copier(demo: Demo) -> pd.DataFrame:
    frame = demo["copier-usage"].copy()
    frame["pages"] = frame["枚数_モノクロ"] + frame["枚数_カラー"]
    return frame


def expect_copier_months(demo: Demo, _schemas: SchemaSet) -> pd.DataFrame:
    frame = _copier(demo).sort_values(["部局コード", "年月"])
    target = frame["用紙削減目標枚数"] if "用紙削減目標枚数" in frame else pd.Series(None, index=frame.index)
    rows = [
        (r["部局コード"], r["年月"], int(r["pages"]), None if pd.isna(t) else int(t),
         None if pd.isna(t) else bool(r["pages"] <= t))
        for (_, r), t in zip(frame.iterrows(), target, strict=True)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def expect_copier_fiscal_years(demo: Demo, _schemas: SchemaSet) -> pd.DataFrame:
    frame = _copier(demo)
    year, month = frame["年月"].str[:4].astype(int), frame["年月"].str[5:7].astype(int)
    frame["fy"] = np.where(month >= 4, year, year - 1)  # 年度: April to March
    grouped = frame.groupby(["部局コード", "fy"], sort=True).agg(
        months=("年月", "count"), pages=("pages", "sum"), colour=("枚数_カラー", "sum")
    )
    rows = []
    for index, g in grouped.iterrows():
        department, fiscal_year = cast(tuple[str, int], index)
        rows.append(
            (department, int(fiscal_year), int(g["months"]), int(g["pages"]), 100 * g["colour"] / g["pages"])
        )
    return pd.DataFrame(rows)


# One expectation per SQL block, in the docs' order; with how many decimals each float is rounded.
EXPECTED: list[tuple[Callable[[Demo, SchemaSet], pd.DataFrame], int]] = [
    (expect_datasets, 0),
    (expect_aed_by_position, 0),
    (expect_aed_coverage, 2),
    (expect_aed_reach, 0),
    (expect_copier_months, 0),
    (expect_copier_fiscal_years, 1),
]


def same(actual: Any, expected: Any, decimals: int) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if isinstance(expected, float):
        # Rounded in SQL, exact here: within half a unit of the last decimal kept.
        return actual is not None and abs(float(actual) - expected) <= 0.5 * 10**-decimals + 1e-9
    return bool(actual == expected)


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Demo, SchemaSet]:
    folder = tmp_path_factory.mktemp("docs")
    schemas_dir = REPO_ROOT / "schemas"
    schema_set = load_schema_dir(schemas_dir)
    demo: Demo = {}
    batch: list[ValidatedEvent] = []
    for dataset_id in sorted(schema_set.datasets):
        records = demo_records(
            dataset_id, schema_set.latest(dataset_id).document, count=PER_DATASET, seed=SEED
        )
        demo[dataset_id] = pd.DataFrame(records)
        key = schema_set.datasets[dataset_id].record_key
        batch += events(dataset_id, [(str(r[key]), r) for r in records], start=len(batch))
    engine = load(f"sqlite:///{folder / 'catalog.db'}", schemas_dir, batch)
    load_wards(engine)  # as `cityos geo load-wards` does in a running city
    try:
        with session_factory(engine)() as session:
            caller = Caller(CallerKind.department, principal=DEPARTMENT)
            build_workspace(session, caller, folder / "digital.duckdb")
    finally:
        engine.dispose()
    return folder / "digital.duckdb", demo, schema_set


def test_every_sql_block_of_the_workspace_docs_gives_what_pandas_computes(
    demo_workspace: tuple[Path, Demo, SchemaSet],
) -> None:
    path, demo, schema_set = demo_workspace
    blocks = sql_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == len(EXPECTED), "a SQL block was added or removed: give it its expectation here"
    con = duckdb.connect(str(path), read_only=True)
    try:
        for block, (expect, decimals) in zip(blocks, EXPECTED, strict=True):
            actual = con.execute(block).fetchall()
            expected = list(expect(demo, schema_set).itertuples(index=False, name=None))
            assert len(actual) == len(expected), (expect.__name__, actual, expected)
            for got, want in zip(actual, expected, strict=True):
                assert len(got) == len(want), (expect.__name__, got, want)
                assert all(same(g, w, decimals) for g, w in zip(got, want, strict=True)), (
                    expect.__name__,
                    got,
                    want,
                )
            assert expected, f"{expect.__name__}: the demo data gives this example nothing to show"
    finally:
        con.close()


def test_the_examples_have_something_to_show(demo_workspace: tuple[Path, Demo, SchemaSet]) -> None:
    """The demo data puts records in every ward and some evacuation sites near an AED, so the
    worked examples show a real spread rather than zeros."""
    _, demo, _ = demo_workspace
    reach = expect_aed_reach(demo, load_schema_dir(REPO_ROOT / "schemas"))
    assert reach[2].sum() == PER_DATASET  # every demo evacuation site is placed in a ward
    assert 0 < reach[3].sum() < PER_DATASET
    # Demo facilities stand in the ward their address names, so position and address agree.
    by_position = expect_aed_by_position(demo, load_schema_dir(REPO_ROOT / "schemas"))
    by_address = expect_aed_coverage(demo, load_schema_dir(REPO_ROOT / "schemas"))
    assert list(by_position[2]) == list(by_address[3]) and by_position[2].sum() == PER_DATASET

"""The demo generator: valid records, unique keys, deterministic by seed; facilities inside the ward
their name and address say (checked against the national ward boundaries); resident moves that obey
the release's rules; a reset that deletes exactly what the demo wrote."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from functools import cache
from typing import Any

import jsonschema_rs
import orjson
import pytest
from shapely.geometry import Point, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from cityos.department.demo import WARD_BOXES, demo_events, demo_records, demo_reset_events
from cityos.domain.anonymize.places import ABROAD, PREFECTURES, WARDS, town_blocks
from cityos.kernel.events import TYPE_DELETED, TYPE_UPSERTED
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from tests.support.fixtures_path import FIXTURES

SCHEMAS = load_schema_dir(Settings().schemas_dir)
WARD_FILES = FIXTURES / "opendata-jp" / "boundaries" / "kitakyushu-wards-n03-2022"
LOCATED = sorted(d for d, meta in SCHEMAS.datasets.items() if meta.location is not None)


@cache
def ward_boundary(ward_name: str) -> BaseGeometry:
    """The ward's outline: the union of its N03 polygons (islands are separate features); the file
    is named by the 5-digit N03 code, the 6-digit code without its check digit."""
    ward = next(w for w in WARDS if w.name == ward_name)
    collection = json.loads((WARD_FILES / f"{ward.code[:5]}.json").read_text(encoding="utf-8"))
    assert {f["properties"]["name"] for f in collection["features"]} == {f"福岡県北九州市{ward_name}"}
    return unary_union([shape(feature["geometry"]) for feature in collection["features"]])


@pytest.mark.parametrize("dataset_id", sorted(SCHEMAS.datasets))
def test_demo_records_validate_and_have_unique_keys(dataset_id: str) -> None:
    version = SCHEMAS.latest(dataset_id)
    records = demo_records(dataset_id, version.document, count=200, seed=7)
    validator = jsonschema_rs.validator_for(version.document, validate_formats=True)
    assert all(validator.is_valid(record) for record in records)
    key = SCHEMAS.datasets[dataset_id].record_key
    assert len({record[key] for record in records}) == 200


@pytest.mark.parametrize("ward_name", sorted(WARD_BOXES))
def test_every_ward_box_lies_inside_its_ward(ward_name: str) -> None:
    (south, north), (west, east) = WARD_BOXES[ward_name]
    assert ward_boundary(ward_name).covers(box(west, south, east, north))
    assert set(WARD_BOXES) == {w.name for w in WARDS}


def _ward_named(text: str) -> str:
    named = [w.name for w in WARDS if w.name in text]
    assert len(named) == 1, text
    return named[0]


@pytest.mark.parametrize("dataset_id", LOCATED)
def test_demo_facilities_sit_in_the_ward_their_name_and_address_say(dataset_id: str) -> None:
    meta = SCHEMAS.datasets[dataset_id]
    assert meta.location is not None
    address_field = (
        "住所" if "住所" in SCHEMAS.latest(dataset_id).document["properties"] else "所在地_連結表記"
    )
    codes = {w.name: w.code for w in WARDS}
    for seed in (1, 2026):
        for record in demo_records(dataset_id, SCHEMAS.latest(dataset_id).document, count=150, seed=seed):
            ward = _ward_named(record["名称"])
            assert _ward_named(record[address_field]) == ward
            assert record[address_field].startswith(f"福岡県北九州市{ward}")
            if "所在地_市区町村" in record:
                assert record["所在地_市区町村"] == f"北九州市{ward}"
            if "所在地_全国地方公共団体コード" in record:
                assert record["所在地_全国地方公共団体コード"] == codes[ward]
            point = Point(record[meta.location.longitude], record[meta.location.latitude])
            assert ward_boundary(ward).covers(point), (dataset_id, record["名称"], point)


def _moves(count: int, seed: int) -> list[dict[str, Any]]:
    return demo_records("resident-moves", SCHEMAS.latest("resident-moves").document, count=count, seed=seed)


def test_demo_resident_moves_obey_the_release_rules() -> None:
    blocks = {w.name: set(town_blocks(w)) for w in WARDS}
    for record in _moves(500, 2026):
        assert date.fromisoformat(record["生年月日"]) <= date.fromisoformat(record["異動日"])
        assert 1 <= record["世帯人数"] <= 9
        assert record.get("前住所地_都道府県", ABROAD) in {*PREFECTURES, ABROAD}
        assert record["住所_町丁目"] in blocks[record["住所_区"]]
        assert record["住所"].startswith(f"福岡県北九州市{record['住所_区']}{record['住所_町丁目']}")
        if record["異動事由"] == "出生":
            assert "前住所地" not in record and "前住所地_都道府県" not in record
        assert record["異動ID"].startswith("DEMO-")  # apart from `release generate-synthetic`'s MV-…


TODAY = date(2026, 12, 2)
# The KPI datasets carry a monthly series per department from April 2021 through TODAY's month.
KPI_SERIES = {"copier-usage", "rpa-ai-hours", "e-approval", "telework"}
KPI_MONTHS = (2026 - 2021) * 12 + (12 - 4) + 1


def _events(run: str = "", seed: int = 1) -> list[tuple[str, bytes, dict[str, Any]]]:
    settings = Settings()
    return [
        (t, k, orjson.loads(v))
        for t, k, v in demo_events(SCHEMAS, settings, per_dataset=5, seed=seed, run=run, today=TODAY)
    ]


def test_same_seed_same_events() -> None:
    settings = Settings()
    first, second = _events(), _events()
    strip = [[(t, k, {**e, "time": None}) for t, k, e in run] for run in (first, second)]
    assert strip[0] == strip[1]
    per_dataset = Counter(e["dataschema"].split("/")[-2] for _, _, e in first)
    # dx-kpi is computed from the KPI datasets by `cityos kpi publish`, never written by the demo.
    assert per_dataset == {
        dataset_id: KPI_MONTHS * len(SCHEMAS.departments) if dataset_id in KPI_SERIES else 5
        for dataset_id in SCHEMAS.datasets
        if dataset_id != "dx-kpi"
    }
    assert {t for t, _, _ in first} == {
        settings.department_topic(m.department) for m in SCHEMAS.datasets.values()
    }


def test_a_fresh_run_changes_the_event_ids_only() -> None:
    plain, fresh = _events(), _events(run="r1")
    assert [(t, k, e["data"]) for t, k, e in plain] == [(t, k, e["data"]) for t, k, e in fresh]
    assert {e["id"] for _, _, e in plain}.isdisjoint({e["id"] for _, _, e in fresh})


def test_reset_deletes_exactly_what_the_demo_wrote() -> None:
    settings = Settings()
    written = _events(seed=3)
    deleted = [
        (t, k, orjson.loads(v))
        for t, k, v in demo_reset_events(SCHEMAS, settings, per_dataset=5, seed=3, run="r1", today=TODAY)
    ]
    assert [(t, k) for t, k, _ in written] == [(t, k) for t, k, _ in deleted]
    assert {e["type"] for _, _, e in written} == {TYPE_UPSERTED}
    assert {e["type"] for _, _, e in deleted} == {TYPE_DELETED}
    for (_, _, upsert), (_, _, deletion) in zip(written, deleted, strict=True):
        meta = SCHEMAS.datasets[upsert["dataschema"].split("/")[-2]]
        assert deletion["data"] == {meta.record_key: upsert["data"][meta.record_key]}
        assert deletion["source"] == upsert["source"] and deletion["dataschema"] == upsert["dataschema"]

"""Synthetic demo events for every dataset, generated from the schemas (never real people).

Values are derived from each property's schema (enum, type, pattern, format) so the demo keeps
working as schemas evolve. Each facility is placed in one ward, and its name, address, ward code and
coordinates all say that ward: a newcomer looking at the map sees 門司区's AED in 門司区. Personal
records (resident moves) come from the same synthetic generator the release tooling uses, so they
obey its rules (born before the move, households of sane size, real prefectures, a 町丁目 that is
only a 町丁目) and a release accepts them. Seeded: same seed, same records, same event ids, so
running the demo twice changes nothing downstream.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any

import jsonschema_rs

from cityos.department.demo_kpi import (
    KPI_SOURCE_DATASETS,
    kpi_publication,
    kpi_series,
    series_length,
)
from cityos.department.outbox import deletion_events, upsert_events
from cityos.domain.anonymize.places import HOME_PREFECTURE, WARDS, Ward, town_blocks
from cityos.domain.anonymize.synthetic import as_records, synthetic_moves
from cityos.domain.kpi.definitions import today_in_japan
from cityos.domain.kpi.publication import KITAKYUSHU_CODE
from cityos.kernel.schemas import SchemaSet
from cityos.kernel.settings import Settings

CITY = "北九州市"

# A box inside each ward, in degrees: (latitude range, longitude range). Derived from the national
# boundaries (国土数値情報 N03, 2022; each box is a square inscribed in the ward's largest polygon
# around its most inland point), so a uniformly drawn demo point never falls in the sea or in the
# next ward. tests/unit/department/test_demo.py checks every demo point against the boundaries.
WARD_BOXES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "門司区": ((33.8762, 33.9133), (130.9400, 130.9771)),
    "若松区": ((33.8989, 33.9293), (130.6888, 130.7192)),
    "戸畑区": ((33.8855, 33.9021), (130.8231, 130.8397)),
    "小倉北区": ((33.8663, 33.8890), (130.8530, 130.8757)),
    "小倉南区": ((33.7576, 33.8222), (130.8278, 130.8924)),
    "八幡東区": ((33.8359, 33.8658), (130.7960, 130.8260)),
    "八幡西区": ((33.8277, 33.8640), (130.7371, 130.7734)),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoPlace:
    """Where one demo facility is: every address and location field of its record comes from here."""

    ward: Ward
    block: str  # 町丁目, e.g. 港町 or 清滝二丁目
    banchi: str  # 番地以下, e.g. 3-12
    latitude: float
    longitude: float

    @property
    def city_ward(self) -> str:
        return CITY + self.ward.name

    @property
    def address(self) -> str:
        return f"{HOME_PREFECTURE}{self.city_ward}{self.block}{self.banchi}"


def demo_place(rng: random.Random) -> DemoPlace:
    """A place in a randomly chosen ward, inside that ward's box."""
    ward = rng.choice(WARDS)
    latitudes, longitudes = WARD_BOXES[ward.name]
    return DemoPlace(
        ward=ward,
        block=rng.choice(town_blocks(ward)),
        banchi=f"{rng.randint(1, 30)}-{rng.randint(1, 20)}",
        latitude=round(rng.uniform(*latitudes), 6),
        longitude=round(rng.uniform(*longitudes), 6),
    )


_Make = Callable[[random.Random, int, DemoPlace], Any]

_PATTERN_VALUES: dict[str, _Make] = {
    "^[0-9]{6}$": lambda rng, i, place: KITAKYUSHU_CODE,
    "^[0-9]{13}$": lambda rng, i, place: f"{rng.randrange(10**12, 10**13):013d}",
    "^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$": lambda rng, i, place: rng.choice(
        ("08:30", "09:00", "17:15", "21:00")
    ),
    "^[0-9]{4}-(?:0[1-9]|1[0-2])$": lambda rng, i, place: f"2026-{rng.randint(1, 10):02d}",
    "^-?[0-9]+(?:\\.[0-9]+)?$": lambda rng, i, place: f"{rng.uniform(0, 300):.1f}",
    "^[!-~]+$": lambda rng, i, place: f"DEMO-{i:05d}",
    "^[a-z0-9]+(?:-[a-z0-9]+)*$": lambda rng, i, place: rng.choice(
        ("digital", "fire", "construction", "citizens")
    ),
}


def _pattern_key(pattern: str) -> str:
    # Schemas end patterns with $(?!\n) so Python's re and ECMA-262 agree; the value is the same.
    return pattern.removesuffix("(?!\\n)")


_NAMED: dict[str, _Make] = {
    "都道府県名": lambda rng, i, place: HOME_PREFECTURE,
    "所在地_都道府県": lambda rng, i, place: HOME_PREFECTURE,
    "市区町村名": lambda rng, i, place: CITY,
    "地方公共団体名": lambda rng, i, place: CITY,
    "所在地_全国地方公共団体コード": lambda rng, i, place: place.ward.code,
    "所在地_市区町村": lambda rng, i, place: place.city_ward,
    "所在地_町字": lambda rng, i, place: place.block,
    "所在地_番地以下": lambda rng, i, place: place.banchi,
    "名称": lambda rng, i, place: f"{place.ward.name}デモ施設{i}",
    "緯度": lambda rng, i, place: place.latitude,
    "経度": lambda rng, i, place: place.longitude,
    "電話番号": lambda rng, i, place: f"093-{rng.randint(500, 999)}-{rng.randint(0, 9999):04d}",
    "名称_カナ": lambda rng, i, place: f"デモシセツ{i}",
    "名称_英語": lambda rng, i, place: f"Demo facility {i}",
}


def _by_type(prop: dict[str, Any], rng: random.Random, index: int) -> Any:
    kind = prop.get("type")
    if kind == "number":
        return round(rng.uniform(prop.get("minimum", 0), min(prop.get("maximum", 1000), 1000)), 2)
    if kind == "integer":
        return rng.randint(prop.get("minimum", 0), min(prop.get("maximum", 50), 50))
    if kind == "boolean":
        return rng.random() < 0.5
    if prop.get("format") == "date":
        return (date(1935, 1, 1) + timedelta(days=rng.randrange(33000))).isoformat()
    if prop.get("format") == "uri":
        return f"https://www.city.kitakyushu.example/demo/{index}"
    return None


def _value(name: str, prop: dict[str, Any], rng: random.Random, index: int, place: DemoPlace) -> Any:
    named = _NAMED.get(name)
    if named is not None:
        return named(rng, index, place)
    if "enum" in prop:
        return rng.choice(prop["enum"])
    typed = _by_type(prop, rng, index)
    if typed is not None:
        return typed
    pattern = prop.get("pattern")
    if pattern:
        make = _PATTERN_VALUES.get(_pattern_key(pattern))
        return make(rng, index, place) if make else None
    text = f"デモ{prop.get('title', name)}{index}"
    if "住所" in name or "所在地" in name:
        text = place.address
    return text[: prop.get("maxLength", 100)]


def _resident_moves(count: int, seed: int) -> list[dict[str, Any]]:
    # DEMO- keeps the demo's people apart from `cityos release generate-synthetic`'s (MV-…), so
    # resetting the demo never deletes records another tool wrote.
    records = as_records(synthetic_moves(count, seed=seed))
    for record in records:
        record["異動ID"] = f"DEMO-{record['異動ID']}"
    return records


# Datasets whose records need rules across fields and records that a per-property generator cannot
# know: they come from their own synthetic generator.
# The KPI datasets are monthly series per department (cityos.department.demo_kpi).
_GENERATORS: dict[str, Callable[[int, int], list[dict[str, Any]]]] = {
    "resident-moves": _resident_moves,
    **{dataset_id: partial(kpi_series, dataset_id) for dataset_id in KPI_SOURCE_DATASETS},
    "dx-kpi": kpi_publication,
}
# Datasets computed from others' records by their own command (`cityos kpi publish`): the demo leaves
# them to it, so a demo row never stands beside a computed one.
DERIVED_DATASETS = frozenset({"dx-kpi"})


def _from_schema(dataset_id: str, document: dict[str, Any], *, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:{dataset_id}")
    validator = jsonschema_rs.validator_for(document, validate_formats=True)
    required = set(document.get("required", ()))
    records = []
    for index in range(1, count + 1):
        place = demo_place(rng)
        record = {
            name: value
            for name, prop in document.get("properties", {}).items()
            if (value := _value(name, prop, rng, index, place)) is not None
        }
        for error in list(validator.iter_errors(record)):
            path = list(error.instance_path)
            if path and path[0] not in required:
                record.pop(str(path[0]), None)
        records.append(record)
    return records


def demo_records(dataset_id: str, document: dict[str, Any], *, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` records that validate against ``document``; optional fields left out when unsure."""
    generator = _GENERATORS.get(dataset_id)
    if generator is not None:
        records = generator(count, seed)
    else:
        records = _from_schema(dataset_id, document, count=count, seed=seed)
    validator = jsonschema_rs.validator_for(document, validate_formats=True)
    for record in records:
        if not validator.is_valid(record):
            first = next(iter(validator.iter_errors(record)))
            raise ValueError(f"demo generator cannot satisfy {dataset_id}: {first.message}")
    return records


def demo_count(dataset_id: str, *, per_dataset: int, today: date) -> int:
    """How many records the demo writes to a dataset: ``per_dataset``, except the KPI datasets, which
    get their whole monthly series from April 2021 through ``today``'s month for every department."""
    return series_length(today) if dataset_id in KPI_SOURCE_DATASETS else per_dataset


def _all_records(
    schema_set: SchemaSet, *, per_dataset: int, seed: int, today: date | None
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    day = today or today_in_japan()
    for dataset_id in sorted(set(schema_set.datasets) - DERIVED_DATASETS):
        document = schema_set.latest(dataset_id).document
        count = demo_count(dataset_id, per_dataset=per_dataset, today=day)
        yield dataset_id, demo_records(dataset_id, document, count=count, seed=seed)


def demo_events(
    schema_set: SchemaSet,
    settings: Settings,
    *,
    per_dataset: int,
    seed: int,
    run: str = "",
    today: date | None = None,
) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of one upsert event per demo record, for every dataset.

    Event ids depend on the seed only, unless ``run`` names a new run: the catalog ignores an event
    it has processed before, so loading the demo again after a reset needs new ids. ``today`` (the
    city's date by default) ends the KPI datasets' monthly series.
    """
    suffix = f"-{run}" if run else ""
    for dataset_id, records in _all_records(schema_set, per_dataset=per_dataset, seed=seed, today=today):
        yield from upsert_events(
            schema_set,
            settings,
            dataset_id,
            records,
            origin="demo",
            id_prefix=f"demo-{seed}{suffix}-{dataset_id}",
        )


def demo_reset_events(
    schema_set: SchemaSet,
    settings: Settings,
    *,
    per_dataset: int,
    seed: int,
    run: str,
    today: date | None = None,
) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of one deletion per record the demo with this seed and size wrote."""
    for dataset_id, records in _all_records(schema_set, per_dataset=per_dataset, seed=seed, today=today):
        key_field = schema_set.datasets[dataset_id].record_key
        keys = [str(record[key_field]) for record in records]
        yield from deletion_events(
            schema_set, settings, dataset_id, keys, origin="demo", id_prefix=f"demo-reset-{run}-{dataset_id}"
        )

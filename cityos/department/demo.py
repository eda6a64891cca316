"""Synthetic demo events for every dataset, generated from the schemas (never real people).

Values are derived from each property's schema (enum, type, pattern, format) so the demo keeps
working as schemas evolve; coordinates fall inside Kitakyushu. Seeded: same seed, same events,
same event ids, so running the demo twice changes nothing downstream.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import jsonschema_rs

from cityos.department.outbox import upsert_events
from cityos.kernel.schemas import SchemaSet
from cityos.kernel.settings import Settings

# Bounding box of Kitakyushu's evacuation sites (GSI data): every demo point lies in the city.
KITAKYUSHU_LAT = (33.742, 33.993)
KITAKYUSHU_LON = (130.676, 131.018)
KITAKYUSHU_CODE = "401005"
WARDS = ("門司区", "若松区", "戸畑区", "小倉北区", "小倉南区", "八幡東区", "八幡西区")

_PATTERN_VALUES: dict[str, Any] = {
    "^[0-9]{6}$": lambda rng, i: KITAKYUSHU_CODE,
    "^[0-9]{13}$": lambda rng, i: f"{rng.randrange(10**12, 10**13):013d}",
    "^[0-9]{8,15}$": lambda rng, i: f"9{rng.randrange(10**10, 10**11):011d}",  # 9…: never a real 住民票コード
    "^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$": lambda rng, i: rng.choice(
        ("08:30", "09:00", "17:15", "21:00")
    ),
    "^[0-9]{4}-(?:0[1-9]|1[0-2])$": lambda rng, i: f"2026-{rng.randint(1, 10):02d}",
    "^-?[0-9]+(?:\\.[0-9]+)?$": lambda rng, i: f"{rng.uniform(0, 300):.1f}",
    "^[!-~]+$": lambda rng, i: f"DEMO-{i:05d}",
    "^[a-z0-9]+(?:-[a-z0-9]+)*$": lambda rng, i: rng.choice(("digital", "fire", "construction", "citizens")),
}


def _pattern_key(pattern: str) -> str:
    # Schemas end patterns with $(?!\n) so Python's re and ECMA-262 agree; the value is the same.
    return pattern.removesuffix("(?!\\n)")


_NAMED: dict[str, Any] = {
    "都道府県名": lambda rng, i: "福岡県",
    "所在地_都道府県": lambda rng, i: "福岡県",
    "市区町村名": lambda rng, i: "北九州市",
    "地方公共団体名": lambda rng, i: "北九州市",
    "所在地_市区町村": lambda rng, i: "北九州市" + rng.choice(WARDS),
    "所在地_町字": lambda rng, i: f"デモ町{rng.randint(1, 9)}丁目",
    "所在地_番地以下": lambda rng, i: f"{rng.randint(1, 30)}-{rng.randint(1, 20)}",
    "電話番号": lambda rng, i: f"093-{rng.randint(500, 999)}-{rng.randint(0, 9999):04d}",
    "名称_カナ": lambda rng, i: f"デモシセツ{i}",
    "名称_英語": lambda rng, i: f"Demo facility {i}",
    "氏名": lambda rng, i: f"試験 太郎{i}",  # obviously synthetic: 試験 = test
}


def _value(name: str, prop: dict[str, Any], rng: random.Random, index: int) -> Any:
    named = _NAMED.get(name)
    if named is not None:
        return named(rng, index)
    if "enum" in prop:
        return rng.choice(prop["enum"])
    kind = prop.get("type")
    if kind == "number":
        if name == "緯度":
            return round(rng.uniform(*KITAKYUSHU_LAT), 6)
        if name == "経度":
            return round(rng.uniform(*KITAKYUSHU_LON), 6)
        return round(rng.uniform(prop.get("minimum", 0), min(prop.get("maximum", 1000), 1000)), 2)
    if kind == "integer":
        return rng.randint(prop.get("minimum", 0), min(prop.get("maximum", 50), 50))
    if kind == "boolean":
        return rng.random() < 0.5
    if prop.get("format") == "date":
        return (date(1935, 1, 1) + timedelta(days=rng.randrange(33000))).isoformat()
    if prop.get("format") == "uri":
        return f"https://www.city.kitakyushu.example/demo/{index}"
    pattern = prop.get("pattern")
    if pattern:
        make = _PATTERN_VALUES.get(_pattern_key(pattern))
        return make(rng, index) if make else None
    text = f"デモ{prop.get('title', name)}{index}"
    if name == "名称":
        text = f"{rng.choice(WARDS)}デモ施設{index}"
    if "住所" in name or "所在地" in name:
        text = f"福岡県北九州市{rng.choice(WARDS)}デモ町{rng.randint(1, 9)}-{rng.randint(1, 30)}"
    return text[: prop.get("maxLength", 100)]


_BUREAUS = ("digital", "fire", "construction", "citizens", "health-welfare", "planning")


def _fix_up(dataset_id: str, record: dict[str, Any], index: int) -> None:
    """Cross-field rules a per-property generator cannot know."""
    if dataset_id == "copier-usage":
        # One row per bureau per month, enumerated so that record keys never collide.
        months = (index - 1) // len(_BUREAUS)
        record["部局コード"] = _BUREAUS[(index - 1) % len(_BUREAUS)]
        record["年月"] = f"{2024 + months // 12}-{months % 12 + 1:02d}"
        record["ID"] = f"{record['部局コード']}-{record['年月']}"


def demo_records(dataset_id: str, document: dict[str, Any], *, count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` records that validate against ``document``; optional fields left out when unsure."""
    rng = random.Random(f"{seed}:{dataset_id}")
    validator = jsonschema_rs.validator_for(document, validate_formats=True)
    required = set(document.get("required", ()))
    records = []
    for index in range(1, count + 1):
        record = {
            name: value
            for name, prop in document.get("properties", {}).items()
            if (value := _value(name, prop, rng, index)) is not None
        }
        _fix_up(dataset_id, record, index)
        for error in list(validator.iter_errors(record)):
            path = list(error.instance_path)
            if path and path[0] not in required:
                record.pop(str(path[0]), None)
        if not validator.is_valid(record):
            first = next(iter(validator.iter_errors(record)))
            raise ValueError(f"demo generator cannot satisfy {dataset_id}: {first.message}")
        records.append(record)
    return records


def demo_events(
    schema_set: SchemaSet, settings: Settings, *, per_dataset: int, seed: int
) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of one upsert event per demo record, for every dataset."""
    for dataset_id in sorted(schema_set.datasets):
        records = demo_records(
            dataset_id, schema_set.latest(dataset_id).document, count=per_dataset, seed=seed
        )
        yield from upsert_events(
            schema_set, settings, dataset_id, records, origin="demo", id_prefix=f"demo-{seed}-{dataset_id}"
        )

"""The demo generator: valid records, unique keys, deterministic by seed, inside Kitakyushu."""

from __future__ import annotations

import jsonschema_rs
import orjson
import pytest

from cityos.department.demo import KITAKYUSHU_LAT, KITAKYUSHU_LON, demo_events, demo_records
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings

SCHEMAS = load_schema_dir(Settings().schemas_dir)


@pytest.mark.parametrize("dataset_id", sorted(SCHEMAS.datasets))
def test_demo_records_validate_and_have_unique_keys(dataset_id: str) -> None:
    version = SCHEMAS.latest(dataset_id)
    records = demo_records(dataset_id, version.document, count=200, seed=7)
    validator = jsonschema_rs.validator_for(version.document, validate_formats=True)
    assert all(validator.is_valid(record) for record in records)
    key = SCHEMAS.datasets[dataset_id].record_key
    assert len({record[key] for record in records}) == 200
    location = SCHEMAS.datasets[dataset_id].location
    if location is not None:
        for record in records:
            assert KITAKYUSHU_LAT[0] <= record[location.latitude] <= KITAKYUSHU_LAT[1]
            assert KITAKYUSHU_LON[0] <= record[location.longitude] <= KITAKYUSHU_LON[1]


def test_same_seed_same_events() -> None:
    settings = Settings()
    first = [(t, k, orjson.loads(v)) for t, k, v in demo_events(SCHEMAS, settings, per_dataset=5, seed=1)]
    second = [(t, k, orjson.loads(v)) for t, k, v in demo_events(SCHEMAS, settings, per_dataset=5, seed=1)]
    strip = [[(t, k, {**e, "time": None}) for t, k, e in run] for run in (first, second)]
    assert strip[0] == strip[1]
    assert len(first) == 5 * len(SCHEMAS.datasets)
    assert {t for t, _, _ in first} == {
        settings.department_topic(m.department) for m in SCHEMAS.datasets.values()
    }

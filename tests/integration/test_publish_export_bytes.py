"""Whole-dataset exports through a real server on SQLite and PostgreSQL write the very bytes the
record-by-record encoders wrote: the demo data, the Yaizu files and awkward values, every format.

On PostgreSQL the batches come from a named (server-side) cursor and the documents from JSONB's text;
batches of a few rows make every export cross from SQLAlchemy's first batch to the driver's cursor.
"""

from __future__ import annotations

import httpx
import pytest

from cityos.kernel.db.engine import make_engine, migrate
from cityos.kernel.schemas import default_schema_dir, load_schema_dir
from services.publish import stream
from tests.support.export_reference import fill_export_catalog, reference_export
from tests.support.publish import serve

CASES = [
    ("public-toilet", {"format": "csv"}),
    ("public-toilet", {"format": "csv", "bom": "true"}),
    ("public-toilet", {"format": "csv", "excel": "true", "fields": "ID,名称,備考"}),
    ("public-toilet", {"format": "geojson"}),
    ("public-toilet", {"format": "geojson", "fields": "名称"}),
    ("public-toilet", {"format": "ndjson", "sort": "-ID"}),
    ("public-toilet", {"format": "json"}),
    ("aed", {"format": "csv", "設置位置": "1階ロビー"}),
    ("aed", {"format": "geojson"}),
    ("public-facility", {"format": "csv", "bom": "true"}),
    ("public-facility", {"format": "ndjson", "fields": "NO,名称"}),
    ("tourism", {"format": "json", "sort": "名称"}),
]


@pytest.mark.parametrize("batch_rows", [5_000, 7])
def test_exports_are_byte_identical_over_http(
    database_url: str, batch_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema_set = load_schema_dir(default_schema_dir())
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        fill_export_catalog(engine, schema_set)
        monkeypatch.setattr(stream, "BATCH_ROWS", batch_rows)
        with serve(engine, database_url, publish_anonymous_rate_per_minute=100_000) as server:
            for dataset_id, params in CASES:
                answer = httpx.get(f"{server.url}/api/v1/datasets/{dataset_id}/export", params=params)
                assert answer.status_code == 200, (dataset_id, params, answer.text)
                assert answer.content == reference_export(engine, schema_set, dataset_id, params), (
                    dataset_id,
                    params,
                )
    finally:
        engine.dispose()

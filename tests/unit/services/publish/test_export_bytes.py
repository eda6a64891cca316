"""Whole-dataset exports, serialised per batch, write the very bytes the record-by-record encoders
wrote: every public dataset of the demo data and the Yaizu files, awkward values included, in every
format and option, over the real app and a real SQLite catalog."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from cityos.kernel.db.engine import make_engine, migrate
from cityos.kernel.schemas import SchemaSet, default_schema_dir, load_schema_dir
from cityos.kernel.settings import Settings
from services.publish import stream
from services.publish.app import create_app
from tests.support.export_reference import fill_export_catalog, old_geojson_feature, reference_export
from tests.support.publish_catalog import BASE_URL

CSV_OPTIONS = [{}, {"bom": "true"}, {"excel": "true"}, {"bom": "true", "excel": "true"}]
# Per dataset: a projection, a descending sort and a filter, beside the whole dataset.
QUERIES = {
    "aed": [{}, {"fields": "名称,NO,緯度"}, {"sort": "-名称"}, {"設置位置": "1階ロビー"}],
    "public-toilet": [{}, {"fields": "ID,名称,男性トイレ総数,備考"}, {"sort": "-ID"}, {"fields": "備考"}],
    "public-facility": [{}, {"fields": "NO,名称"}, {"sort": "名称"}],
    "tourism": [{}, {"fields": "NO,名称,URL"}],
    "evacuation-space": [{}, {"sort": "-NO"}],
}


@pytest.fixture(scope="module")
def schema_set() -> SchemaSet:
    return load_schema_dir(default_schema_dir())


@pytest.fixture(scope="module")
def filled(
    tmp_path_factory: pytest.TempPathFactory, schema_set: SchemaSet
) -> Iterator[tuple[Engine, TestClient]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('export') / 'catalog.db'}"
    migrate(url)
    engine = make_engine(url)
    fill_export_catalog(engine, schema_set)
    # Every case of every batch size from one anonymous client: far more than a minute's allowance.
    settings = Settings(
        database_url=url, public_base_url=BASE_URL + "/", publish_anonymous_rate_per_minute=100_000
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        yield engine, client
    engine.dispose()


def _cases(schema_set: SchemaSet) -> Iterator[tuple[str, dict[str, str]]]:
    for dataset_id in sorted(schema_set.datasets):
        meta = schema_set.datasets[dataset_id]
        if meta.classification != "public":
            continue
        for query in QUERIES.get(dataset_id, [{}]):
            for options in CSV_OPTIONS:
                yield dataset_id, {"format": "csv", **options, **query}
            formats = ["json", "ndjson"] + (["geojson"] if meta.location is not None else [])
            for chosen in formats:
                yield dataset_id, {"format": chosen, **query}


@pytest.mark.parametrize("batch_rows", [5_000, 7, 1])
def test_every_export_is_byte_identical(
    filled: tuple[Engine, TestClient], schema_set: SchemaSet, batch_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of one, of a few and of all records: the first batch comes through SQLAlchemy's
    result, the others straight from the driver's cursor."""
    engine, client = filled
    monkeypatch.setattr(stream, "BATCH_ROWS", batch_rows)
    compared = 0
    for dataset_id, params in _cases(schema_set):
        answer = client.get(f"/api/v1/datasets/{dataset_id}/export", params=params)
        assert answer.status_code == 200, (dataset_id, params, answer.text)
        expected = reference_export(engine, schema_set, dataset_id, params)
        assert answer.content == expected, (dataset_id, params)
        compared += len(expected)
    assert compared > 1_000_000


def test_the_data_exercises_every_path(filled: tuple[Engine, TestClient]) -> None:
    """The Yaizu files and the awkward rows are in: hundreds of records, nulls, booleans, nested
    values, formula-like text and out-of-range coordinates among them."""
    _, client = filled
    toilets = client.get("/api/v1/datasets/public-toilet/export", params={"format": "csv", "excel": "true"})
    assert toilets.text.count("\r\n") > 150
    # Streamed from a live catalog: validators from its last applied change, no byte ranges (see the docs).
    assert toilets.headers["accept-ranges"] == "none"
    assert toilets.headers["etag"].startswith('W/"') and "last-modified" in toilets.headers
    for spelled in ("'=HYPERLINK", "'@SUM(A1)", ",true,,false,", '"[""a"",1,2.5,null]"'):
        assert spelled in toilets.text
    facilities = client.get("/api/v1/datasets/public-facility/export", params={"format": "ndjson"})
    assert facilities.text.count("\n") > 300
    assert "焼津市役所本庁舎" in facilities.text


class _Located:
    def __init__(self, key: str, latitude: float | None, longitude: float | None) -> None:
        self.record_key, self.latitude, self.longitude = key, latitude, longitude
        self.data = {"緯度": "33.5", "経度": "130.5", "名称": "x"}
        self.raw = orjson.dumps(self.data).decode()


@pytest.mark.parametrize(
    "coordinates",
    [
        [(33.5, 130.5), (0.0, -0.0), (90.0, 180.0), (-90.0, -180.0), (1e-05, 123.45678901234567)],
        [(33.5, 130.5), (float("nan"), 130.5)],
        [(33.5, float("inf")), (33.5, 130.5)],
        [(33.5, 130.5), (None, 130.5)],
        [(91.0, 130.5), (33.5, 130.5)],
    ],
)
def test_features_of_a_batch_are_spelled_as_one_by_one(
    coordinates: list[tuple[float | None, float | None]],
) -> None:
    """Coordinates a PostgreSQL catalog could hold that SQLite cannot (NaN, infinity) included."""
    records = [_Located(f'K{n}"\\,', lat, lon) for n, (lat, lon) in enumerate(coordinates)]
    rows = [(r.record_key, r.raw.encode(), r.latitude, r.longitude) for r in records]
    expected = b",".join(orjson.dumps(old_geojson_feature(r, ("緯度", "経度"), None)) for r in records)
    assert stream.geojson_batch(rows, ("緯度", "経度"), None) == expected

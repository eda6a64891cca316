"""Records queries reuse one statement per query shape: every query of a shape binds its own values.

The statement of a shape is built with the first query's values; these tests send several queries of
one shape, in an order where a value left over from an earlier query would give a wrong answer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event

from cityos.kernel.settings import get_settings
from services.publish.main import app_from_environment
from tests.support.publish_catalog import Catalog

RECORDS = "/api/v1/datasets/public-toilet/records"


def _ids(catalog: Catalog, **params: str | int) -> list[str]:
    response = catalog.client.get(RECORDS, params=params)
    assert response.status_code == 200, response.text
    return [record["ID"] for record in response.json()["records"]]


def _total(catalog: Catalog, **params: str | int) -> int:
    response = catalog.client.get(RECORDS, params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def test_one_shape_many_values(catalog: Catalog) -> None:
    assert _ids(catalog, 男性トイレ総数=5) == ["T02"]
    assert _ids(catalog, 男性トイレ総数=3) == ["T01", "T03"]
    assert _total(catalog, 設置位置="屋内") == 1
    assert _total(catalog, 設置位置="屋外") == 2
    assert _ids(catalog, **{"男性トイレ総数[gte]": 4}) == ["T02"]
    assert _ids(catalog, **{"男性トイレ総数[gte]": 3}) == ["T01", "T02", "T03"]
    assert _ids(catalog, q="門司") == ["T02"]
    assert _ids(catalog, q="若松") == ["T03"]


def test_in_lists_of_any_length_and_paging_values(catalog: Catalog) -> None:
    assert _ids(catalog, **{"ID[in]": "T03"}) == ["T03"]
    assert _ids(catalog, **{"ID[in]": "T01,T02"}) == ["T01", "T02"]
    assert _ids(catalog, **{"ID[in]": "T01,T02,T03"}, limit=1, offset=2) == ["T03"]
    assert _ids(catalog, **{"ID[in]": "T02,T03"}, limit=1, offset=1) == ["T03"]
    assert _ids(catalog, limit=2) == ["T01", "T02"]
    assert _ids(catalog, limit=1) == ["T01"]


def test_geo_shapes_take_new_points(catalog: Catalog) -> None:
    assert _ids(catalog, near="130.874,33.884", distance=500) == ["T01"]
    assert _ids(catalog, near="130.962,33.945", distance=500) == ["T02"]
    assert _ids(catalog, bbox="130.80,33.90,130.82,33.91") == ["T03"]
    assert _ids(catalog, bbox="130.95,33.94,130.97,33.95") == ["T02"]


# One of each statement shape a page runs, in every format.
EVERY_SHAPE: list[dict[str, str | int]] = [
    {},
    {"limit": 1, "offset": 1},
    {"男性トイレ総数": 3},
    {"設置位置": "屋外", "limit": 1},
    {"男性トイレ総数[gte]": 3, "sort": "-男性トイレ総数"},
    {"ID[in]": "T01,T03"},
    {"q": "門司"},
    {"near": "130.874,33.884", "distance": 500, "format": "geojson"},
    {"bbox": "130.80,33.90,130.97,33.95", "fields": "ID,名称"},
    {"limit": 1, "cursor": "eyJ2IjoxLCJrIjoiVDAxIn0", "format": "csv"},
]


def test_the_driver_cursor_answers_as_sqlalchemy_does(catalog: Catalog) -> None:
    """Pages read on the DBAPI cursor are byte for byte those read through SQLAlchemy, which
    serves them whenever something listens to its cursor events."""
    engine = catalog.client.app.state.publish_context.engine  # type: ignore[attr-defined]
    direct = [catalog.client.get(RECORDS, params=params) for params in EVERY_SHAPE]
    seen: list[str] = []

    def remember(*args: Any) -> None:
        seen.append(args[2])

    time.sleep(0.3)  # past the page cache's interval: every page below is read again
    event.listen(engine, "before_cursor_execute", remember)
    try:
        through = [catalog.client.get(RECORDS, params=params) for params in EVERY_SHAPE]
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert any("json_extract" in statement for statement in seen)
    for params, one, other in zip(EVERY_SHAPE, direct, through, strict=True):
        assert one.status_code == other.status_code == 200, (params, one.text)
        assert one.content == other.content, params


def test_worker_processes_build_their_app_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn starts each worker from an import string: the factory must need nothing but CITYOS_*.
    monkeypatch.setenv("CITYOS_DATABASE_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("CITYOS_PUBLISH_WORKERS", "2")
    get_settings.cache_clear()
    try:
        assert get_settings().publish_workers == 2
        assert isinstance(app_from_environment(), FastAPI)
    finally:
        get_settings.cache_clear()

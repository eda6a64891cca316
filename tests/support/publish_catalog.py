"""A filled open-data catalog for the publish API's tests: the repository's schemas synced with
``sync_schema_set``, records applied as ``ValidatedEvent`` batches through ``apply_batch``, and the real app
over it (TestClient)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.events import TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT, Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.app import create_app

BASE_URL = "https://opendata.example.jp/city"
T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
RECORDS = "/api/v1/datasets/{}/records"
RECORDS_ROUTE = "/api/v1/datasets/{dataset_id}/records"

# A public dataset without a location, added beside the repository's schemas for the GeoJSON refusal.
NO_LOCATION_ID = "budget-lines"


def _aed(n: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "都道府県コード又は市区町村コード": "401005",
        "NO": f"{n:03d}",
        "都道府県名": "福岡県",
        "市区町村名": "北九州市",
        "名称": f"小倉北区役所{n}",
        "名称_カナ": f"コクラキタクヤクショ{n}",
        "住所": f"福岡県北九州市小倉北区大手町{n}-1",
        "設置位置": "1階ロビー" if n % 2 else "2階",
        "緯度": 33.88 + n / 1000,
        "経度": 130.87 + n / 1000,
    }
    return row


def aed_rows() -> list[dict[str, Any]]:
    rows = [_aed(n) for n in range(1, 13)]
    # One record without coordinates: GeoJSON must keep it with a null geometry.
    del rows[6]["緯度"], rows[6]["経度"]
    # A comma, a quote and a newline: CSV quoting must round-trip them.
    rows[2]["備考"] = '土日は閉館、"要予約"\n夜間不可'
    return rows


def _toilet(
    key: str, name: str, address: str, place: str, men: int, lat: float, lon: float
) -> dict[str, Any]:
    return {
        "ID": key,
        "名称": name,
        "所在地_連結表記": f"福岡県北九州市{address}",
        "設置位置": place,
        "男性トイレ総数": men,
        "緯度": lat,
        "経度": lon,
    }


TOILETS = [
    _toilet("T01", "小倉城公衆トイレ", "小倉北区城内", "屋外", 3, 33.884, 130.874),
    _toilet("T02", "門司港レトロトイレ", "門司区港町", "屋外", 5, 33.945, 130.962),
    _toilet("T03", "若松公園トイレ", "若松区本町", "屋内", 3, 33.906, 130.811),
]

COPIER = {"ID": "C1", "全国地方公共団体コード": "401005", "部局コード": "01", "部局名": "総務局",
          "年月": "2025-03", "枚数_モノクロ": 1200, "枚数_カラー": 300}  # fmt: skip
MOVE = {"異動ID": "M1", "全国地方公共団体コード": "401005", "住民番号": "000123", "氏名": "北九 太郎",
        "生年月日": "1980-01-01", "性別": "男", "住所": "小倉北区", "異動日": "2025-03-31",
        "異動事由": "転入"}  # fmt: skip


@dataclass
class Catalog:
    client: TestClient
    schemas_dir: Path


def validated_events(
    dataset_id: str, key_field: str, rows: list[dict[str, Any]], start: int
) -> list[ValidatedEvent]:
    return [
        ValidatedEvent(
            dataset_id=dataset_id,
            record_key=str(row[key_field]),
            schema_version=1,
            source=f"/departments/test/{dataset_id}",
            id=f"{dataset_id}-{i}",
            type=TYPE_UPSERTED,
            time=T0 + timedelta(minutes=i),
            data=row,
            partition=0,
            offset=start + i,
        )
        for i, row in enumerate(rows)
    ]


def schemas_with_budget_lines(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", target)
    folder = target / NO_LOCATION_ID
    folder.mkdir()
    meta = {
        "id": NO_LOCATION_ID,
        "title": {"ja": "予算事業一覧", "en": "Budget lines"},
        "description": {"ja": "事業別の当初予算額", "en": "Initial budget per line"},
        "department": "digital",
        "classification": "public",
        "record_key": "事業ID",
        "update_frequency": "annual",
    }
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(NO_LOCATION_ID, 1),
        "type": "object",
        "properties": {
            "事業ID": {"type": "string"},
            "事業名": {"type": "string"},
            "予算額": {"type": "integer"},
            "継続": {"type": "boolean"},
            "内訳": {"type": "array"},
        },
        "required": ["事業ID"],
    }
    (folder / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    (folder / "v1.schema.json").write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    return target


@contextmanager
def open_catalog(tmp_path: Path, *, public_base_url: str = BASE_URL + "/") -> Iterator[Catalog]:
    """The publish app over a migrated SQLite catalog filled the way production fills it.

    Its links point to ``public_base_url``; empty, to where each request came in."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    migrate(url)
    engine = make_engine(url)
    schemas_dir = schemas_with_budget_lines(tmp_path)
    schema_set = load_schema_dir(schemas_dir)
    budget = [
        {"事業ID": "B1", "事業名": "DX推進", "予算額": 5000000, "継続": True, "内訳": [1, 2]},
        {"事業ID": "B2", "事業名": "窓口改善", "予算額": 1200000, "継続": False},
    ]
    events = (
        validated_events("aed", "NO", aed_rows(), 0)
        + validated_events("public-toilet", "ID", TOILETS, 100)
        + validated_events("copier-usage", "ID", [COPIER], 200)
        + validated_events("resident-moves", "異動ID", [MOVE], 300)
        + validated_events(NO_LOCATION_ID, "事業ID", budget, 400)
    )
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=schema_set, now=T0)
        apply_batch(session, events=events, now=T0 + timedelta(hours=1))
    settings = Settings(database_url=url, public_base_url=public_base_url)
    with TestClient(create_app(settings, engine=engine)) as client:
        yield Catalog(client=client, schemas_dir=schemas_dir)
    engine.dispose()

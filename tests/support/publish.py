"""Shared set-up of the publish integration tests: a migrated catalog filled through the real
store, and the publish app served by a real uvicorn server on a free port in a thread.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from cityos.department.csvimport import iter_csv_records
from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.events import TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT, Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.app import create_app
from tests.support.fixtures_path import OPENDATA_SAMPLES
from tests.support.stack import free_port

T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
YAIZU_AED = OPENDATA_SAMPLES / "yaizu-222127" / "222127_aed.csv"
KITAKYUSHU_SITES = (
    OPENDATA_SAMPLES / "kitakyushu-401005" / "gsi-designated-emergency-evacuation-sites-401005.geojson"
)
SITES_ID = "kitakyushu-evacuation-site"
HIDDEN_IDS = ("copier-usage", "resident-moves")  # internal, personal

_HAZARDS = {
    "洪水": "flood", "崖崩れ、土石流及び地滑り": "landslide", "高潮": "stormSurge", "地震": "earthquake",
    "津波": "tsunami", "大規模な火事": "largeFire", "内水氾濫": "inlandFlood", "火山現象": "volcano",
    "指定避難所との住所同一": "sameAddressAsShelter",
}  # fmt: skip


def _sites_schema() -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": 200}
    properties: dict[str, Any] = {
        "共通ID": {"type": "string", "minLength": 1, "maxLength": 32},
        "NO": {"type": "integer"},
        "都道府県名及び市町村名": text,
        "施設・場所名": text,
        "住所": text,
        **{name: {"type": "string", "enum": ["1", ""], "x-en": en} for name, en in _HAZARDS.items()},
        "備考": {"type": "string", "maxLength": 1000},
        "緯度": {"type": "number", "minimum": 20, "maximum": 46},
        "経度": {"type": "number", "minimum": 122, "maximum": 154},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(SITES_ID, 1),
        "type": "object",
        "additionalProperties": False,
        "required": ["共通ID", "施設・場所名", "緯度", "経度"],
        "properties": properties,
    }


def schemas_with_sites(tmp_path: Path) -> Path:
    """The repository's schemas plus the GSI evacuation-site layout (a test-only dataset)."""
    target = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", target)
    folder = target / SITES_ID
    folder.mkdir()
    meta = {
        "id": SITES_ID,
        "title": {"ja": "北九州市 指定緊急避難場所（国土地理院）", "en": "Kitakyushu evacuation sites (GSI)"},
        "description": {"ja": "国土地理院データの北九州市分。", "en": "GSI data, Kitakyushu part."},
        "department": "crisis-management",
        "classification": "public",
        "record_key": "共通ID",
        "location": {"latitude": "緯度", "longitude": "経度"},
        "update_frequency": "irregular",
        "keywords": ["防災", "避難場所"],
    }
    (folder / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    (folder / "v1.schema.json").write_text(json.dumps(_sites_schema(), ensure_ascii=False), encoding="utf-8")
    return target


def events(
    dataset_id: str, rows: Sequence[tuple[str, dict[str, Any]]], *, start: int = 0
) -> list[ValidatedEvent]:
    return [
        ValidatedEvent(
            dataset_id=dataset_id, record_key=key, schema_version=1, source=f"/test/{dataset_id}",
            id=f"{dataset_id}-{start + i}", type=TYPE_UPSERTED, time=T0 + timedelta(seconds=start + i),
            data=data, partition=0, offset=start + i,
        )
        for i, (key, data) in enumerate(rows)
    ]  # fmt: skip


def yaizu_aed_rows(schemas_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    schema_set = load_schema_dir(schemas_dir)
    meta = schema_set.datasets["aed"]
    document = schema_set.latest("aed").document
    rows = []
    for row in iter_csv_records(YAIZU_AED, meta, document):
        assert row.record is not None, row.error
        rows.append((str(row.record[meta.record_key]), row.record))
    return rows


def kitakyushu_site_rows() -> list[tuple[str, dict[str, Any]]]:
    collection = json.loads(KITAKYUSHU_SITES.read_text(encoding="utf-8"))
    rows = []
    for feature in collection["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        data = {**feature["properties"], "緯度": lat, "経度": lon}
        rows.append((str(data["共通ID"]), data))
    return rows


def hidden_rows() -> list[ValidatedEvent]:
    copier = {"ID": "C1", "全国地方公共団体コード": "401005", "部局コード": "01", "部局名": "総務局",
              "年月": "2025-03", "枚数_モノクロ": 1200, "枚数_カラー": 300}  # fmt: skip
    move = {"異動ID": "M1", "全国地方公共団体コード": "401005", "住民番号": "000123", "氏名": "北九 太郎",
            "生年月日": "1980-01-01", "性別": "男", "住所": "小倉北区", "異動日": "2025-03-31",
            "異動事由": "転入"}  # fmt: skip
    return events("copier-usage", [("C1", copier)], start=900_000) + events(
        "resident-moves", [("M1", move)], start=900_001
    )


def load(database_url: str, schemas_dir: Path, batch: Sequence[ValidatedEvent]) -> Engine:
    migrate(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session, session.begin():
        sync_schema_set(session, schema_set=load_schema_dir(schemas_dir), now=T0)
    for chunk_start in range(0, len(batch), 2_000):
        with session_factory(engine)() as session, session.begin():
            apply_batch(session, events=batch[chunk_start : chunk_start + 2_000], now=T0 + timedelta(hours=1))
    return engine


@dataclass
class LiveServer:
    url: str
    settings: Settings


@contextmanager
def serve(engine: Engine, database_url: str, **overrides: Any) -> Iterator[LiveServer]:
    """The publish app on a real uvicorn server in a thread, stopped on exit."""
    port = free_port()
    settings = Settings(database_url=database_url, public_base_url=f"http://127.0.0.1:{port}", **overrides)
    app = create_app(settings, engine=engine, registry=CollectorRegistry())
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("publish server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def publish_process(database_url: str, log: Path, **env: str) -> Iterator[str]:
    """``cityos serve publish`` in its own process over ``database_url``, once ready; its base URL.
    ``env`` adds ``CITYOS_*`` settings; the process is stopped (SIGTERM) on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "CITYOS_DATABASE_URL": database_url,
        "CITYOS_PUBLISH_PORT": str(port),
        "CITYOS_PUBLIC_BASE_URL": url,
        **env,
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "cityos", "serve", "publish"],
            env=environment,
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)

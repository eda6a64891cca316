"""The map: wards as the base map, a dataset's records as points, a per-ward choropleth.

``/map`` (``/en/map``) shows several datasets at once, chosen with a checkbox form (``?d=aed&d=...``)
among the datasets with a location that the caller may read; ``map_panel.html`` is the same map for
one dataset, on its page. No tile server: the wards' own outlines are the background. Below every
map, the per-ward counts as a table: the map's text alternative, rendered here so that it reads
without JavaScript.
"""

# No ``from __future__ import annotations`` here: FastAPI reads handler annotations at runtime.

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from cityos.domain.access import ReadAccess
from cityos.domain.geo.aggregate import WardTally
from cityos.domain.geo.wards import CREDIT_EN, CREDIT_JA
from cityos.domain.readmodel.query import RecordQuery
from cityos.kernel.db.models import Dataset
from cityos.kernel.schemas import location_fields
from services.publish import render as api_render
from services.publish.aggregate_api import NO_LOCATION_EN, NO_LOCATION_JA, OUTSIDE_EN, OUTSIDE_JA, ward_tally
from services.publish.context import PublishContext, caller_of, context_of, visible_dataset, visible_datasets
from services.publish.site.templating import Lang, environment, render

router = APIRouter(include_in_schema=False)

# Datasets drawn at once on /map: each is a download and a table; more would not read as a map.
MAX_MAP_DATASETS = 6

WORDS: dict[str, dict[Lang, str]] = {
    "title": {"ja": "地図", "en": "Map"},
    "lead": {
        "ja": "位置情報のあるデータセットを区の境界の上に表示します。区ごとの件数は地図の下の表でも読めます。",
        "en": "Datasets with a location, drawn over the ward boundaries. The counts per ward are also in "
        "the tables below the map.",
    },
    "choose": {"ja": "表示するデータセット", "en": "Datasets to show"},
    "show": {"ja": "表示", "en": "Show"},
    "none": {"ja": "位置情報のあるデータセットはありません。", "en": "No dataset with a location."},
    "pick": {
        "ja": "データセットを選んで「表示」を押してください。",
        "en": "Choose datasets and press Show.",
    },
    "too_many": {
        "ja": f"一度に表示できるのは {MAX_MAP_DATASETS} 件までです。最初の {MAX_MAP_DATASETS} 件を表示しています。",
        "en": f"At most {MAX_MAP_DATASETS} datasets are shown at once; these are the first {MAX_MAP_DATASETS}.",
    },
    "map_label": {"ja": "地図（区の境界と各地点）", "en": "Map (ward boundaries and locations)"},
    "layers": {"ja": "表示する層", "en": "Layers"},
    "layer.wards": {"ja": "区の境界", "en": "Ward boundaries"},
    "layer.choropleth": {"ja": "区別件数の色分け", "en": "Shading by count per ward"},
    "layer.points": {"ja": "地点", "en": "Locations"},
    "choropleth_of": {"ja": "色分けの対象", "en": "Shading shows"},
    "legend": {"ja": "凡例：区ごとの件数", "en": "Legend: records per ward"},
    "nojs": {
        "ja": "地図の表示には JavaScript が必要です。区ごとの件数は下の表をご覧ください。",
        "en": "The map needs JavaScript. The counts per ward are in the table below.",
    },
    "table.caption": {"ja": "{title}：区ごとの件数", "en": "{title}: records per ward"},
    "table.ward": {"ja": "区", "en": "Ward"},
    "table.code": {"ja": "全国地方公共団体コード", "en": "Local government code"},
    "table.count": {"ja": "件数", "en": "Records"},
    "table.share": {"ja": "割合", "en": "Share"},
    "table.total": {"ja": "合計", "en": "Total"},
    "outside": {"ja": OUTSIDE_JA, "en": OUTSIDE_EN},
    "no_location": {"ja": NO_LOCATION_JA, "en": NO_LOCATION_EN},
    "no_wards": {
        "ja": "区の境界が読み込まれていないため、区ごとの件数は表示できません。",
        "en": "The ward boundaries are not loaded, so there are no counts per ward.",
    },
    "csv": {"ja": "区ごとの件数（CSV）", "en": "Records per ward (CSV)"},
    "credit": {"ja": f"区の境界：{CREDIT_JA}", "en": f"Ward boundaries: {CREDIT_JA} ({CREDIT_EN})"},
    "zoom_in": {"ja": "拡大", "en": "Zoom in"},
    "zoom_out": {"ja": "縮小", "en": "Zoom out"},
    "cluster": {"ja": "{count} 件", "en": "{count} records"},
}


def word(key: str, lang: Lang, **values: Any) -> str:
    text = WORDS[key][lang]
    return text.format(**values) if values else text


@dataclass(frozen=True, slots=True)
class WardRow:
    name: str
    code: str
    count: int
    share: str  # percent of the dataset's records, one decimal


@dataclass(frozen=True, slots=True)
class WardTable:
    rows: list[WardRow]
    outside: int
    no_location: int
    total: int


@dataclass(frozen=True, slots=True)
class MapLayer:
    dataset_id: str
    title: str
    points_url: str  # the dataset's GeoJSON export
    aggregate_url: str
    csv_url: str
    table: WardTable | None  # None: no ward boundaries loaded


@dataclass
class MapPanel:
    lang: Lang
    layers: list[MapLayer] = field(default_factory=list)
    wards_loaded: bool = True

    def config(self) -> str:
        """What map.js needs, as JSON for a data- attribute (the page allows no inline script)."""
        return orjson.dumps(
            {
                "lang": self.lang,
                "wardsUrl": "/api/v1/wards?geometry=display",
                "layers": [
                    {
                        "id": layer.dataset_id,
                        "title": layer.title,
                        "points": layer.points_url,
                        "aggregate": layer.aggregate_url,
                    }
                    for layer in self.layers
                ],
                "words": {
                    key: WORDS[key][self.lang]
                    for key in ("legend", "cluster", "outside", "layer.points", "zoom_in", "zoom_out")
                },
            }
        ).decode()


def _share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "0.0%"


def ward_table(result: WardTally, lang: Lang) -> WardTable:
    total = result.records
    rows = [
        WardRow(
            name=ward.name_ja if lang == "ja" else ward.name_en,
            code=ward.code,
            count=bucket.count,
            share=_share(bucket.count, total),
        )
        for ward, bucket in zip(result.wards, result.per_ward, strict=True)
    ]
    return WardTable(
        rows=rows, outside=result.outside.count, no_location=result.no_location.count, total=total
    )


def _title(dataset: Dataset, lang: Lang) -> str:
    title = dataset.meta.get("title")
    if isinstance(title, dict):
        return str(title.get(lang) or title.get("ja") or dataset.id)
    return dataset.id


def _located(dataset: Dataset, access: ReadAccess) -> bool:
    return access.location(location_fields(dataset.meta)) is not None


def map_layer(ctx: PublishContext, session: Session, dataset: Dataset, lang: Lang) -> MapLayer:
    path = api_render.dataset_path(dataset.id)
    try:
        table: WardTable | None = ward_table(ward_tally(ctx, session, dataset, RecordQuery(), None), lang)
    except HTTPException:  # no ward boundaries loaded: the points still draw
        table = None
    return MapLayer(
        dataset_id=dataset.id,
        title=_title(dataset, lang),
        points_url=f"{path}/export?format=geojson",
        aggregate_url=f"{path}/aggregate?by=ward",
        csv_url=f"{path}/aggregate?by=ward&format=csv",
        table=table,
    )


def panel_for(request: Request, dataset_ids: Sequence[str], lang: Lang) -> MapPanel:
    """The map of ``dataset_ids`` for this caller: a dataset it may not read, or whose location it
    may not see, is left out as if it did not exist."""
    ctx = context_of(request)
    panel = MapPanel(lang=lang)
    with ctx.sessions() as session:
        for dataset_id in dataset_ids:
            try:
                dataset, access = visible_dataset(session, caller_of(request), dataset_id)
            except HTTPException:
                continue
            if _located(dataset, access):
                layer = map_layer(ctx, session, dataset, lang)
                panel.layers.append(layer)
                panel.wards_loaded = panel.wards_loaded and layer.table is not None
    return panel


def _panel_global(request: Request, dataset_id: str, lang: Lang) -> MapPanel:
    return panel_for(request, [dataset_id], lang)


# map_panel.html is included by the dataset page with only ``dataset_id`` and ``lang``: it asks
# for its own data through this function.
environment.globals["map_panel_for"] = _panel_global
environment.globals["map_word"] = word


def located_choices(ctx: PublishContext, request: Request, lang: Lang) -> list[tuple[str, str]]:
    """(id, title) of every dataset with a location whose position the caller may read."""
    with ctx.sessions() as session:
        return [
            (dataset.id, _title(dataset, lang))
            for dataset, access in visible_datasets(session, caller_of(request))
            if _located(dataset, access)
        ]


def map_page(request: Request, lang: Lang) -> Response:
    ctx = context_of(request)
    choices = located_choices(ctx, request, lang)
    known = {dataset_id for dataset_id, _ in choices}
    asked: list[str] = []
    for value in request.query_params.getlist("d"):
        if value in known and value not in asked:
            asked.append(value)
    too_many = len(asked) > MAX_MAP_DATASETS
    chosen = asked[:MAX_MAP_DATASETS]
    panel = panel_for(request, chosen, lang) if chosen else None
    context = {
        "w": lambda key, **values: word(key, lang, **values),
        "choices": choices,
        "chosen": chosen,
        "too_many": too_many,
        "map_panel": panel,
    }
    return render(request, "map.html", context, lang=lang)


@router.get("/map")
def map_ja(request: Request) -> Response:
    return map_page(request, "ja")


@router.get("/en/map")
def map_en(request: Request) -> Response:
    return map_page(request, "en")

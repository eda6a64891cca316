"""Per-ward aggregation of a dataset's records, and the wards' outlines as GeoJSON.

``GET /api/v1/datasets/{id}/aggregate?by=ward`` counts (and with ``sum=`` adds up a numeric field
of) the live records in each ward, by point-in-polygon of each record's position against the wards'
full-resolution outlines, plus two buckets: outside every ward, and no location. The same access
rules as the records API apply: an unreadable dataset is the uniform 404, and a grant without the
location fields gets a 403, as a per-ward count is a coarse map of the records.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from cityos.domain.access import ReadAccess
from cityos.domain.geo.aggregate import WardTally, record_batches, tally
from cityos.domain.geo.store import WardIndexCache, boundaries_version, stored_wards
from cityos.domain.geo.wards import CREDIT_EN, CREDIT_JA
from cityos.domain.readmodel import filters
from cityos.domain.readmodel.filters import ParamProblem
from cityos.domain.readmodel.query import RecordQuery, parse_query
from cityos.kernel.db.models import Dataset
from cityos.kernel.schemas import location_fields
from services.publish import render
from services.publish.context import (
    COMMON_RESPONSES,
    ContextDep,
    PublishContext,
    SessionDep,
    bad_request,
    caller_of,
    visible_dataset,
)
from services.publish.records_api import check_caps
from services.publish.usage import open_tally

router = APIRouter(tags=["records"], responses=COMMON_RESPONSES)

AGGREGATE_BY = ("ward",)
# Parameters of the aggregate itself; every other one is a records filter.
OWN_PARAMETERS = frozenset({"by", "sum", "format", "bom"})
# Records parameters that shape a page, not a selection: meaningless for a count.
PAGE_PARAMETERS = ("limit", "offset", "cursor", "sort", "fields", "excel")
OUTSIDE_JA, OUTSIDE_EN = "どの区にも含まれない", "Outside every ward"
NO_LOCATION_JA, NO_LOCATION_EN = "位置情報なし", "No location"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8; header=present"
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}


class WardCount(BaseModel):
    code: str = Field(description="全国地方公共団体コード (6 digits, with check digit)", examples=["401064"])
    n03_code: str = Field(description="The same code without its check digit, as N03 writes it")
    name_ja: str = Field(examples=["小倉北区"])
    name_en: str = Field(examples=["Kokurakita-ku"])
    count: int = Field(description="Live records whose position is in the ward (a boundary counts as in)")
    sum: float | None = Field(None, description="With `sum=`: the field's total over those records")


class BucketCount(BaseModel):
    count: int
    sum: float | None = None


class WardAggregate(BaseModel):
    dataset_id: str
    by: Literal["ward"]
    sum_field: str | None = None
    total: int = Field(description="Records counted: the wards plus both buckets")
    wards: list[WardCount]
    outside: BucketCount = Field(description="Records with a position inside no ward")
    no_location: BucketCount = Field(description="Records without a position")
    attribution: str = Field(description="Credit the boundary data's terms ask for")


class WardProperties(BaseModel):
    code: str
    n03_code: str
    name_ja: str
    name_en: str


class WardFeature(BaseModel):
    type: Literal["Feature"]
    id: str
    properties: WardProperties
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon (WGS 84 lon/lat)")


class WardCollection(BaseModel):
    type: Literal["FeatureCollection"]
    attribution: str
    features: list[WardFeature]


class GeoJSONResponse(JSONResponse):
    """GeoJSON bytes already serialised (a JSON response to the OpenAPI document, so its model shows)."""

    media_type = "application/geo+json"

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


_INDEXES = WardIndexCache()


class _WardsBody:
    """The wards' GeoJSON bytes per database and resolution, until the table changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[tuple[int, datetime | None], bytes]] = {}

    def get(self, session: Session, database: str, geometry: str) -> bytes:
        version = boundaries_version(session)
        with self._lock:
            entry = self._entries.get((database, geometry))
        if entry is not None and entry[0] == version:
            return entry[1]
        body = orjson.dumps(wards_collection(session, display=geometry == "display"))
        with self._lock:
            self._entries[(database, geometry)] = (version, body)
        return body


_WARDS_BODIES = _WardsBody()


def wards_collection(session: Session, *, display: bool) -> dict[str, Any]:
    features = [
        {
            "type": "Feature",
            "id": w.ward.code,
            "properties": {
                "code": w.ward.code,
                "n03_code": w.ward.n03_code,
                "name_ja": w.ward.name_ja,
                "name_en": w.ward.name_en,
            },
            "geometry": w.geometry,
        }
        for w in stored_wards(session, display=display)
    ]
    return {"type": "FeatureCollection", "attribution": CREDIT_JA, "features": features}


def _database_key(ctx: PublishContext) -> str:
    return ctx.engine.url.render_as_string(hide_password=True)


def no_wards() -> HTTPException:
    return HTTPException(
        status_code=503,
        detail={
            "error": "no_ward_boundaries",
            "detail": "the ward boundaries are not loaded; an operator runs `cityos geo load-wards`",
        },
    )


def location_refused(parameter: str) -> HTTPException:
    return HTTPException(
        status_code=403,
        detail={
            "error": "location_not_granted",
            "parameter": parameter,
            "detail": "your grant of this dataset does not include its location fields: no per-ward counts",
        },
    )


def numeric_field(schema: dict[str, Any] | None, access: ReadAccess, name: str) -> str | None:
    """``name`` when it is a declared number or integer property the caller may read."""
    properties = (schema or {}).get("properties") or {}
    prop = properties.get(name)
    if not isinstance(prop, dict) or (access.fields is not None and name not in access.fields):
        return None
    types = filters.declared_types(schema or {}, prop)
    return name if types and set(types) <= {"number", "integer", "null"} and set(types) - {"null"} else None


@dataclass(frozen=True, slots=True)
class AggregateRequest:
    by: str
    sum_field: str | None
    format: Literal["json", "csv"]
    bom: bool
    query: RecordQuery


def read_aggregate_request(
    params: list[tuple[str, str]], schema: dict[str, Any] | None, access: ReadAccess
) -> AggregateRequest | ParamProblem:
    """The aggregate's own parameters and the records filters, checked; a problem names its
    parameter. Pure."""
    own = {k: v for k, v in params if k in OWN_PARAMETERS}
    by = own.get("by")
    if by not in AGGREGATE_BY:
        return ParamProblem("by", f"expected one of: {', '.join(AGGREGATE_BY)}")
    fmt = own.get("format", "json")
    if fmt not in ("json", "csv"):
        return ParamProblem("format", "expected json or csv")
    bom = own.get("bom", "false").lower()
    if bom not in _BOOLEAN:
        return ParamProblem("bom", "expected true or false")
    sum_field: str | None = None
    if "sum" in own:
        sum_field = numeric_field(schema, access, own["sum"])
        if sum_field is None:
            return ParamProblem("sum", "expected a numeric (number or integer) property of the dataset")
    for name in PAGE_PARAMETERS:
        if any(k == name for k, _ in params):
            return ParamProblem(name, "an aggregate counts every matching record; only filters apply")
    parsed = parse_query(
        [(k, v) for k, v in params if k not in OWN_PARAMETERS],
        schema,
        allowed_fields=access.fields,
        has_location=True,
    )
    if isinstance(parsed, ParamProblem):
        return parsed
    return AggregateRequest(
        by=by, sum_field=sum_field, format="csv" if fmt == "csv" else "json", bom=_BOOLEAN[bom], query=parsed
    )


def ward_tally(
    ctx: PublishContext, session: Session, dataset: Dataset, query: RecordQuery, sum_field: str | None
) -> WardTally:
    """Counts per ward of ``dataset``'s live records matching ``query`` (503 when no wards are loaded)."""
    index = _INDEXES.index(session, _database_key(ctx))
    if not index.wards:
        raise no_wards()
    return tally(index, record_batches(session, dataset_id=dataset.id, query=query, sum_field=sum_field))


def aggregate_body(dataset_id: str, result: WardTally, sum_field: str | None) -> dict[str, Any]:
    def total(value: float) -> float | None:
        return value if sum_field is not None else None

    return {
        "dataset_id": dataset_id,
        "by": "ward",
        "sum_field": sum_field,
        "total": result.records,
        "wards": [
            {
                "code": ward.code,
                "n03_code": ward.n03_code,
                "name_ja": ward.name_ja,
                "name_en": ward.name_en,
                "count": bucket.count,
                "sum": total(bucket.total),
            }
            for ward, bucket in zip(result.wards, result.per_ward, strict=True)
        ],
        "outside": {"count": result.outside.count, "sum": total(result.outside.total)},
        "no_location": {"count": result.no_location.count, "sum": total(result.no_location.total)},
        "attribution": CREDIT_JA,
    }


def aggregate_csv(body: dict[str, Any], *, bom: bool) -> bytes:
    """One row per ward, then the two buckets (with empty codes); a ``sum`` column with ``sum=``."""
    columns = ["code", "n03_code", "name_ja", "name_en", "count"]
    if body["sum_field"] is not None:
        columns.append("sum")
    rows: list[dict[str, Any]] = [dict(row) for row in body["wards"]]
    for key, ja, en in (("outside", OUTSIDE_JA, OUTSIDE_EN), ("no_location", NO_LOCATION_JA, NO_LOCATION_EN)):
        rows.append({"code": "", "n03_code": "", "name_ja": ja, "name_en": en, **body[key]})
    return render.render_csv(columns, rows, bom=bom)


@router.get(
    "/api/v1/datasets/{dataset_id}/aggregate",
    summary="Records per ward: counts (and sums) by point-in-polygon against the ward boundaries",
    description=(
        "Counts the dataset's live records in each of the city's wards (`by=ward`), with the ward's "
        "6-digit 全国地方公共団体コード, N03 code and Japanese and English names, plus records outside "
        "every ward and records without a location. `sum=<numeric property>` adds that property's "
        "total per ward. The records API's filters apply (`名称=...`, `q`, `bbox`, `near`, ranges). "
        f"`format=csv` for a spreadsheet (`bom=true` for Excel). Boundaries: {CREDIT_JA}."
    ),
    response_class=Response,
    responses={
        200: {
            "model": WardAggregate,
            "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
        },
        400: {
            "description": "A bad `by`, `sum`, `format` or filter (named), or a dataset without a location"
        },
        403: {"description": "Your grant leaves out the location fields"},
        404: {"description": "No dataset with this id that you may read"},
        503: {"description": "The ward boundaries are not loaded"},
    },
)
def aggregate(
    request: Request,
    dataset_id: str,
    ctx: ContextDep,
    session: SessionDep,
    by: Annotated[
        Literal["ward"] | None, Query(description="What to group by", include_in_schema=True)
    ] = None,
    sum: Annotated[str | None, Query(description="A numeric property to add up per ward")] = None,
    format: Annotated[Literal["json", "csv"] | None, Query(description="Output format")] = None,
    bom: Annotated[bool, Query(description="CSV only: start with a UTF-8 BOM (Excel)")] = False,
) -> Response:
    # The typed parameters document the route; the values are read from the query string below,
    # so that a problem is a 400 naming the parameter, in the same words as the records API's.
    del by, sum, format, bom
    check_caps(request)
    dataset, access = visible_dataset(session, caller_of(request), dataset_id)
    declared = location_fields(dataset.meta)
    if declared is None:
        raise bad_request("by", "this dataset declares no location, so its records cannot be placed in wards")
    if access.location(declared) is None:
        raise location_refused("by")
    schema = ctx.schemas.latest(session, dataset.id)
    asked = read_aggregate_request(request.query_params.multi_items(), schema, access)
    if isinstance(asked, ParamProblem):
        raise bad_request(asked.parameter, asked.problem)
    request.state.response_format = asked.format
    result = ward_tally(ctx, session, dataset, asked.query, asked.sum_field)
    body = aggregate_body(dataset.id, result, asked.sum_field)
    open_tally(request.state, dataset.id, asked.format).rows = len(body["wards"]) + 2
    headers = {"Vary": "Accept, Authorization, X-API-Key", "Cache-Control": "public, max-age=0"}
    if asked.format == "csv":
        headers["Content-Disposition"] = render.content_disposition(f"{dataset.id}-by-ward.csv")
        return Response(aggregate_csv(body, bom=asked.bom), media_type=CSV_MEDIA_TYPE, headers=headers)
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


@router.get(
    "/api/v1/wards",
    summary="The city's wards as GeoJSON: codes, names and outlines (for maps and GIS)",
    description=(
        "One Feature per ward, `id` its 6-digit 全国地方公共団体コード. `geometry=display` (default) is "
        "simplified to about 10 m for drawing; `geometry=full` is the full-resolution outline the "
        f"aggregates use. {CREDIT_JA} ({CREDIT_EN})."
    ),
    tags=["geography"],
    response_class=GeoJSONResponse,
    responses={
        200: {"model": WardCollection, "description": "Every ward (none before the boundaries are loaded)"},
    },
)
def wards(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    geometry: Annotated[Literal["display", "full"], Query(description="Outline resolution")] = "display",
) -> Response:
    request.state.response_format = "geojson"
    # Before `cityos geo load-wards` has run this is an empty collection: the city's wards are unknown.
    body = _WARDS_BODIES.get(session, _database_key(ctx), geometry)
    return GeoJSONResponse(
        body,
        headers={
            "Cache-Control": "public, max-age=3600",
            "Content-Disposition": 'inline; filename="wards.geojson"',
        },
    )

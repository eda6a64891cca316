"""OGC API - Features (Part 1: Core, GeoJSON, HTML, OpenAPI 3.0) under ``/ogc``.

A collection is a dataset the caller may read together with its location fields: the same access
decision as ``/api/v1/datasets`` (``visible_dataset(s)``), so a dataset hidden there is a 404 here
and a grant without the location fields shows no collection. Items are read by the records API's
own path: the OGC parameters become a records query (``query.parse_query``), run by
``queries.query_records``/``count_records``, and the features are written from the stored JSON by
``stream.geojson_batch`` -- the same bytes as the records API's GeoJSON. The documents themselves
are built by ``ogc``.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityos.domain.access import ReadAccess
from cityos.domain.readmodel import queries
from cityos.domain.readmodel.filters import ParamProblem
from cityos.domain.readmodel.query import RecordQuery, SortKey, parse_query
from cityos.kernel.db.models import Dataset
from cityos.kernel.schemas import location_fields
from services.publish import ogc, param_caps, render, stream
from services.publish.context import (
    COMMON_RESPONSES,
    NOT_FOUND,
    PublishContext,
    bad_request,
    caller_of,
    context_of,
    project,
    visible_dataset,
    visible_datasets,
)
from services.publish.inline import renders_inline
from services.publish.site import templating
from services.publish.usage import open_tally

router = APIRouter(prefix=ogc.PREFIX, tags=["ogc-api-features"], responses=COMMON_RESPONSES)

# Collection extents are aggregates over every live record: kept this long, and only while the
# dataset's record count and newest event time stay the same.
EXTENT_TTL_S = 30.0


def _refuse(problem: ParamProblem) -> HTTPException:
    return bad_request(problem.parameter, problem.problem)


def _not_found() -> HTTPException:
    return HTTPException(status_code=404, detail=NOT_FOUND)


@dataclass(frozen=True, slots=True)
class Asked:
    """What every OGC request says about its answer: the representation and the language."""

    chosen: ogc.Representation
    lang: ogc.Lang
    params: list[tuple[str, str]]


def _asked(request: Request, known: frozenset[str] | None = ogc.PAGE_PARAMETERS) -> Asked:
    """The checked representation and language; unknown parameters (``known`` given) are a 400."""
    params = request.query_params.multi_items()
    over = param_caps.query_over_cap(params)
    if over is not None:
        raise bad_request(over.parameter, over.problem)
    if known is not None:
        unknown = ogc.unknown_parameter((name for name, _ in params), known)
        if unknown is not None:
            raise _refuse(unknown)
    query = request.query_params
    chosen = ogc.representation(query.get("f"), request.headers.get("accept"))
    if isinstance(chosen, ParamProblem):
        raise _refuse(chosen)
    lang = ogc.language(query.get("lang"))
    if isinstance(lang, ParamProblem):
        raise _refuse(lang)
    return Asked(chosen, lang, params)


def _json(body: Any, media_type: str = ogc.JSON) -> Response:
    return Response(orjson.dumps(body), media_type=media_type)


def _html(request: Request, template: str, asked: Asked, context: dict[str, Any]) -> Response:
    other: ogc.Lang = "en" if asked.lang == "ja" else "ja"
    kept = [(k, v) for k, v in asked.params if k != "lang"]
    switched = ogc.href("", request.url.path, [*kept, *([("lang", "en")] if other == "en" else [])])
    return templating.render(
        request,
        template,
        {**context, "other_lang_url": switched, "json_url": _json_url(request, asked)},
        lang=asked.lang,
        headers={"Content-Language": asked.lang},
    )


def _json_url(request: Request, asked: Asked) -> str:
    kept = [(k, v) for k, v in asked.params if k != "f"]
    return ogc.href("", request.url.path, [*kept, ("f", "json")])


# --- what the JSON documents hold (for the OpenAPI description; the bodies are built by ``ogc``) --


class Link(BaseModel):
    href: str
    rel: str
    type: str
    title: str


class LandingPage(BaseModel):
    title: str
    description: str
    links: list[Link]


class ConformanceClasses(BaseModel):
    conformsTo: list[str]  # the standard's name


class SpatialExtent(BaseModel):
    bbox: list[list[float]] = Field(description="[[min lon, min lat, max lon, max lat]] of the live records")
    crs: str


class TemporalExtent(BaseModel):
    interval: list[list[str | None]] = Field(description="[[first, last]] of the date or time property")
    trs: str


class Extent(BaseModel):
    spatial: SpatialExtent | None = None
    temporal: TemporalExtent | None = None


class Collection(BaseModel):
    id: str = Field(description="The dataset id")
    title: str
    description: str
    links: list[Link]
    extent: Extent | None = None
    itemType: str = "feature"  # the standard's name
    crs: list[str]
    keywords: list[str] | None = None


class Collections(BaseModel):
    links: list[Link]
    collections: list[Collection]


# --- the OpenAPI parameters of the OGC paths (documented on each route, answered by hand) --------


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    } | extra


_F = _query(
    "f",
    "Representation: json (the default) or html; overrides Accept",
    {"type": "string", "enum": ["json", "html"]},
)
_LANG = _query(
    "lang", "Language of titles and descriptions", {"type": "string", "enum": ["ja", "en"], "default": "ja"}
)
_COLLECTION_ID = {"name": "collectionId", "in": "path", "required": True, "schema": {"type": "string"},
                  "description": "A dataset id"}  # fmt: skip
_FEATURE_ID = {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "A record key"}  # fmt: skip
ITEMS_PARAMETERS = [
    _COLLECTION_ID,
    _query("limit", "Features per page (above the maximum: the maximum)",
           {"type": "integer", "minimum": 1, "maximum": ogc.MAX_LIMIT, "default": ogc.DEFAULT_LIMIT}),
    _query("offset", "Features to skip (the next and prev links carry it)", {"type": "integer", "minimum": 0, "default": 0}),
    _query("bbox", "minLon,minLat,maxLon,maxLat in CRS84 (four numbers)",
           {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
           style="form", explode=False, example=[130.85, 33.86, 130.90, 33.90]),
    _query("datetime", "An instant, or an interval a/b with '..' for an open end, on the collection's "
           "date or time property (a collection without one answers 400)", {"type": "string"},
           example="2025-04-01/.."),
    _F,
    _LANG,
]  # fmt: skip
_PAGE_PARAMETERS = [_F, _LANG]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "An unknown or malformed parameter; the body names it"},
    404: {"description": "No such collection (dataset with a location you may read) or feature"},
}


# --- landing page, API definition, conformance ---------------------------------------------------


def _landing(request: Request) -> Response:
    asked = _asked(request)
    ctx = context_of(request)
    body = ogc.landing(ctx.base_url(request), asked.chosen, asked.lang)
    if asked.chosen == "html":
        return _html(request, "ogc/landing.html", asked, {"doc": body})
    return _json(body)


@router.get(
    "",
    summary="OGC API - Features landing page",
    response_class=Response,
    responses={200: {"model": LandingPage, "content": {ogc.JSON: {}, ogc.HTML: {}}}, **_RESPONSES},
    openapi_extra={"parameters": _PAGE_PARAMETERS},
)
async def landing(request: Request) -> Response:
    return _landing(request)


@router.get("/", include_in_schema=False, response_class=Response)
async def landing_slash(request: Request) -> Response:
    # Clients that treat the landing page as a folder (OWSLib) ask for it with a trailing slash.
    return _landing(request)


@router.get(
    "/api",
    summary="The OGC API's definition (OpenAPI 3.0)",
    response_class=Response,
    responses={200: {"content": {ogc.OPENAPI_JSON: {}}}},
)
async def api_definition(request: Request) -> Response:
    _asked(request, frozenset({"f"}))
    body = ogc.openapi_document(context_of(request).base_url(request))
    return Response(orjson.dumps(body), media_type=ogc.OPENAPI_JSON)


@router.get("/openapi", include_in_schema=False, response_class=Response)
async def api_definition_alias(request: Request) -> Response:
    # Where some clients look when a landing page names no definition.
    return await api_definition(request)


@router.get(
    "/conformance",
    summary="Conformance classes: core, GeoJSON, HTML, OpenAPI 3.0",
    response_class=Response,
    responses={200: {"model": ConformanceClasses, "content": {ogc.JSON: {}, ogc.HTML: {}}}, **_RESPONSES},
    openapi_extra={"parameters": _PAGE_PARAMETERS},
)
async def conformance(request: Request) -> Response:
    asked = _asked(request)
    body = ogc.conformance()
    if asked.chosen == "html":
        return _html(request, "ogc/conformance.html", asked, {"doc": body})
    return _json(body)


# --- collections ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Extent:
    valid_for: tuple[int, datetime | None]
    expires: float
    bbox: tuple[float, float, float, float] | None
    interval: tuple[str | None, str | None] | None


class ExtentCache:
    """Collections' extents by (dataset, temporal property), while their dataset row is unchanged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str | None], _Extent] = {}

    def get(self, key: tuple[str, str | None], dataset: Dataset) -> _Extent | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry if entry.valid_for == (dataset.record_count, dataset.last_record_at) else None

    def put(self, key: tuple[str, str | None], entry: _Extent) -> None:
        with self._lock:
            if len(self._entries) > 4096:  # one per dataset and property: only a runaway grows it
                self._entries.clear()
            self._entries[key] = entry


def _extents(request: Request) -> ExtentCache:
    state = request.app.state
    cache = getattr(state, "ogc_extents", None)
    if not isinstance(cache, ExtentCache):
        cache = state.ogc_extents = ExtentCache()
    return cache


def _edge(connection: Connection, dataset_id: str, name: str, *, last: bool) -> str | None:
    """The first (or last) value of ``name`` in the dataset, by the records query's own ordering."""
    query = RecordQuery(sort=(SortKey(name, descending=last),))
    rows = queries.query_records(connection, dataset_id=dataset_id, query=query, limit=1)
    value = rows[0].data.get(name) if rows else None
    return value if isinstance(value, str) else None


def _facts(
    request: Request, session: Session, dataset: Dataset, access: ReadAccess, schema: dict[str, Any] | None
) -> ogc.CollectionFacts:
    temporal = ogc.temporal_property(schema, access.fields)
    cache = _extents(request)
    key = (dataset.id, temporal)
    entry = cache.get(key, dataset)
    if entry is None:
        bbox = queries.dataset_extent(session, dataset_id=dataset.id)
        interval = None
        if temporal is not None:
            connection = session.connection()
            first = _edge(connection, dataset.id, temporal, last=False)
            interval = None if first is None else (first, _edge(connection, dataset.id, temporal, last=True))
        entry = _Extent(
            (dataset.record_count, dataset.last_record_at), time.monotonic() + EXTENT_TTL_S, bbox, interval
        )
        cache.put(key, entry)
    return ogc.CollectionFacts(dataset.id, dataset.meta, entry.bbox, entry.interval, temporal)


def _located(dataset: Dataset, access: ReadAccess) -> tuple[str, str] | None:
    return access.location(location_fields(dataset.meta))


def _collections(request: Request, asked: Asked) -> tuple[dict[str, Any], list[ogc.CollectionFacts]]:
    ctx = context_of(request)
    with ctx.sessions() as session:
        facts = [
            _facts(request, session, dataset, access, ctx.schemas.latest(session, dataset.id))
            for dataset, access in visible_datasets(session, caller_of(request))
            if _located(dataset, access) is not None
        ]
    return ogc.collections(facts, ctx.base_url(request), asked.chosen, asked.lang), facts


@router.get(
    "/collections",
    summary="Feature collections: the datasets with a location you may read",
    response_class=Response,
    responses={200: {"model": Collections, "content": {ogc.JSON: {}, ogc.HTML: {}}}, **_RESPONSES},
    openapi_extra={"parameters": _PAGE_PARAMETERS},
)
def list_collections(request: Request) -> Response:
    asked = _asked(request)
    body, _ = _collections(request, asked)
    if asked.chosen == "html":
        return _html(request, "ogc/collections.html", asked, {"doc": body})
    return _json(body)


def _collection(
    ctx: PublishContext,
    request: Request,
    session: Session,
    collection_id: str,
    connection: Connection | None = None,
) -> tuple[Dataset, ReadAccess, tuple[str, str], dict[str, Any] | None]:
    """The dataset behind a collection, the caller's access and its location fields, or the 404."""
    dataset, access = visible_dataset(session, caller_of(request), collection_id, connection=connection)
    location = _located(dataset, access)
    if location is None:
        raise _not_found()
    return dataset, access, location, ctx.schemas.latest(session, dataset.id)


@router.get(
    "/collections/{collectionId}",
    summary="One feature collection: title, extent, links",
    response_class=Response,
    responses={200: {"model": Collection, "content": {ogc.JSON: {}, ogc.HTML: {}}}, **_RESPONSES},
    openapi_extra={"parameters": [_COLLECTION_ID, *_PAGE_PARAMETERS]},
)
def describe_collection(request: Request) -> Response:
    asked = _asked(request)
    ctx = context_of(request)
    with ctx.sessions() as session:
        dataset, access, _, schema = _collection(ctx, request, session, request.path_params["collectionId"])
        facts = _facts(request, session, dataset, access, schema)
        properties = _properties(schema, access)
    body = ogc.collection(facts, ctx.base_url(request), asked.chosen, asked.lang)
    if asked.chosen == "html":
        context = {"doc": body, "properties": properties, "english": _english_names(schema, asked.lang)}
        return _html(request, "ogc/collection.html", asked, context)
    return _json(body)


def _english_names(schema: dict[str, Any] | None, lang: ogc.Lang) -> dict[str, str]:
    """The properties' English names (``x-en``), shown beside the Japanese ones on English pages."""
    properties = schema.get("properties") if schema is not None else None
    if lang == "ja" or not isinstance(properties, dict):
        return {}
    return {
        name: rule["x-en"]
        for name, rule in properties.items()
        if isinstance(rule, dict) and isinstance(rule.get("x-en"), str)
    }


def _properties(schema: dict[str, Any] | None, access: ReadAccess) -> list[str]:
    properties = schema.get("properties") if schema is not None else None
    if not isinstance(properties, dict):
        return []
    return [name for name in properties if access.fields is None or name in access.fields]


# --- items ----------------------------------------------------------------------------------------


def _requested_limit(raw: str | None) -> int:
    """The page size, as far as deciding where to render goes (checked properly afterwards)."""
    if raw is None or not raw.isdigit() or len(raw) > 6:
        return ogc.DEFAULT_LIMIT if raw is None else ogc.MAX_LIMIT
    return min(int(raw), ogc.MAX_LIMIT)


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection: bbox, datetime, property equality (?名称=...), paging",
    response_class=Response,
    responses={
        200: {
            "description": "A GeoJSON FeatureCollection (or its HTML page)",
            "content": {ogc.GEOJSON: {"schema": {"type": "object"}}, ogc.HTML: {}},
        },
        **_RESPONSES,
    },
    openapi_extra={"parameters": ITEMS_PARAMETERS},
)
async def items(request: Request) -> Response:
    # Parameters are read by hand (documented in ITEMS_PARAMETERS), as on the records route: the
    # names of property filters are the collection's own, and FastAPI's per-parameter validation
    # costs more than a small page's database work.
    ctx = context_of(request)
    asked = _asked(request, known=None)
    collection_id: str = request.path_params["collectionId"]
    limit = _requested_limit(request.query_params.get("limit"))
    known = ctx.sizes.known(collection_id)
    if renders_inline(dialect=ctx.engine.dialect.name, known_records=known, limit=limit):
        return _items_page(ctx, request, collection_id, asked)
    return await run_in_threadpool(_items_page, ctx, request, collection_id, asked)


def _record_query(
    params: list[tuple[str, str]],
    schema: dict[str, Any] | None,
    access: ReadAccess,
    zone: Callable[[], str | None],
) -> tuple[ogc.ItemsRequest, RecordQuery]:
    """The OGC parameters as a records query, or the 400 naming the OGC parameter at fault."""
    temporal = ogc.temporal_property(schema, access.fields)
    asked = ogc.items_request(params, _properties(schema, access), has_time=temporal is not None)
    if isinstance(asked, ParamProblem):
        raise _refuse(asked)
    conditions = list(asked.filters)
    timed: set[str] = set()
    if asked.time is not None and temporal is not None:
        fmt = ogc.property_format(schema, temporal)
        timed_conditions = ogc.time_conditions(
            temporal, fmt, asked.time, zone() if fmt == "date-time" else None
        )
        timed = {name for name, _ in timed_conditions}
        conditions += timed_conditions
    parsed = parse_query(conditions, schema, allowed_fields=access.fields, has_location=True)
    if isinstance(parsed, ParamProblem):
        # A condition written for ``datetime`` is reported as ``datetime``, never by its inner name.
        name = "datetime" if parsed.parameter in timed else parsed.parameter
        raise bad_request(name, parsed.problem)
    return asked, parsed


def _items_page(ctx: PublishContext, request: Request, collection_id: str, asked: Asked) -> Response:
    with ctx.engine.connect() as connection, ctx.sessions(bind=connection) as session:
        dataset, access, location, schema = _collection(ctx, request, session, collection_id, connection)
        ctx.sizes.seen(dataset.id, dataset.record_count)

        def zone() -> str | None:
            # The zone the collection's records write their times in: that of its first one.
            interval = _facts(request, session, dataset, access, schema).interval
            return ogc.zone_of(interval[0] if interval is not None else None)

        paging, parsed = _record_query(asked.params, schema, access, zone)
        if parsed.conditions or parsed.bbox:
            matched = queries.count_records(connection, dataset_id=dataset.id, query=parsed)
        else:
            # Unfiltered: the live count the catalog keeps on the dataset row, no COUNT(*) scan.
            matched = dataset.record_count
        records = queries.query_records(
            connection, dataset_id=dataset.id, query=parsed, limit=paging.limit, offset=paging.offset
        )
    open_tally(request.state, dataset.id, "geojson").rows = len(records)
    base_url = ctx.base_url(request)
    links = ogc.items_links(
        base_url, dataset.id, asked.params, asked.chosen, limit=paging.limit, offset=paging.offset,
        returned=len(records), matched=matched,
    )  # fmt: skip
    stamp = ogc.timestamp(datetime.now(UTC))
    if asked.chosen == "html":
        shown = _properties(schema, access)
        rows = [(r.record_key, render.record_point(r, location), access.project(r.data)) for r in records]
        context = {
            "collection": ogc.collection(
                ogc.CollectionFacts(dataset.id, dataset.meta, None, None, None), base_url, "html", asked.lang
            ),
            "columns": shown, "english": _english_names(schema, asked.lang), "rows": rows, "matched": matched, "returned": len(records),
            "offset": paging.offset, "links": links, "stamp": stamp,
        }  # fmt: skip
        return _html(request, "ogc/items.html", asked, context)
    projector = None if access.fields is None else (lambda data: project(data, access.fields))
    rows_out = [(r.record_key, r.raw.encode(), r.latitude, r.longitude) for r in records]
    features = stream.geojson_batch(rows_out, location, projector) if rows_out else b""
    body = ogc.feature_collection(features, matched=matched, returned=len(records), stamp=stamp, links=links)
    return Response(body, media_type=ogc.GEOJSON)


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One feature by its id (the record key)",
    response_class=Response,
    responses={200: {"content": {ogc.GEOJSON: {"schema": {"type": "object"}}, ogc.HTML: {}}}, **_RESPONSES},
    openapi_extra={"parameters": [_COLLECTION_ID, _FEATURE_ID, *_PAGE_PARAMETERS]},
)
def feature(request: Request) -> Response:
    asked = _asked(request)
    ctx = context_of(request)
    feature_id: str = request.path_params["featureId"]
    with ctx.sessions() as session:
        dataset, access, location, schema = _collection(
            ctx, request, session, request.path_params["collectionId"]
        )
        record = queries.get_record(session, dataset_id=dataset.id, record_key=feature_id)
        if record is None:
            raise HTTPException(
                status_code=404, detail={"error": "not_found", "detail": "no feature with this id"}
            )
        projector = None if access.fields is None else (lambda data: project(data, access.fields))
        body = stream.geojson_feature(record, location, projector)
        point = render.record_point(record, location)
        data = access.project(record.data)
    open_tally(request.state, dataset.id, "geojson").rows = 1
    body["links"] = ogc.feature_links(ctx.base_url(request), dataset.id, feature_id, asked.chosen, asked.lang)
    if asked.chosen == "html":
        context = {
            "collection": ogc.collection(
                ogc.CollectionFacts(dataset.id, dataset.meta, None, None, None),
                ctx.base_url(request), "html", asked.lang,
            ),
            "feature_id": feature_id, "point": point, "data": data,
            "columns": [c for c in _properties(schema, access) if c in data] + [c for c in data if c not in _properties(schema, access)],
            "links": body["links"], "english": _english_names(schema, asked.lang),
        }  # fmt: skip
        return _html(request, "ogc/item.html", asked, context)
    return _json(body, ogc.GEOJSON)

"""The open-data REST API: datasets, record pages, single records and whole-dataset exports.

Every handler asks ``visible_dataset`` (``read_access``) first; an invisible dataset is the same 404
as a missing one. Query strings are parsed by ``query.parse_query`` into typed conditions that
``cityos.domain.readmodel.queries`` turns into SQLAlchemy expressions.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Connection
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from cityos.domain.access import ReadAccess
from cityos.domain.analysis.formats import PARQUET_MEDIA_TYPE
from cityos.domain.readmodel import filters, queries
from cityos.domain.readmodel.filters import ParamProblem
from cityos.domain.readmodel.query import RecordQuery, encode_cursor, parse_query
from cityos.kernel.db.models import Dataset, Department, SchemaVersionRow
from cityos.kernel.schemas import location_fields
from services.publish import page_cache, param_caps, render, stream
from services.publish.conditional import export_etag, http_date, not_modified, weak_etag
from services.publish.context import (
    COMMON_RESPONSES,
    ContextDep,
    PublishContext,
    SessionDep,
    bad_request,
    caller_of,
    context_of,
    project,
    visible_dataset,
    visible_datasets,
)
from services.publish.inline import renders_inline
from services.publish.page_cache import CachedPage, PreparedResponse
from services.publish.quality import five_star, listed_stars, metadata_quality
from services.publish.responses import (
    ApiIndex,
    ApiIndexLinks,
    DatasetDetail,
    DatasetList,
    Record,
    RecordArray,
    RecordsPage,
)
from services.publish.usage import open_tally

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

MEDIA_TYPES: dict[filters.OutputFormat, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8; header=present",
    "geojson": "application/geo+json",
    "ndjson": "application/x-ndjson",
}
FormatParam = Literal["json", "csv", "geojson", "ndjson"]
# Parquet is a whole file (its footer last): an export only, never a page of /records.
ExportFormat = Literal["json", "csv", "geojson", "ndjson", "parquet"]

_RECORDS_EXAMPLES = {
    "equality": {"summary": "Equality on a Japanese property", "value": "?設置位置=1階ロビー"},
    "range": {"summary": "Numeric range and sort", "value": "?男性トイレ総数[gte]=3&sort=-男性トイレ総数"},
    "bbox": {"summary": "GeoJSON inside a box", "value": "?bbox=130.85,33.86,130.90,33.90&format=geojson"},
    "near": {"summary": "Within 500 m of a point", "value": "?near=130.874,33.884&distance=500"},
    "cursor": {"summary": "Next page by cursor", "value": "?limit=1000&cursor=eyJ2IjoxLCJrIjoiMDQyIn0"},
}


def quality_of(
    dataset: Dataset, department: Department | None, schema: SchemaVersionRow | None
) -> dict[str, Any]:
    rating = five_star(dataset.meta, record_key=dataset.record_key, has_schema=schema is not None)
    score = metadata_quality(
        dataset.meta,
        has_publisher=department is not None,
        has_contact=department is not None,
        has_schema=schema is not None,
        has_spatial=location_fields(dataset.meta) is not None,
        has_modified=dataset.last_record_at is not None,
    )
    return {"five_star": rating.as_dict(), "metadata_quality": score.as_dict()}


def _columns(
    schema: dict[str, Any] | None, access: ReadAccess, parsed: RecordQuery, rows: list[dict[str, Any]] | None
) -> list[str]:
    if parsed.fields is not None:
        return list(parsed.fields)
    columns = render.csv_columns(schema, rows or [])
    return [c for c in columns if access.fields is None or c in access.fields]


def _shown_fields(access: ReadAccess, parsed: RecordQuery) -> tuple[str, ...] | frozenset[str] | None:
    return parsed.fields if parsed.fields is not None else access.fields


def _param(name: str, description: str, schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    parameter: dict[str, Any] = {
        "name": name, "in": "query", "required": False, "description": description, "schema": schema,
    }  # fmt: skip
    if example is not None:
        parameter["example"] = example
    return parameter


_TEXT = {"type": "string"}
_LOCATION_REFUSED = "Your grant leaves out the location fields: no GeoJSON, `bbox` or `near`"
_BOM_HELP = "CSV only: start with a UTF-8 BOM (Excel); also neutralises formula cells as `excel=true` does"
_EXCEL_HELP = (
    "CSV only: for spreadsheets. A text cell starting with `=`, `+`, `-`, `@`, tab or carriage return "
    "gets a leading `'` so that Excel shows it instead of running it (OWASP CSV injection); a cell "
    "that is exactly a number, such as `-3.5`, is kept. Without `bom` or `excel`, cells are exact."
)
RECORDS_PARAMETERS = [
    # Declared here rather than in the handler's signature: FastAPI's dependency solving for a
    # single path parameter cost as much as answering a cached page.
    {
        "name": "dataset_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "title": "Dataset Id"},
    },
    _param(
        "limit",
        "Page size",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    _param("offset", "Records to skip (or use cursor)", {"type": "integer", "minimum": 0, "default": 0}),
    _param(
        "format", "Output format; overrides the Accept header", {"type": "string", "enum": list(MEDIA_TYPES)}
    ),
    _param("bom", _BOM_HELP, {"type": "boolean", "default": False}),
    _param("excel", _EXCEL_HELP, {"type": "boolean", "default": False}),
    _param("q", "Text contained in any text field", _TEXT, "小倉"),
    _param("bbox", "minLon,minLat,maxLon,maxLat (WGS 84)", _TEXT, "130.85,33.86,130.90,33.90"),
    _param("near", "lon,lat of a point", _TEXT, "130.874,33.884"),
    _param("distance", "Metres from `near` (default 1000)", {"type": "number"}, 500),
    _param("sort", "Fields, `-` for descending", _TEXT, "-男性トイレ総数"),
    _param("fields", "Fields to return", _TEXT, "名称,住所"),
    _param("cursor", "`next_cursor` of the previous page", _TEXT),
]
_BOOLEANS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int
    offset: int
    format: str | None
    bom: bool
    excel: bool
    cursor: str | None


@dataclass(frozen=True, slots=True)
class PageView:
    """What one request may see of a dataset: its access, schema, parsed query and location."""

    dataset: Dataset
    access: ReadAccess
    schema: dict[str, Any] | None
    parsed: RecordQuery
    location: tuple[str, str] | None


def _integer(raw: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(name, f"expected an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_request(name, f"must be {bound}")
    return value


def check_caps(request: Request) -> None:
    """Refuses (400) a query string over the parameter caps before any of it is parsed."""
    over = param_caps.query_over_cap(request.query_params.multi_items())
    if over is not None:
        raise bad_request(over.parameter, over.problem)


def read_paging(request: Request) -> Paging:
    """Paging and representation parameters, checked with 400s that name the parameter."""
    check_caps(request)
    query = request.query_params
    fmt = query.get("format")
    if fmt is not None and fmt not in MEDIA_TYPES:
        raise bad_request("format", f"expected one of {', '.join(MEDIA_TYPES)}")
    return Paging(
        limit=_integer(query.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_integer(query.get("offset"), "offset", 0, 0, None),
        format=fmt,
        bom=_boolean(query.get("bom"), "bom"),
        excel=_boolean(query.get("excel"), "excel"),
        cursor=query.get("cursor"),
    )


def _boolean(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    if raw.lower() not in _BOOLEANS:
        raise bad_request(name, "expected true or false")
    return _BOOLEANS[raw.lower()]


def answer(
    ctx: PublishContext, request: Request, page: CachedPage, *, checked_since: bool = False
) -> Response:
    """The response to this request from a rendered page: 200, or 304 by its validators."""
    tally = open_tally(request.state, page.dataset_id, page.format)
    headers_in = request.headers
    if_none_match = headers_in.get("if-none-match")
    if (
        not checked_since
        and if_none_match is None
        and not_modified(
            etag="",
            last_modified=page.last_modified,
            if_none_match=None,
            if_modified_since=headers_in.get("if-modified-since"),
        )
    ):
        return PreparedResponse(304, page.early_headers())
    tally.rows = page.rows
    ctx.metrics.records_served_series(page.dataset_id, page.format).inc(page.rows)
    if if_none_match is not None and not_modified(
        etag=page.etag, last_modified=None, if_none_match=if_none_match, if_modified_since=None
    ):
        tally.rows = 0
        return PreparedResponse(304, page.not_modified_headers())
    return PreparedResponse(200, page.ok_headers, page.body)


# How the app answers an HTTP error (its exception handler), for refusals answered before routing.
RefusalHandler = Callable[[Request, HTTPException], Awaitable[Response]]

RECORDS_PATH_PREFIX = f"{render.API_PREFIX}/datasets/"
RECORDS_PATH_SUFFIX = "/records"


class RecordsMiddleware:
    """Answers GET on a dataset's records pages before routing; anything else passes on.

    Placed innermost of the service's middlewares, so metrics, CORS, usage and the caller's rate
    limit apply to these answers exactly as to any other; it only skips FastAPI's routing and
    request handling, which cost more than the rest of a small page. A refusal (400, 403, 404) is
    answered by the app's own handler of HTTP errors (``refusal``), so it keeps its one shape. HEAD
    and every other method go on to the route.
    """

    def __init__(self, app: ASGIApp, *, route: BaseRoute, refusal: RefusalHandler) -> None:
        self.app = app
        self.route = route
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            path: str = scope["path"]
            if path.startswith(RECORDS_PATH_PREFIX) and path.endswith(RECORDS_PATH_SUFFIX):
                dataset_id = path[len(RECORDS_PATH_PREFIX) : -len(RECORDS_PATH_SUFFIX)]
                # The route's {dataset_id} is one non-empty path segment.
                if dataset_id and "/" not in dataset_id:
                    response = await self._answer(scope, dataset_id)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, dataset_id: str) -> Response:
        # What routing would have recorded: the metrics label the request by its route template.
        scope["route"] = self.route
        scope["path_params"] = {"dataset_id": dataset_id}
        request = Request(scope)
        try:
            return await list_records(request)
        except HTTPException as refused:
            return await self.refusal(request, refused)


router = APIRouter(tags=["datasets"], responses=COMMON_RESPONSES)

# The 200 of the records and export routes: JSON described by a model, the other formats by type.
_OTHER_FORMATS: dict[str, Any] = {
    "text/csv": {"schema": {"type": "string"}},
    "application/geo+json": {"schema": {"type": "object", "description": "RFC 7946 FeatureCollection"}},
    "application/x-ndjson": {"schema": {"description": "One record object (JSON) per line"}},
}
_EXPORT_FORMATS: dict[str, Any] = {
    **_OTHER_FORMATS,
    PARQUET_MEDIA_TYPE: {
        "schema": {
            "type": "string",
            "format": "binary",
            "description": "Apache Parquet (zstd): one typed column per schema property, named in Japanese",
        }
    },
}


def _prepare(
    ctx: PublishContext,
    request: Request,
    session: Session,
    dataset_id: str,
    chosen: ExportFormat,
    format_given: bool,
    connection: Connection | None = None,
    *,
    caps_checked: bool = False,
) -> tuple[Dataset, ReadAccess, dict[str, Any] | None, RecordQuery, tuple[str, str] | None]:
    if not caps_checked:
        check_caps(request)
    dataset, access = visible_dataset(session, caller_of(request), dataset_id, connection=connection)
    schema = ctx.schemas.latest(session, dataset.id)
    declared = location_fields(dataset.meta)
    location = access.location(declared)
    if declared is not None and location is None:
        _refuse_position(request, chosen)
    parsed = parse_query(
        request.query_params.multi_items(),
        schema,
        allowed_fields=access.fields,
        has_location=location is not None,
    )
    if isinstance(parsed, ParamProblem):
        raise bad_request(parsed.parameter, parsed.problem)
    if chosen == "geojson" and location is None:
        raise bad_request(
            "format" if format_given else "accept", "GeoJSON needs a dataset that declares a location"
        )
    return dataset, access, schema, parsed, location


def _refuse_position(request: Request, chosen: ExportFormat) -> None:
    """403 for what would reveal a record's position to a caller whose grant leaves out the
    location fields: a map (GeoJSON) or a spatial filter, which would answer "is it in this box"."""
    asked = [name for name in ("bbox", "near", "distance") if name in request.query_params]
    if chosen == "geojson":
        asked.insert(0, "format")
    if asked:
        raise HTTPException(
            status_code=403,
            detail={
                "error": "location_not_granted",
                "parameter": asked[0],
                "detail": "your grant of this dataset does not include its location fields: "
                "no geometry, no bbox or near filter",
            },
        )


@router.get(
    render.API_PREFIX,
    summary="Where the API's parts are (the DCAT catalog's data-service endpoint)",
)
def api_index(request: Request, ctx: ContextDep) -> ApiIndex:
    base_url = ctx.base_url(request)
    return ApiIndex(
        title="CityOS Open Data API",
        version="1",
        links=ApiIndexLinks(
            datasets=f"{base_url}{render.API_PREFIX}/datasets",
            docs=f"{base_url}/docs",
            openapi=f"{base_url}/openapi.json",
            dcat=f"{base_url}/catalog.ttl",
            ckan=f"{base_url}/api/3/action/package_list",
        ),
    )


@router.get(
    "/api/v1/datasets",
    summary="Datasets you may read, with their 5-star rating",
    response_class=Response,
    responses={200: {"model": DatasetList, "content": {"application/json": {}}}},
)
def list_datasets(request: Request, ctx: ContextDep, session: SessionDep) -> Response:
    request.state.response_format = "json"
    visible = visible_datasets(session, caller_of(request))
    departments = {d.id: d for d in session.query(Department)}
    base_url = ctx.base_url(request)
    body = []
    for dataset, access in visible:
        summary = render.dataset_summary(dataset, departments.get(dataset.department_id), base_url, access)
        summary["five_star"] = listed_stars(dataset.meta, record_key=dataset.record_key)
        body.append(summary)
    return Response(orjson.dumps({"count": len(body), "datasets": body}), media_type="application/json")


@router.get(
    "/api/v1/datasets/{dataset_id}",
    summary="Dataset metadata, current schema, 5-star rating and metadata quality",
    response_class=Response,
    responses={
        200: {"model": DatasetDetail, "content": {"application/json": {}}},
        404: {"description": "No dataset with this id that you may read"},
    },
)
def get_dataset(request: Request, dataset_id: str, ctx: ContextDep, session: SessionDep) -> Response:
    request.state.response_format = "json"
    dataset, access = visible_dataset(session, caller_of(request), dataset_id)
    department = session.get(Department, dataset.department_id)
    schema = queries.latest_schema(session, dataset_id=dataset.id)
    base_url = ctx.base_url(request)
    body = render.dataset_detail(dataset, department, schema, base_url, access=access)
    body["links"]["export"] = f"{base_url}{render.dataset_path(dataset.id)}/export?format=csv"
    body["links"]["dcat"] = f"{base_url}/catalog/datasets/{dataset.id}.ttl"
    body["links"]["ckan"] = f"{base_url}/api/3/action/package_show?id={dataset.id}"
    body.update(quality_of(dataset, department, schema))
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/api/v1/datasets/{dataset_id}/records",
    summary="Records: filters, text search, bbox/near, sort, fields, offset or cursor paging",
    response_class=Response,
    responses={
        200: {"model": RecordsPage, "content": {"application/json": {}, **_OTHER_FORMATS}},
        304: {"description": "Not modified since the ETag / Last-Modified you sent"},
        400: {"description": "A parameter is malformed; the body names it"},
        403: {"description": _LOCATION_REFUSED},
        404: {"description": "No dataset with this id that you may read"},
        429: {"description": "Over your rate limit; see Retry-After"},
    },
    openapi_extra={"parameters": RECORDS_PARAMETERS, "x-query-examples": _RECORDS_EXAMPLES},
)
async def list_records(request: Request) -> Response:
    # The busiest route takes no dependencies, not even the context: FastAPI's dependency solving
    # costs a noticeable share of a page. Parameters are read by hand (and documented in
    # RECORDS_PARAMETERS) for the same reason: per-parameter validation cost more than the whole
    # database work of a page.
    ctx = context_of(request)
    dataset_id: str = request.path_params["dataset_id"]
    paging = read_paging(request)
    chosen = filters.negotiate_format(paging.format, request.headers.get("accept"))
    request.state.response_format = chosen
    query_string: bytes = request.scope["query_string"]
    # A public dataset's page rendered less than the cache's interval ago is answered here, on
    # the event loop, with no session: access to a public dataset is FULL for every caller.
    key = page_cache.public_key(ctx.base_url(request), dataset_id, chosen, query_string)
    cached = ctx.pages.get(key)
    if cached is not None:
        return answer(ctx, request, cached)

    async def rendered() -> Response:
        known = ctx.sizes.known(dataset_id)
        if renders_inline(dialect=ctx.engine.dialect.name, known_records=known, limit=paging.limit):
            return _render_page(ctx, request, dataset_id, paging, chosen, query_string)
        return await run_in_threadpool(_render_page, ctx, request, dataset_id, paging, chosen, query_string)

    if not ctx.pages.enabled:
        return await rendered()
    in_flight = ctx.rendering.get(key)
    if in_flight is not None:
        # Another request is rendering this very page: wait for it rather than run the same
        # query again (when a page expires, every client asking at that moment would).
        await in_flight.wait()
        cached = ctx.pages.get(key)
        return answer(ctx, request, cached) if cached is not None else await rendered()
    done = ctx.rendering[key] = asyncio.Event()
    try:
        return await rendered()
    finally:
        del ctx.rendering[key]
        done.set()


def _render_page(
    ctx: PublishContext,
    request: Request,
    dataset_id: str,
    paging: Paging,
    chosen: filters.OutputFormat,
    query_string: bytes,
) -> Response:
    # Taken before the first read: an entry is never served longer than the interval after the
    # catalog state it shows.
    expires = ctx.pages.expiry()
    # The page's statements run on the connection itself; the session, bound to it and so in the
    # same read transaction, serves only what needs the ORM (non-public access rules, a schema not
    # cached): setting up and closing a session's own transaction cost more than a page's query.
    with ctx.engine.connect() as connection, ctx.sessions(bind=connection) as session:
        dataset, access, schema, parsed, location = _prepare(
            ctx,
            request,
            session,
            dataset_id,
            chosen,
            paging.format is not None,
            connection,
            caps_checked=True,
        )
        ctx.sizes.seen(dataset.id, dataset.record_count)
        public = dataset.classification == "public"
        base_url = ctx.base_url(request)
        key = (
            page_cache.public_key(base_url, dataset.id, chosen, query_string)
            if public
            else page_cache.access_key(base_url, dataset.id, access.fields, chosen, query_string)
        )
        if not public and (cached := ctx.pages.get(key)) is not None:
            return answer(ctx, request, cached)
        early = _early_headers(dataset)
        if request.headers.get("if-none-match") is None and not_modified(
            etag="",
            last_modified=dataset.last_record_at,
            if_none_match=None,
            if_modified_since=request.headers.get("if-modified-since"),
        ):
            open_tally(request.state, dataset.id, chosen)
            return Response(status_code=304, headers=early)
        view = PageView(dataset, access, schema, parsed, location)
        page = _page_of(ctx, connection, view, paging, chosen, request, early, expires)
    ctx.pages.put(key, page)
    return answer(ctx, request, page, checked_since=True)


def _early_headers(dataset: Dataset) -> dict[str, str]:
    headers = {"Vary": "Accept, Authorization, X-API-Key", "Cache-Control": "public, max-age=0"}
    if dataset.last_record_at is not None:
        # The newest event time of the dataset: what If-Modified-Since is compared with.
        headers["Last-Modified"] = http_date(dataset.last_record_at)
    return headers


def _page_of(
    ctx: PublishContext,
    connection: Connection,
    view: PageView,
    paging: Paging,
    chosen: filters.OutputFormat,
    request: Request,
    early: dict[str, str],
    expires: float,
) -> CachedPage:
    """Run the query and render the page; what the cache keeps."""
    dataset, access, parsed = view.dataset, view.access, view.parsed
    limit, offset, cursor = paging.limit, paging.offset, paging.cursor
    headers = dict(early)
    if parsed.conditions or parsed.text is not None or parsed.bbox or parsed.near:
        total = queries.count_records(connection, dataset_id=dataset.id, query=parsed)
    else:
        # Unfiltered: the catalog keeps the live count on the dataset row, so no COUNT(*) scan of
        # a million-record dataset on every page.
        total = dataset.record_count
    # One extra row tells whether another page follows without a second count.
    fetched = queries.query_records(
        connection, dataset_id=dataset.id, query=parsed, limit=limit + 1, offset=0 if cursor else offset
    )
    records, more = fetched[:limit], len(fetched) > limit
    path = f"{render.dataset_path(dataset.id)}/records"
    params = request.query_params.multi_items()
    next_cursor = encode_cursor(records[-1].record_key) if more and parsed.keyset and records else None
    if cursor is not None:
        next_url = None
        if next_cursor is not None:
            kept = [(k, v) for k, v in params if k != "cursor"]
            next_url = render.link_with(ctx.base_url(request), path, [*kept, ("cursor", next_cursor)])
    else:
        next_url = render.next_page_url(
            base_url=ctx.base_url(request), path=path, params=params, limit=limit, offset=offset,
            returned=len(records), total=total,
        )  # fmt: skip
    headers["X-Total-Count"] = str(total)
    if next_url is not None:
        headers["Link"] = f'<{next_url}>; rel="next"'
    if next_cursor is not None:
        headers["X-Next-Cursor"] = next_cursor
    shown = _shown_fields(access, parsed)
    # Whole records are copied as stored JSON text (orjson.Fragment), never decoded and re-encoded.
    rows: list[Any] = (
        [orjson.Fragment(r.raw) for r in records]
        if shown is None
        else [project(r.data, shown) for r in records]
    )

    projector = None if shown is None else (lambda data: project(data, shown))
    body: bytes
    if chosen == "csv":
        headers["Content-Disposition"] = render.content_disposition(f"{dataset.id}.csv")
        dicts = [project(r.data, shown) for r in records]
        columns = _columns(view.schema, access, parsed, dicts)
        body = render.render_csv(columns, dicts, bom=paging.bom, excel=paging.excel)
    elif chosen == "geojson":
        assert view.location is not None  # refused in _prepare
        headers["Content-Disposition"] = render.content_disposition(f"{dataset.id}.geojson")
        features = [stream.geojson_feature(r, view.location, projector) for r in records]
        body = orjson.dumps({"type": "FeatureCollection", "features": features})
    elif chosen == "ndjson":
        body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    else:
        page = render.records_page(
            dataset_id=dataset.id, total=total, limit=limit, offset=offset, rows=rows, next_url=next_url
        )
        page["next_cursor"] = next_cursor
        body = orjson.dumps(page)
    # The ETag is a digest of the body itself, computed once per rendering: exact whatever
    # changed (an out-of-order update need not move Last-Modified).
    headers["ETag"] = weak_etag(chosen, body)
    return CachedPage(
        dataset_id=dataset.id, format=chosen, body=body, etag=headers["ETag"],
        last_modified=dataset.last_record_at, rows=len(records), expires=expires,
        ok_headers=Response(body, media_type=MEDIA_TYPES[chosen], headers=headers).raw_headers,
        headers=headers, early=early,
    )  # fmt: skip


@router.get(
    "/api/v1/datasets/{dataset_id}/records/{record_key}",
    summary="One record by its key (its URI)",
    response_class=Response,
    responses={
        200: {"model": Record, "content": {"application/json": {}}},
        404: {"description": "No such record, or no dataset with this id that you may read"},
    },
)
def get_record(request: Request, dataset_id: str, record_key: str, session: SessionDep) -> Response:
    request.state.response_format = "json"
    dataset, access = visible_dataset(session, caller_of(request), dataset_id)
    record = queries.get_record(session, dataset_id=dataset.id, record_key=record_key)
    if record is None:
        raise HTTPException(
            status_code=404, detail={"error": "not_found", "detail": "no record with this key"}
        )
    open_tally(request.state, dataset.id, "json").rows = 1
    return Response(orjson.dumps(access.project(record.data)), media_type="application/json")


@router.get(
    "/api/v1/datasets/{dataset_id}/export",
    summary="The whole dataset (after filters), streamed: CSV, JSON, GeoJSON, NDJSON or Parquet",
    response_class=Response,
    responses={
        200: {"model": RecordArray, "content": {"application/json": {}, **_EXPORT_FORMATS}},
        304: {"description": "Not changed since the ETag / Last-Modified you sent"},
        400: {"description": "A parameter is malformed; the body names it"},
        403: {"description": _LOCATION_REFUSED},
        404: {"description": "No dataset with this id that you may read"},
    },
)
def export(
    request: Request,
    dataset_id: str,
    ctx: ContextDep,
    session: SessionDep,
    format: Annotated[ExportFormat | None, Query(description="Output format")] = None,
    bom: Annotated[bool, Query(description=_BOM_HELP)] = False,
    excel: Annotated[bool, Query(description=_EXCEL_HELP)] = False,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    chosen: ExportFormat = "parquet" if format == "parquet" else filters.negotiate_format(format, accept)
    request.state.response_format = chosen
    dataset, access, schema, parsed, location = _prepare(
        ctx, request, session, dataset_id, chosen, format is not None
    )
    for paging in ("limit", "offset", "cursor"):
        if paging in request.query_params:
            raise bad_request(paging, "an export is the whole dataset; page with /records instead")
    tally = open_tally(request.state, dataset.id, chosen)
    headers, unchanged = _export_validators(request, session, dataset, access, chosen)
    if unchanged:
        return Response(status_code=304, headers=headers)
    shown = _shown_fields(access, parsed)
    columns = _columns(schema, access, parsed, None)

    def count(rows: int) -> None:
        tally.rows += rows

    projector = None if shown is None else (lambda data: project(data, shown))

    def body() -> Iterator[bytes]:
        # Its own session: the request's closes when the handler returns, before streaming ends.
        with ctx.sessions() as own:
            if chosen == "geojson":
                assert location is not None
                located = queries.stream_record_rows(
                    own, dataset_id=dataset.id, query=parsed, batch_size=stream.BATCH_ROWS
                )
                yield from stream.geojson_stream(located, location, project=projector, on_rows=count)
                return
            # The other formats need the documents only: no keys or coordinates to read.
            documents = queries.stream_documents(
                own, dataset_id=dataset.id, query=parsed, batch_size=stream.BATCH_ROWS
            )
            if chosen == "csv":
                yield from stream.csv_stream(documents, columns, bom=bom, excel=excel, on_rows=count)
            elif chosen == "parquet":
                yield from stream.parquet_stream(documents, schema, columns, on_rows=count)
            elif chosen == "ndjson":
                yield from stream.ndjson_stream(documents, project=projector, on_rows=count)
            else:
                yield from stream.json_array_stream(documents, project=projector, on_rows=count)

    headers |= {
        "Content-Disposition": render.content_disposition(f"{dataset.id}.{chosen}"),
        # Written while it is read from a live catalog: no byte offset of one rendering holds in the
        # next, so no ranges (a broken download resumes by cursor paging of /records instead).
        "Accept-Ranges": "none",
    }
    media_type = PARQUET_MEDIA_TYPE if chosen == "parquet" else MEDIA_TYPES[chosen]
    return StreamingResponse(body(), media_type=media_type, headers=headers)


def _export_validators(
    request: Request, session: Session, dataset: Dataset, access: ReadAccess, chosen: str
) -> tuple[dict[str, str], bool]:
    """ETag and Last-Modified of an export, from the dataset's last applied change (exact: a late
    event about an old record moves it too), so a harvester's repeated download can be a 304;
    and whether the request's own validators still match (answer 304)."""
    changed = queries.last_applied(session, dataset_id=dataset.id)
    etag = export_etag(chosen, changed, request.url.query, access.fields)
    headers = {"Vary": "Accept, Authorization, X-API-Key", "Cache-Control": "public, max-age=0", "ETag": etag}
    if changed is not None:
        headers["Last-Modified"] = http_date(changed)
    unchanged = not_modified(
        etag=etag,
        last_modified=changed,
        if_none_match=request.headers.get("if-none-match"),
        if_modified_since=request.headers.get("if-modified-since"),
    )
    return headers, unchanged

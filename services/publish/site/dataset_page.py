"""A dataset's page: ``/datasets/{id}`` in Japanese, ``/en/datasets/{id}`` in English.

Shown only to a caller who may read the dataset, by the records API's own decision
(``visible_dataset``); anyone else gets the same "not found" page whether the dataset is missing,
internal or personal. The live preview is the records API's query: the same parameter checks
(``read_paging``, ``parse_query``), the same statements (``queries``) and the same projection, so
its rows are the API's ``records`` for the same query string. Builders of what the page shows are
pure, in ``dataset_view``.

The parts that do not depend on the query are rendered once and kept (``page_parts``) under a key
read in one statement per view: the schema's version, the dataset's last applied change, its
department, the ward boundaries' version, the usage counters' totals. A new record, schema version,
grant or flush of usage counts shows on the next view.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import BindParameter, Connection, bindparam, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cityos.domain.access import ReadAccess
from cityos.domain.readmodel import queries
from cityos.domain.readmodel.filters import ParamProblem
from cityos.domain.readmodel.query import RecordQuery, encode_cursor, parse_query
from cityos.kernel.db.geo_models import WardBoundaryRow
from cityos.kernel.db.models import Dataset, Department, Record, SchemaVersionRow
from cityos.kernel.db.publish_models import UsageCounter
from cityos.kernel.schemas import location_fields
from cityos.kernel.timeutil import assume_utc
from services.publish import param_caps, render
from services.publish.context import PublishContext, caller_of, context_of, project, visible_dataset
from services.publish.inline import renders_inline
from services.publish.records_api import quality_of, read_paging
from services.publish.site import dataset_view as view
from services.publish.site.dataset_view import Lang, Params
from services.publish.site.map_pages import MapPanel, map_layer
from services.publish.site.page_parts import parts_of
from services.publish.site.templating import environment, static_url
from services.publish.site.templating import render as render_page

router = APIRouter(include_in_schema=False)

TEMPLATE = "dataset.html"
FACTS_TEMPLATE = "dataset_facts.html"
FILTERS_TEMPLATE = "dataset_filters.html"
USAGE_TEMPLATE = "dataset_usage.html"
MAP_TEMPLATE = "map_panel.html"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why the preview could not run: a parameter and what is wrong with it."""

    parameter: str
    detail: str


@dataclass(frozen=True, slots=True)
class Preview:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    total: int
    first: int  # 1-based position of the first row shown
    previous_href: str | None
    next_href: str | None
    first_href: str | None
    limit: int


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    input_id: str
    value: str


@dataclass(frozen=True, slots=True)
class Link:
    key: str
    href: str


@dataclass(frozen=True, slots=True)
class Facts:
    """What the kept parts of a dataset's page depend on besides the dataset row, in one read."""

    schema_version: int | None
    changed: datetime | None  # the last applied change to any of its records
    department: tuple[str, str, str] | None  # id, Japanese and English names
    wards: tuple[int, datetime | None]  # the ward boundaries' count and newest load
    # The usage counters' rows and requests in the window: counters only ever grow, so any
    # flush of this dataset's traffic changes them.
    usage: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Described:
    """The dataset's description as one caller's access sees it: what changes with its metadata,
    schema and grant only."""

    schema: dict[str, Any] | None  # the readable part of the latest schema
    schema_version: int | None
    filter_names: tuple[str, ...]
    publisher: str
    facts_html: Markup  # the quality and schema sections
    empty_filters_html: Markup  # the preview form's inputs, every one empty


def _scalar(column: Any, *where: Any) -> Any:
    return select(column).where(*where).scalar_subquery()


_DATASET_ID: BindParameter[str] = bindparam("dataset_id")
_FACTS_KEY = ("site", "dataset-page-facts")
_IN_WINDOW = (UsageCounter.dataset_id == _DATASET_ID, UsageCounter.hour >= bindparam("usage_since"))
_FACTS = select(
    _scalar(func.max(SchemaVersionRow.version), SchemaVersionRow.dataset_id == _DATASET_ID),
    _scalar(func.max(Record.updated_at), Record.dataset_id == _DATASET_ID),
    _scalar(Department.id, Department.id == bindparam("department_id")),
    _scalar(Department.name_ja, Department.id == bindparam("department_id")),
    _scalar(Department.name_en, Department.id == bindparam("department_id")),
    select(func.count()).select_from(WardBoundaryRow).scalar_subquery(),
    select(func.max(WardBoundaryRow.loaded_at)).scalar_subquery(),
    _scalar(func.count(), *_IN_WINDOW),
    _scalar(func.coalesce(func.sum(UsageCounter.requests), 0), *_IN_WINDOW),
)


def read_facts(connection: Connection, dataset: Dataset, usage_since: datetime) -> Facts:
    parameters = {
        "dataset_id": dataset.id,
        "department_id": dataset.department_id,
        "usage_since": usage_since.astimezone(UTC),
    }
    row = queries.run_statement(connection, _FACTS_KEY, _FACTS, parameters)[0]
    version, changed, department_id, name_ja, name_en, ward_count, wards_loaded, used, requests = row
    return Facts(
        schema_version=version,
        changed=assume_utc(changed) if changed is not None else None,
        department=(department_id, name_ja, name_en) if department_id is not None else None,
        wards=(int(ward_count or 0), wards_loaded),
        usage=(int(used or 0), int(requests or 0)),
    )


def _dataset_state(dataset: Dataset) -> tuple[Any, ...]:
    """Every column of the dataset row a kept part shows (its record count and time excepted)."""
    return (
        dataset.department_id, dataset.title_ja, dataset.title_en, dataset.classification,
        dataset.license, dataset.record_key, dataset.last_record_at is None, orjson.dumps(dataset.meta),
    )  # fmt: skip


def _page_path(lang: Lang, dataset_id: str) -> str:
    path = render.dataset_path(dataset_id).replace(render.API_PREFIX, "", 1)
    return path if lang == "ja" else f"/en{path}"


@router.get("/datasets/{dataset_id}")
async def dataset_page_ja(request: Request, dataset_id: str) -> Response:
    return await _answer(request, dataset_id, "ja")


@router.get("/en/datasets/{dataset_id}")
async def dataset_page_en(request: Request, dataset_id: str) -> Response:
    return await _answer(request, dataset_id, "en")


@dataclass
class _Page:
    """A dataset's page read and laid out, its map part still to be made when ``map_key`` is set."""

    dataset: Dataset
    context: dict[str, Any]
    map_key: tuple[Any, ...] | None


async def _answer(request: Request, dataset_id: str, lang: Lang) -> Response:
    # Where the records API renders the same query: in place for a small dataset on SQLite (a
    # worker thread's hand-off costs about as much as the page), in a worker thread otherwise.
    ctx = context_of(request)
    known = ctx.sizes.known(dataset_id)
    if not renders_inline(dialect=ctx.engine.dialect.name, known_records=known, limit=view.PREVIEW_MAX_LIMIT):
        return await run_in_threadpool(dataset_page, request, dataset_id, lang)
    page = _read_page(request, dataset_id, lang)
    if isinstance(page, Response):
        return page
    if page.map_key is not None:
        # Counting every record per ward may take tens of milliseconds: never on the event loop.
        await run_in_threadpool(_make_map, request, page, lang)
    return _respond(request, page, lang)


def dataset_page(request: Request, dataset_id: str, lang: Lang) -> Response:
    page = _read_page(request, dataset_id, lang)
    if isinstance(page, Response):
        return page
    if page.map_key is not None:
        _make_map(request, page, lang)
    return _respond(request, page, lang)


def _make_map(request: Request, page: _Page, lang: Lang) -> None:
    """The map part of ``page``, made in a read of its own (as the map page makes it) and kept."""
    ctx = context_of(request)
    with ctx.sessions() as session:
        html = _map_html(ctx, session, page.dataset, lang)
    if page.map_key is not None:
        parts_of(request.app).maps.put(page.map_key, html)
    page.context["map_html"] = html


def _respond(request: Request, page: _Page, lang: Lang) -> Response:
    context, dataset = page.context, page.dataset
    status = 400 if context["problem"] is not None else 200
    # The site's headers keep a signed-in caller's page out of shared caches; a non-public dataset's
    # page stays out of them whoever asks.
    headers = {"Cache-Control": "private, no-store"} if dataset.classification != "public" else None
    return render_page(request, TEMPLATE, context, lang=lang, status_code=status, headers=headers)


def _read_page(request: Request, dataset_id: str, lang: Lang) -> _Page | Response:
    ctx = context_of(request)
    # As the records API reads: statements on the connection, the session bound to it (same read
    # transaction) for what needs the ORM.
    with ctx.engine.connect() as connection, ctx.sessions(bind=connection) as session:
        try:
            dataset, access = visible_dataset(session, caller_of(request), dataset_id, connection=connection)
        except HTTPException as refused:
            if refused.status_code != 404:
                raise
            return _not_found(request, lang)
        ctx.sizes.seen(dataset.id, dataset.record_count)
        context, map_key = _page_context(ctx, request, session, connection, dataset, access, lang)
    return _Page(dataset, context, map_key)


def _not_found(request: Request, lang: Lang) -> Response:
    context = {"not_found": True, "w": _words(lang)}
    # The same page for a missing, an internal and a personal dataset: nothing tells them apart.
    return render_page(
        request, TEMPLATE, context, lang=lang, status_code=404, headers={"Cache-Control": "no-store"}
    )


def _words(lang: Lang) -> Callable[..., str]:
    def lookup(key: str, **values: object) -> str:
        return view.word(key, lang, **values)

    return lookup


def _describe(session: Session, dataset: Dataset, access: ReadAccess, lang: Lang) -> Described:
    department = session.get(Department, dataset.department_id)
    schema_row = queries.latest_schema(session, dataset_id=dataset.id)
    # A grantee sees the properties it was granted only: no hidden field's name reaches the page.
    schema = access.schema(schema_row.document) if schema_row is not None else None
    # The same rating and score as ``GET /api/v1/datasets/{id}`` shows, from the same function.
    quality = quality_of(dataset, department, schema_row)
    schema_table, schema_truncated = view.schema_rows(schema, lang)
    html = environment.get_template(FACTS_TEMPLATE).render(
        w=_words(lang),
        tr=lambda ja, en: ja if lang == "ja" else en,
        quality=view.quality_view(quality, lang, license_id=dataset.license, record_key=dataset.record_key),
        schema_version=schema_row.version if schema_row is not None else None,
        schema_rows=schema_table,
        schema_truncated=schema_truncated,
        max_schema_rows=view.MAX_SCHEMA_ROWS,
    )
    return Described(
        schema=schema,
        schema_version=schema_row.version if schema_row is not None else None,
        filter_names=view.filterable_fields(schema),
        publisher=_department_name(department, lang) or dataset.department_id,
        facts_html=Markup(html),
        empty_filters_html=_filters_html(_filters(view.filterable_fields(schema), []), None),
    )


def _filters(names: tuple[str, ...], params: Params) -> tuple[Filter, ...]:
    return tuple(Filter(name, f"filter-{index}", _value_of(params, name)) for index, name in enumerate(names))


def _filters_html(filters: tuple[Filter, ...], problem: Problem | None) -> Markup:
    return Markup(environment.get_template(FILTERS_TEMPLATE).render(filters=filters, problem=problem))


def _map_html(ctx: PublishContext, session: Session, dataset: Dataset, lang: Lang) -> Markup:
    layer = map_layer(ctx, session, dataset, lang)
    panel = MapPanel(lang=lang, layers=[layer], wards_loaded=layer.table is not None)
    template = environment.get_template(MAP_TEMPLATE)
    return Markup(template.render(map_panel=panel, lang=lang, static_url=static_url))


def _usage_html(session: Session, dataset: Dataset, lang: Lang, today: date) -> Markup:
    usage = view.sparkline(
        view.daily_requests(_usage_hours(session, dataset.id, view.window_start(today)), today=today)
    )
    return Markup(
        environment.get_template(USAGE_TEMPLATE).render(
            w=_words(lang),
            usage=usage,
            usage_days=view.USAGE_DAYS,
            day_text=lambda day: view.day_text(day, lang),
        )
    )


def _page_context(
    ctx: PublishContext,
    request: Request,
    session: Session,
    connection: Connection,
    dataset: Dataset,
    access: ReadAccess,
    lang: Lang,
) -> tuple[dict[str, Any], tuple[Any, ...] | None]:
    """The page's values, and the key of its map part when that is still to be made."""
    now = datetime.now(UTC)
    meta = dataset.meta
    parts = parts_of(request.app)
    today = now.astimezone(view.JST).date()
    facts = read_facts(connection, dataset, view.window_start(today))
    state = _dataset_state(dataset)
    described = parts.facts.get_or_make(
        (dataset.id, lang, access.fields, facts.schema_version, facts.department, state),
        lambda: _describe(session, dataset, access, lang),
    )
    schema = described.schema
    location = access.location(location_fields(meta))
    changed = facts.changed

    raw_items = request.query_params.multi_items()
    params = view.preview_params(raw_items)
    page_path = _page_path(lang, dataset.id)
    preview: Preview | None = None
    problem = _over_caps(raw_items)
    if problem is None:
        outcome = _preview(request, connection, dataset, access, schema, location, params, page_path)
        if isinstance(outcome, Problem):
            problem = outcome
        else:
            preview = outcome

    base_url = ctx.base_url(request)
    api_path = render.dataset_path(dataset.id)
    records_endpoint = f"{base_url}{api_path}/records"
    snippet_params = _snippet_params(params, preview)
    needs_key = dataset.classification != "public"
    filters = _filters(described.filter_names, params)
    filters_open = any(f.value for f in filters)
    filters_html = (
        _filters_html(filters, problem)
        if filters_open or (problem is not None and problem.parameter in described.filter_names)
        else described.empty_filters_html
    )
    shown_filter_names = {f.name for f in filters} | {"q", "limit"}
    kept = [(k, v) for k, v in params if k not in shown_filter_names and k not in ("offset", "cursor")]
    usage_html = parts.usage.get_or_make(
        (dataset.id, lang, today, facts.usage), lambda: _usage_html(session, dataset, lang, today)
    )
    map_key = (dataset.id, lang, state, facts.changed, dataset.record_count, facts.wards)
    map_html = parts.maps.get(map_key) if location is not None else None
    quoted = quote(dataset.id, safe="")
    links = [
        Link("link.api", api_path),
        Link("link.ckan", f"/api/3/action/package_show?{view.query_string([('id', dataset.id)])}"),
        Link("link.dcat_ttl", f"/catalog/datasets/{quoted}.ttl"),
        Link("link.dcat_jsonld", f"/catalog/datasets/{quoted}.jsonld"),
    ]
    if location is not None:
        links.append(Link("link.ogc", f"/ogc/collections/{quoted}"))
    title = view.other_language(
        meta.get("title"), lang, dataset.title_ja if lang == "ja" else dataset.title_en
    )
    context = {
        "not_found": False,
        "w": _words(lang),
        "dataset_id": dataset.id,
        "title": title or dataset.id,
        "description": view.other_language(meta.get("description"), lang),
        "internal": dataset.classification == "internal",
        "publisher": described.publisher,
        "license": dataset.license or str(meta.get("license") or ""),
        "frequency": view.frequency_text(meta.get("update_frequency"), lang),
        "changed_iso": render.iso_utc(changed),
        "changed_text": view.local_time_text(changed, lang) if changed is not None else None,
        "changed_age": view.age_text(changed, now, lang) if changed is not None else None,
        "record_count": dataset.record_count,
        "keywords": [str(k) for k in meta.get("keywords") or []],
        "facts_html": described.facts_html,
        "map_html": map_html,
        "page_path": page_path,
        "problem": problem,
        "problem_hint": view.problem_hint(problem.parameter, lang) if problem is not None else "",
        "preview": preview,
        "q": _value_of(params, "q"),
        "limit": _value_of(params, "limit") or str(view.PREVIEW_DEFAULT_LIMIT),
        "max_limit": view.PREVIEW_MAX_LIMIT,
        "filters": filters,
        "filters_open": filters_open,
        "filters_html": filters_html,
        "kept_params": kept,
        "clear_href": page_path,
        "downloads": view.downloads(f"{api_path}/export", params, located=location is not None),
        "curl": view.curl_snippet(records_endpoint, snippet_params, needs_key=needs_key),
        "python": view.python_snippet(records_endpoint, snippet_params, needs_key=needs_key),
        "needs_key": needs_key,
        "links": links,
        "located": location is not None,
        "usage_html": usage_html,
        "preview_rows_html": view.preview_rows_html(preview.rows) if preview is not None else None,
    }
    return context, (map_key if location is not None and map_html is None else None)


def _department_name(department: Department | None, lang: Lang) -> str:
    if department is None:
        return ""
    return (
        (department.name_ja or department.name_en)
        if lang == "ja"
        else (department.name_en or department.name_ja)
    )


def _value_of(params: Params, name: str) -> str:
    return next((v for k, v in params if k == name), "")


def _over_caps(items: list[tuple[str, str]]) -> Problem | None:
    # Checked on the query string as sent, before anything is dropped from it.
    over = param_caps.query_over_cap(items)
    return Problem(over.parameter, over.problem) if over is not None else None


def _snippet_params(params: Params, preview: Preview | None) -> list[tuple[str, str]]:
    """The records API query of the page shown: the page's parameters with its page size made
    explicit (the preview's default differs from the API's)."""
    limit = str(preview.limit) if preview is not None else _value_of(params, "limit")
    return view.replaced(params, limit=limit or str(view.PREVIEW_DEFAULT_LIMIT))


def _preview(
    request: Request,
    connection: Connection,
    dataset: Dataset,
    access: ReadAccess,
    schema: dict[str, Any] | None,
    location: tuple[str, str] | None,
    params: Params,
    page_path: str,
) -> Preview | Problem:
    """One page of records, exactly as the records API would answer the same query string."""
    # The records API's reading of paging, on the page's own parameters.
    cleaned = Request({**request.scope, "query_string": view.query_string(params).encode()})
    try:
        paging = read_paging(cleaned)
    except HTTPException as refused:
        detail: dict[str, Any] = refused.detail if isinstance(refused.detail, dict) else {}
        return Problem(str(detail.get("parameter", "request")), str(detail.get("detail", "invalid")))
    given_limit = any(k == "limit" for k, _ in params)
    limit = paging.limit if given_limit else view.PREVIEW_DEFAULT_LIMIT
    if limit > view.PREVIEW_MAX_LIMIT:
        return Problem("limit", f"the preview shows at most {view.PREVIEW_MAX_LIMIT} records a page")
    parsed = parse_query(params, schema, allowed_fields=access.fields, has_location=location is not None)
    if isinstance(parsed, ParamProblem):
        return Problem(parsed.parameter, parsed.problem)
    if parsed.conditions or parsed.text is not None or parsed.bbox or parsed.near:
        total = queries.count_records(connection, dataset_id=dataset.id, query=parsed)
    else:
        total = dataset.record_count
    cursor, offset = paging.cursor, paging.offset
    fetched = queries.query_records(
        connection, dataset_id=dataset.id, query=parsed, limit=limit + 1, offset=0 if cursor else offset
    )
    records, more = fetched[:limit], len(fetched) > limit
    shown = parsed.fields if parsed.fields is not None else access.fields
    documents = tuple(project(r.data, shown) for r in records)
    columns = _columns(schema, access, parsed, documents)
    previous_href = next_href = first_href = None
    if cursor is not None:
        first_href = view.with_query(page_path, view.replaced(params, cursor=None, offset=None))
        if more and parsed.keyset and records:
            next_href = view.with_query(
                page_path, view.replaced(params, cursor=encode_cursor(records[-1].record_key))
            )
    else:
        if offset > 0:
            back = max(offset - limit, 0)
            previous_href = view.with_query(
                page_path, view.replaced(params, offset=str(back) if back else None)
            )
        if records and offset + len(records) < total:
            next_href = view.with_query(page_path, view.replaced(params, offset=str(offset + len(records))))
    return Preview(
        columns=tuple(columns),
        rows=view.preview_cells(documents, columns),
        total=total,
        first=(0 if cursor else offset) + 1,
        previous_href=previous_href,
        next_href=next_href,
        first_href=first_href,
        limit=limit,
    )


def _columns(
    schema: dict[str, Any] | None, access: ReadAccess, parsed: RecordQuery, rows: tuple[dict[str, Any], ...]
) -> list[str]:
    # The records API's CSV columns: schema order, then any field an older version carried.
    if parsed.fields is not None:
        return list(parsed.fields)
    columns = render.csv_columns(schema, rows)
    return [c for c in columns if access.fields is None or c in access.fields]


def _usage_hours(session: Session, dataset_id: str, since: datetime) -> list[tuple[datetime, int]]:
    """Requests per counter hour since ``since`` (every caller class and format together)."""
    statement = (
        select(UsageCounter.hour, func.sum(UsageCounter.requests))
        .where(UsageCounter.dataset_id == dataset_id, UsageCounter.hour >= since.astimezone(UTC))
        .group_by(UsageCounter.hour)
    )
    return [(assume_utc(hour), int(total or 0)) for hour, total in session.execute(statement)]

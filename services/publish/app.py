"""Composition root of the publish service: the open-data HTTP API.

``create_app`` wires settings, the database engine and a metrics registry into a FastAPI app;
tests pass their own. Handlers stay thin: visibility check, one query, then a pure renderer from
``render``/``filters``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads handler annotations at runtime, and
# the handlers refer to ``SessionDep``, a local of ``create_app`` that string annotations cannot reach.

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from cityos.db.engine import make_engine, session_factory
from cityos.db.models import Dataset, Department
from cityos.settings import Settings, get_settings
from services.catalog import queries
from services.publish import filters, render
from services.publish.metrics import MetricsMiddleware, PublishMetrics

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

TITLE = "CityOS Open Data API"
DESCRIPTION = """\
Open data of the city, published by its departments (CC BY 4.0 unless a dataset says otherwise).

* `GET /api/v1/datasets` lists the public datasets; `GET /api/v1/datasets/{id}` adds the current
  JSON Schema.
* `GET /api/v1/datasets/{id}/records` pages through records (`limit`, `offset`) and filters by
  equality on any declared property: pass the property name, Japanese names URL-encoded, e.g.
  `?%E5%90%8D%E7%A7%B0=...` for `名称`. Values are converted to the property's JSON type; an unknown
  property or an unconvertible value is a 400 that names the parameter.
* Formats: `format=json` (default), `format=csv` (UTF-8; `bom=true` for Excel) or `format=geojson`
  (datasets with a location). Without `format`, the `Accept` header is honoured
  (`text/csv`, `application/geo+json`).
"""

_MEDIA_TYPES: dict[filters.OutputFormat, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8; header=present",
    "geojson": "application/geo+json",
}
_FILE_SUFFIXES: dict[filters.OutputFormat, str] = {"json": "json", "csv": "csv", "geojson": "geojson"}

# One body for every invisible dataset: a missing, internal and personal id must be
# indistinguishable, or the 404 itself would leak which internal datasets exist.
_NOT_FOUND = {"error": "not_found", "detail": "no public dataset with this id"}


def _error_body(parameter: str, problem: str) -> dict[str, str]:
    return {"error": "invalid_parameter", "parameter": parameter, "detail": problem}


def _bad_request(parameter: str, problem: str) -> HTTPException:
    return HTTPException(status_code=400, detail=_error_body(parameter, problem))


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """Build the publish app. Defaults come from the environment; tests inject their own."""
    settings = settings or get_settings()
    owns_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    if registry is None:
        registry = CollectorRegistry()
        # Only a registry we created gets the process collectors: an injected one may have them.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    metrics = PublishMetrics(registry)
    make_session = session_factory(engine)
    base_url = settings.public_base_url

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # Close pooled connections only of an engine we made; an injected one belongs to the caller.
        if owns_engine:
            engine.dispose()

    app = FastAPI(title=TITLE, description=DESCRIPTION, version="1", lifespan=lifespan)

    def get_session() -> Iterator[Session]:
        # Read-only use: the session never commits, closing it rolls back the read transaction.
        with make_session() as session:
            yield session

    SessionDep = Annotated[Session, Depends(get_session)]

    def public_dataset(session: Session, dataset_id: str) -> Dataset:
        dataset = queries.get_dataset(session, dataset_id=dataset_id)
        if dataset is None or dataset.classification != "public":
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return dataset

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Our errors carry a dict body; FastAPI would wrap it as {"detail": {...}}, so flatten it.
        body = exc.detail if isinstance(exc.detail, dict) else {"error": "http", "detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI answers 422 with pydantic's shape; every query problem here is a 400 in one shape.
        first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
        location = first.get("loc", ())
        parameter = str(location[-1]) if location else "request"
        return JSONResponse(_error_body(parameter, str(first.get("msg", "invalid"))), status_code=400)

    @app.get("/healthz", tags=["operations"], summary="Process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Database is reachable",
        responses={503: {"description": "The database cannot be queried"}},
    )
    def readyz() -> JSONResponse:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            # The exception class is enough for an operator and reveals no connection string.
            return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus text exposition (OpenMetrics when the Accept header asks for it)",
                "content": {"text/plain": {}, "application/openmetrics-text": {}},
            }
        },
    )
    def prometheus_metrics(accept: Annotated[str | None, Header()] = None) -> Response:
        body, content_type = metrics.exposition(accept)
        return Response(body, media_type=content_type)

    @app.get("/api/v1/datasets", tags=["datasets"], summary="Public datasets")
    def list_datasets(request: Request, session: SessionDep) -> Response:
        request.state.response_format = "json"
        datasets = queries.list_datasets(session, classification="public")
        body = [
            render.dataset_summary(d, session.get(Department, d.department_id), base_url) for d in datasets
        ]
        return _json({"count": len(body), "datasets": body})

    @app.get(
        "/api/v1/datasets/{dataset_id}",
        tags=["datasets"],
        summary="Dataset metadata and current schema",
        responses={404: {"description": "No public dataset with this id"}},
    )
    def get_dataset(request: Request, dataset_id: str, session: SessionDep) -> Response:
        request.state.response_format = "json"
        dataset = public_dataset(session, dataset_id)
        department = session.get(Department, dataset.department_id)
        schema = queries.latest_schema(session, dataset_id=dataset.id)
        return _json(render.dataset_detail(dataset, department, schema, base_url))

    @app.get(
        "/api/v1/datasets/{dataset_id}/records",
        tags=["datasets"],
        summary="Records of a dataset, filtered and paged, as JSON, CSV or GeoJSON",
        responses={
            200: {
                "content": {
                    "application/json": {},
                    "text/csv": {},
                    "application/geo+json": {},
                }
            },
            400: {"description": "Unknown parameter, value of the wrong type, or no location"},
            404: {"description": "No public dataset with this id"},
        },
    )
    def list_records(
        request: Request,
        dataset_id: str,
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, description="Records to skip")] = 0,
        format: Annotated[
            Literal["json", "csv", "geojson"] | None,
            Query(description="Output format; overrides the Accept header"),
        ] = None,
        bom: Annotated[bool, Query(description="CSV only: start with a UTF-8 BOM (Excel)")] = False,
        accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        chosen = filters.negotiate_format(format, accept)
        request.state.response_format = chosen
        dataset = public_dataset(session, dataset_id)
        schema_row = queries.latest_schema(session, dataset_id=dataset.id)
        schema = schema_row.document if schema_row is not None else None
        params = request.query_params.multi_items()
        parsed = filters.parse_filters(params, schema)
        if isinstance(parsed, filters.ParamProblem):
            raise _bad_request(parsed.parameter, parsed.problem)
        location = render.location_fields(dataset.meta)
        if chosen == "geojson" and location is None:
            raise _bad_request(
                "format" if format else "accept", "GeoJSON needs a dataset that declares a location"
            )

        records, total = queries.list_records(
            session, dataset_id=dataset.id, filters=parsed, limit=limit, offset=offset
        )
        metrics.records_served.labels(dataset.id, chosen).inc(len(records))
        next_url = render.next_page_url(
            base_url=base_url,
            path=f"{render.dataset_path(dataset.id)}/records",
            params=params,
            limit=limit,
            offset=offset,
            returned=len(records),
            total=total,
        )
        headers = {"X-Total-Count": str(total), "Vary": "Accept"}
        if next_url is not None:
            headers["Link"] = f'<{next_url}>; rel="next"'
        rows = [record.data for record in records]

        if chosen == "csv":
            headers["Content-Disposition"] = render.content_disposition(f"{dataset.id}.csv")
            columns = render.csv_columns(schema, rows)
            body = render.render_csv(columns, rows, bom=bom)
        elif chosen == "geojson":
            assert location is not None  # refused above
            headers["Content-Disposition"] = render.content_disposition(
                f"{dataset.id}.{_FILE_SUFFIXES[chosen]}"
            )
            body = orjson.dumps(render.render_geojson(records, location))
        else:
            page = render.records_page(
                dataset_id=dataset.id,
                total=total,
                limit=limit,
                offset=offset,
                rows=rows,
                next_url=next_url,
            )
            body = orjson.dumps(page)
        return Response(body, media_type=_MEDIA_TYPES[chosen], headers=headers)

    # Added last, so it wraps CORS too and counts preflight requests.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET"],
        allow_credentials=False,
        # Browsers hide non-simple headers from scripts unless listed: pagination lives in them.
        expose_headers=["Link", "X-Total-Count", "Content-Disposition"],
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return app


def _json(body: Any) -> Response:
    # orjson: faster than the stdlib on record pages, and writes Japanese as UTF-8, not \\u escapes.
    return Response(orjson.dumps(body), media_type="application/json")

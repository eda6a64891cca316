"""Composition root of the publish service: the open-data HTTP API.

``create_app`` wires settings, the database engine and a metrics registry into a FastAPI app;
tests pass their own. Handlers stay thin: visibility check, one query, then a pure renderer from
``render``/``filters``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads handler annotations at runtime.

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from cityos.domain.metric_labels import PublicDatasetLabels
from cityos.kernel.api_docs import DocsText, install_api_docs
from cityos.kernel.db.engine import make_engine, session_factory
from cityos.kernel.http_limits import BodyLimitMiddleware
from cityos.kernel.settings import Settings, get_settings
from cityos.kernel.web_assets import mount_vendor_assets
from services.publish import (
    aggregate_api,
    ckan_api,
    dcat_api,
    kpi_api,
    ogc_api,
    operations_api,
    records_api,
    release_api,
    usage_api,
    workspace_api,
)
from services.publish.callers import CallerMiddleware, LimitSettings
from services.publish.context import PublishContext, error_body, install
from services.publish.kpi_metrics import register_kpi_gauges
from services.publish.limits import RateLimiter
from services.publish.metrics import MetricsMiddleware, PublishMetrics
from services.publish.page_cache import PageCache
from services.publish.public_base import PublicBase
from services.publish.records_api import RecordsMiddleware
from services.publish.site import dataset_page, kpi_pages, map_pages, pages
from services.publish.usage import Flusher, UsageBuffer, UsageMiddleware

SITE_STATIC = Path(__file__).parent / "site" / "static"
TITLE = "CityOS Open Data API"
DESCRIPTION = """\
Open data of the city, published by its departments (CC BY 4.0 unless a dataset says otherwise).

* `GET /api/v1/datasets` lists the datasets you may read; `GET /api/v1/datasets/{id}` adds the
  current JSON Schema, the 5-star rating and the metadata-quality score.
* `GET /api/v1/datasets/{id}/records`: filters on declared properties (`名称=...` equality,
  `名称[in]=a,b`, `数[gte]=3` ranges on numbers and dates), `q` text search, `bbox=minLon,minLat,maxLon,maxLat`,
  `near=lon,lat&distance=500`, `sort=-field`, `fields=a,b`, paging by `limit`+`offset` or by `cursor`
  (`next_cursor` of the previous page; stable while records change). Japanese names URL-encoded.
  A malformed parameter is a 400 naming it.
* `GET /api/v1/datasets/{id}/export`: the whole (filtered) dataset, streamed.
* Formats: `format=json|csv|geojson|ndjson` (CSV: UTF-8, `bom=true` for Excel), or the `Accept` header.
  CSV for Excel (`bom=true`, or `excel=true`) neutralises formula cells: text starting with `=`, `+`,
  `-`, `@`, tab or CR gets a leading `'` (OWASP CSV injection); exact numbers such as `-3.5` are kept.
  A plain CSV carries every value exactly as published.
* `ETag`/`Last-Modified` with `If-None-Match`/`If-Modified-Since`; CORS for any origin.
* CKAN action API under `/api/3/action/`; DCAT-AP 3 under `/catalog.ttl`, `/catalog.jsonld`.
* Keys: send `Authorization: Bearer cos_...` (or `X-API-Key`) for a higher rate limit than anonymous
  use; over the limit the answer is 429 with `Retry-After` and `RateLimit-*` headers.
"""

DOCS_TEXT = DocsText(
    title={"ja": "オープンデータ API ドキュメント", "en": "Open Data API documentation"},
    intro={
        "ja": "市のオープンデータを取得する API です。各操作を開くと、パラメータと応答の形を確認し、その場で試せます。",
        "en": "The API that serves the city's open data. Open an operation to see its parameters and "
        "answers, and try it out here.",
    },
)


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
    metrics.label_datasets_with(PublicDatasetLabels(make_session))  # /metrics names public data only
    register_kpi_gauges(registry, make_session, settings)

    usage_buffer = UsageBuffer()
    writer_sessions = session_factory(engine, sqlite_begin="IMMEDIATE")
    ctx = PublishContext(
        settings=settings,
        sessions=make_session,
        metrics=metrics,
        usage=usage_buffer,
        writer_sessions=writer_sessions,
        pages=PageCache(settings.publish_page_cache_ttl_s),
        engine=engine,
        public_base=PublicBase.from_settings(settings),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        flusher = Flusher(usage_buffer, writer_sessions, settings.publish_usage_flush_interval_s)
        flusher.start()
        try:
            yield
        finally:
            flusher.stop()
        # Close pooled connections only of an engine we made; an injected one belongs to the caller.
        if owns_engine:
            engine.dispose()

    # FastAPI's own /docs and /redoc load from a public CDN: ours serve the vendored Swagger UI.
    app = FastAPI(
        title=TITLE, description=DESCRIPTION, version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install(app, ctx)

    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    for api_router in (
        operations_api.router,
        records_api.router,
        ckan_api.router,
        dcat_api.router,
        usage_api.router,
        kpi_api.router,  # the DX plan's KPIs
        release_api.router,  # 個人情報ファイル簿, partner download
        aggregate_api.router,
        ogc_api.router,
        workspace_api.router,  # a department's analysis workspace (DuckDB)
    ):
        app.include_router(api_router)
    workspace_api.install(app)
    # The catalog site's pages, in Japanese and English.
    for site_router in (pages.router, dataset_page.router, map_pages.router, kpi_pages.router):
        app.include_router(site_router)
    app.mount("/static/site", StaticFiles(directory=SITE_STATIC), name="site-static")
    mount_vendor_assets(app, settings.web_assets_dir, ("leaflet", "swagger-ui"))
    install_api_docs(
        app, DOCS_TEXT, openapi_url="/openapi.json", paths={"ja": "/docs", "en": "/en/docs"},
        home_urls={"ja": "/", "en": "/en/"},
    )  # fmt: skip

    # Middleware order, outermost first: metrics (counts everything, 401/429 included), CORS (so
    # browsers can read refusals too), usage (bytes actually sent), callers (key and rate limit),
    # and innermost the records pages (answered after all of those, before routing).
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.http_max_body_bytes)  # 413, unparsed
    app.add_middleware(
        RecordsMiddleware, route=_route(app, "/api/v1/datasets/{dataset_id}/records"), refusal=_http_error
    )
    app.add_middleware(
        CallerMiddleware,
        sessions=make_session,
        limiter=RateLimiter(),
        limits=LimitSettings(
            anonymous_per_minute=settings.publish_anonymous_rate_per_minute,
            registered_per_minute=settings.publish_key_rate_per_minute,
        ),
        metrics=metrics,
    )
    app.add_middleware(UsageMiddleware, buffer=usage_buffer, metrics=metrics)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "X-API-Key", "Content-Type", "If-None-Match", "If-Modified-Since"],
        allow_credentials=False,
        # Browsers hide non-simple headers from scripts unless listed: pagination and limits live in them.
        expose_headers=[
            "Link", "X-Total-Count", "X-Next-Cursor", "Content-Disposition", "ETag", "Last-Modified",
            "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy",
        ],
    )  # fmt: skip
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    app.state.usage_buffer = usage_buffer
    app.state.page_cache = ctx.pages
    return app


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # Our errors carry a dict body; FastAPI would wrap it as {"detail": {...}}, so flatten it.
    body = exc.detail if isinstance(exc.detail, dict) else {"error": "http", "detail": exc.detail}
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names only the first route's methods; several routes may share the path.
        headers = {**(exc.headers or {}), "Allow": ", ".join(_allowed_methods(request.app, request.scope))}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI answers 422 with pydantic's shape; every query problem here is a 400 in one shape.
    first: dict[str, Any] = exc.errors()[0] if exc.errors() else {}
    location = first.get("loc", ())
    parameter = str(location[-1]) if location else "request"
    return JSONResponse(error_body(parameter, str(first.get("msg", "invalid"))), status_code=400)


def _route(app: FastAPI, path: str) -> BaseRoute:
    return next(route for route in app.router.routes if getattr(route, "path", None) == path)


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)

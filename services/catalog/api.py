"""Catalog admin API (port 8001): health, metrics, every dataset with counts, schema documents.

``create_catalog_app`` only wires: it puts what each router's handlers need (sessions, settings,
metrics) on ``app.state``, includes the module-level routers, and puts ``CatalogGate`` in front of
all of them: every route but the probes and ``/metrics`` needs a credential (see ``admin_auth`` and
``route_policy``)."""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field, RootModel
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.access import CallerKind
from cityos.domain.apikeys import Credential
from cityos.domain.wire import Instant
from cityos.kernel.api_docs import DocsLang, DocsText, install_api_docs
from cityos.kernel.db.models import Dataset, SchemaVersionRow
from cityos.kernel.http_limits import BodyLimitMiddleware
from cityos.kernel.ratelimit import RateLimiter
from cityos.kernel.schemas import schema_uri
from cityos.kernel.settings import Settings, get_settings
from cityos.kernel.web_assets import mount_vendor_assets
from services.catalog import access_api, keys_api, registry_api, release_api
from services.catalog.admin_auth import CatalogGate, admin_actor, credential_of
from services.catalog.context import RouterContext, app_context
from services.catalog.error_responses import refusals

STATE = "catalog"  # the attribute of ``app.state`` holding this module's RouterContext
DOCS_TEXT = DocsText(
    title={"ja": "カタログ管理 API ドキュメント", "en": "Catalog admin API documentation"},
    intro={
        "ja": "運用者と部局のためのカタログ API です。操作には認証情報（Bearer）が必要です。",
        "en": "The catalog API for operators and departments. Every operation needs a credential (Bearer).",
    },
)


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description='"ready", or "unavailable" (with status 503)')
    detail: str | None = Field(default=None, description="why the catalog database is unavailable")


class LocalizedTitle(BaseModel):
    ja: str
    en: str


class DatasetOverview(BaseModel):
    id: str
    title: LocalizedTitle
    department: str
    classification: str = Field(description="public, internal or personal")
    record_count: int
    last_record_at: Instant | None


class SchemaDocument(RootModel[dict[str, Any]]):
    """A registered JSON Schema (2020-12) document, as registered."""


router = APIRouter()


def _context(request: Request) -> RouterContext:
    return app_context(request, STATE, RouterContext)


ContextDep = Annotated[RouterContext, Depends(_context)]


def _session(context: ContextDep) -> Iterator[Session]:
    yield from context.session()


SessionDep = Annotated[Session, Depends(_session)]


def _credential(request: Request, context: ContextDep, session: SessionDep) -> Credential:
    return credential_of(request, session, context.settings)


CredentialDep = Annotated[Credential, Depends(_credential)]


@router.get("/healthz")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model_exclude_none=True,
    responses={503: {"model": Readiness, "description": "the catalog database is unavailable"}},
)
def readyz(response: Response, context: ContextDep) -> Readiness:
    try:
        with context.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:  # any DB failure means not ready
        response.status_code = 503
        return Readiness(status="unavailable", detail=type(exc).__name__)
    return Readiness(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus exposition", "content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/admin/datasets")
def datasets(session: SessionDep, credential: CredentialDep) -> list[DatasetOverview]:
    admin_actor(credential)
    rows = session.scalars(select(Dataset).order_by(Dataset.id)).all()
    return [
        DatasetOverview(
            id=row.id,
            title=LocalizedTitle(ja=row.title_ja, en=row.title_en),
            department=row.department_id,
            classification=row.classification,
            record_count=row.record_count,
            last_record_at=row.last_record_at,
        )
        for row in rows
    ]


@router.get("/schemas/{dataset_id}/{version}", responses=refusals(404))
def schema(dataset_id: str, version: int, session: SessionDep, credential: CredentialDep) -> SchemaDocument:
    row = session.scalar(
        select(SchemaVersionRow).where(SchemaVersionRow.uri == schema_uri(dataset_id, version))
    )
    if row is None or not _may_read_schema(session, credential, dataset_id):
        # The same 404 as a missing version: a schema's existence does not leak either.
        raise HTTPException(404, f"no schema version {version} for dataset {dataset_id}")
    return SchemaDocument(row.document)


def _may_read_schema(session: Session, credential: Credential, dataset_id: str) -> bool:
    """Administrators read every schema; a department those of public datasets and of its own (a
    personal dataset's schema names its anonymisation rules)."""
    caller = credential.caller
    if caller.kind is CallerKind.admin:
        return True
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or caller.kind is not CallerKind.department:
        return False
    return dataset.classification == "public" or dataset.department_id == caller.principal


def create_catalog_app(
    sessions: sessionmaker[Session],
    registry: CollectorRegistry,
    settings: Settings | None = None,
    *,
    ensure_topic: Callable[[str], None] | None = None,
) -> FastAPI:
    """The admin app; its metrics go to ``registry``. ``ensure_topic`` creates a new subscription's
    feed topic (None: the republisher creates it when it activates the subscription)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="CityOS catalog admin API",
        description="Operators' view of the catalog: every dataset of every classification, schemas.",
        version="0.1.0",
        # FastAPI's own /docs and /redoc load from a public CDN: ours serve the vendored Swagger UI.
        docs_url=None,
        redoc_url=None,
    )
    state = app.state
    state.metrics_registry = registry
    setattr(state, STATE, RouterContext(sessions, settings))
    setattr(
        state,
        access_api.STATE,
        access_api.AccessContext.create(sessions, registry, settings, ensure_topic=ensure_topic),
    )
    setattr(state, registry_api.STATE, registry_api.RegistryContext.create(sessions, registry, settings))
    setattr(state, release_api.STATE, release_api.ReleaseContext.create(sessions, registry, settings))
    setattr(state, keys_api.STATE, RouterContext(sessions, settings))

    app.include_router(access_api.router)  # departments, grants, feeds, audit
    app.include_router(registry_api.router)  # schema registry, dead-letter repair
    app.include_router(release_api.router)  # proposals, releases
    app.include_router(keys_api.router)  # API keys: issue, list, revoke
    app.include_router(router)  # health, metrics, datasets, schema documents
    mount_vendor_assets(app, settings.web_assets_dir, ("swagger-ui",))
    # The docs link back to the open-data portal where its public address is configured.
    base = settings.public_base_url
    portal: dict[DocsLang, str] | None = {"ja": base, "en": base} if base else None
    install_api_docs(app, DOCS_TEXT, openapi_url="/openapi.json", paths={"ja": "/docs"}, home_urls=portal)
    # In front of every route, the API documentation and its assets included.
    app.add_middleware(
        CatalogGate, sessions=sessions, settings=settings, routes=app.router.routes, limiter=RateLimiter()
    )
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.http_max_body_bytes)  # 413, unparsed
    return app

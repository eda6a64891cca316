"""What every publish router shares: settings, sessions, metrics, and the one visibility check.

The routers are module-level; ``create_app`` installs one ``PublishContext`` on the app and each
handler receives it (or a read session from it) through ``ContextDep``/``SessionDep``, so two apps
in one process (tests, the bench) never share state.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.access import ANONYMOUS, Caller, ReadAccess, read_access
from cityos.domain.readmodel import queries
from cityos.kernel.db.models import Dataset, Department
from cityos.kernel.settings import Settings
from services.publish.callers import CALLER_STATE_KEY
from services.publish.inline import DatasetSizes
from services.publish.metrics import PublishMetrics
from services.publish.page_cache import PageCache, PageKey
from services.publish.public_base import PublicBase
from services.publish.usage import UsageBuffer

# One body for every invisible dataset: a missing, internal and personal id must be
# indistinguishable, or the 404 itself would leak which internal datasets exist.
NOT_FOUND = {"error": "not_found", "detail": "no public dataset with this id"}


class SchemaCache:
    """Latest schema document per dataset, kept for a few seconds.

    Registered versions never change, and a newly registered one only needs to show up soon: the
    records hot path then skips one query and the decoding of a large JSON document per request.
    """

    def __init__(self, ttl_s: float = 2.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def latest(self, session: Session, dataset_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(dataset_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        row = queries.latest_schema(session, dataset_id=dataset_id)
        document = row.document if row is not None else None
        with self._lock:
            self._entries[dataset_id] = (now + self.ttl_s, document)
        return document


# Where the decided base URL is kept in the ASGI scope for the rest of the request.
_BASE_URL_KEY = "cityos.public_base_url"


@dataclass(frozen=True)
class PublishContext:
    settings: Settings
    sessions: sessionmaker[Session]
    metrics: PublishMetrics
    usage: UsageBuffer
    # Sessions for the few writes (usage counters): IMMEDIATE on SQLite, so they wait for the lock.
    writer_sessions: sessionmaker[Session]
    # The catalog's engine, for the readiness probe's own connection.
    engine: Engine
    # Where each answer's links point (the configured public URL, or where the request came in).
    public_base: PublicBase
    schemas: SchemaCache = field(default_factory=SchemaCache)
    pages: PageCache = field(default_factory=lambda: PageCache(0.0))
    # Record counts seen by this process: whether a records page may be rendered on the event loop.
    sizes: DatasetSizes = field(default_factory=DatasetSizes)
    # Public pages being rendered right now, by cache key (event loop only, so no lock): a request
    # for a page in flight waits for it rather than running the same query again.
    rendering: dict[PageKey, asyncio.Event] = field(default_factory=dict)

    def base_url(self, request: Request) -> str:
        """The base URL of the links in the answer to ``request`` (no trailing slash), decided once
        per request: the records page asks for it for its cache key and again for each link."""
        scope = request.scope
        known = scope.get(_BASE_URL_KEY)
        if known is None:
            known = scope[_BASE_URL_KEY] = self.public_base.for_scope(scope)
        return str(known)

    def session(self) -> Iterator[Session]:
        # Read-only use: the session never commits, closing it rolls back the read transaction.
        with self.sessions() as session:
            yield session


def install(app: FastAPI, ctx: PublishContext) -> None:
    """Make ``ctx`` the context every router's handlers receive through ``ContextDep``."""
    app.state.publish_context = ctx


def context_of(request: Request) -> PublishContext:
    """The context ``install`` put on the request's app."""
    ctx = request.app.state.publish_context
    assert isinstance(ctx, PublishContext), "the app was built without services.publish.context.install"
    return ctx


async def publish_context(request: Request) -> PublishContext:
    # A coroutine: FastAPI would run a plain function in the thread pool, a costly hop for a lookup.
    return context_of(request)


ContextDep = Annotated[PublishContext, Depends(publish_context)]


def read_session(ctx: ContextDep) -> Iterator[Session]:
    """The request's read-only session (closed, so rolled back, once the answer is sent)."""
    yield from ctx.session()


SessionDep = Annotated[Session, Depends(read_session)]


# Answers every data route may give besides its own (documented once, on each router).
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "A parameter is malformed; the body names it"},
    401: {"description": "The API key presented is malformed, unknown, revoked or expired"},
    429: {"description": "Over the caller's rate limit; see Retry-After and RateLimit-* headers"},
}


def error_body(parameter: str, problem: str) -> dict[str, str]:
    return {"error": "invalid_parameter", "parameter": parameter, "detail": problem}


def bad_request(parameter: str, problem: str) -> HTTPException:
    return HTTPException(status_code=400, detail=error_body(parameter, problem))


def caller_of(request: Request) -> Caller:
    caller = getattr(request.state, CALLER_STATE_KEY, None)
    return caller if isinstance(caller, Caller) else ANONYMOUS


_DATASETS = Dataset.__table__
_DATASET_BY_ID = select(*_DATASETS.c).where(_DATASETS.c.id == bindparam("dataset_id"))
_DATASET_BY_ID_KEY = ("publish", "dataset-by-id")
_DATASET_COLUMNS = tuple(column.key for column in _DATASETS.c)


def fetch_dataset(bind: Session | Connection, dataset_id: str) -> Dataset | None:
    """One dataset, read fresh in the request's transaction as a detached ``Dataset``.

    A statement built once and no identity map: the ORM's loading cost several times the query on
    the records path. Publish never changes a dataset, so a detached copy is all it needs.
    """
    connection = bind if isinstance(bind, Connection) else bind.connection()
    rows = queries.run_statement(connection, _DATASET_BY_ID_KEY, _DATASET_BY_ID, {"dataset_id": dataset_id})
    return Dataset(**dict(zip(_DATASET_COLUMNS, rows[0], strict=True))) if rows else None


def visible_dataset(
    session: Session, caller: Caller, dataset_id: str, *, connection: Connection | None = None
) -> tuple[Dataset, ReadAccess]:
    """The dataset and the caller's access to it, or the uniform 404 (``read_access`` decides).

    ``connection``: the one ``session`` is bound to, when the caller holds it (read on it directly).
    """
    dataset = fetch_dataset(session if connection is None else connection, dataset_id)
    access = read_access(session, caller, dataset) if dataset is not None else None
    if dataset is None or access is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return dataset, access


def visible_datasets(session: Session, caller: Caller) -> list[tuple[Dataset, ReadAccess]]:
    """Every dataset the caller may read, by id; never filtered by classification here.

    Not audited per dataset: a listing shows metadata, not records, and auditing every hidden
    dataset on every listing would bury the audit log. Reading a named dataset is audited.
    """
    visible = []
    for dataset in queries.list_datasets(session, classification=None):
        access = read_access(session, caller, dataset, audit=False)
        if access is not None:
            visible.append((dataset, access))
    return visible


def departments(session: Session) -> dict[str, Department]:
    return {d.id: d for d in session.query(Department).all()}


def project(data: dict[str, Any], fields: tuple[str, ...] | frozenset[str] | None) -> dict[str, Any]:
    if fields is None:
        return data
    return {name: data[name] for name in fields if name in data}

"""The HTTP ingestion API: CloudEvents from departments that cannot embed a Kafka client.

One route takes the three modes of the CloudEvents HTTP binding. A request is judged by the same
``route`` as a message on the department's Kafka topic; what it accepts is produced to the
validated topic exactly as ingest produces it, and the answer is 202 only once the broker
acknowledged every accepted event. Refused events are answered at once, one result per event with
the dead letter's reason, pointer and detail (plus a ja/en sentence), and are written nowhere.

The department is the credential's (an API key of a department with the ``ingest:write`` scope),
never the body's; a department's events are judged as read from its own topic, so ``route``'s
ownership check keeps it to its own datasets.
"""

# No ``from __future__ import annotations`` here: FastAPI reads handler annotations at runtime.

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel

from cityos.domain.access import CallerKind
from cityos.domain.apikeys import REFUSAL_TEXT, SCOPE_INGEST, Credential, KeyRefusal
from cityos.domain.metric_labels import dataset_label
from cityos.domain.registry.topic import SchemaFollower
from cityos.kernel.api_docs import DocsText, install_api_docs
from cityos.kernel.http_limits import BodyLimitMiddleware
from cityos.kernel.ratelimit import RateLimiter
from cityos.kernel.settings import get_settings
from cityos.kernel.validation import ValidatorRegistry
from cityos.kernel.web_assets import mount_vendor_assets
from services.ingest.http_modes import (
    BATCH_CONTENT_TYPE,
    Mode,
    NotAnArray,
    TooManyEvents,
    answer_status,
    inbound_messages,
    mode_of,
    result_of,
)
from services.ingest.routing import UNKNOWN, OutboundMessage, Routed, Topics, route
from services.ingest.service import apply_schema_changes

EVENTS_PATH = "/api/v1/events"
SCHEMA_POLL_S = 0.25  # new schema versions are used within about this
NOT_READY_RETRY_S = 5
ANONYMOUS = "anonymous"  # the department label of a request no credential vouched for


class Delivery(Protocol):
    @property
    def ready(self) -> bool: ...

    async def deliver(self, messages: Sequence[OutboundMessage]) -> bool: ...


class Credentials(Protocol):
    async def resolve(self, presented: str) -> Credential | KeyRefusal: ...


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per_minute: int
    max_batch_events: int
    max_batch_bytes: int
    max_future: timedelta


class HttpIngestMetrics:
    """Counts by department, dataset and outcome; every label value comes from a bounded set."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "cityos_ingest_http_events_total",
            "Events received over HTTP by department, dataset (public ones named) and outcome "
            "(accepted, or the refusal's reason).",
            ["department", "dataset", "outcome"],
            registry=registry,
        )
        self.requests = Counter(
            "cityos_ingest_http_requests_total",
            "HTTP ingestion requests by department and answer status.",
            ["department", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "cityos_ingest_http_request_seconds",
            "Time to answer an ingestion request (for 202: until the broker acknowledged all).",
            ["mode"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )


class EventAnswer(BaseModel):
    """One event's fate. Refused: the dead letter's reason code, JSON pointer and detail."""

    index: int
    status: str  # accepted | refused
    dataset: str
    key: str | None = None
    id: str | None = None
    reason: str | None = None
    pointer: str | None = None
    detail: str | None = None
    message_ja: str | None = None
    message_en: str | None = None


class EventsAnswer(BaseModel):
    accepted: int
    refused: int
    results: list[EventAnswer]


class ErrorAnswer(BaseModel):
    error: str
    detail: str


class Probe(BaseModel):
    status: str


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": error, "detail": detail}, headers)


def presented_key(request: Request) -> str | None:
    """``Authorization: Bearer <key>`` first, then ``X-API-Key``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key", "").strip() or None


def department_refusal(credential: Credential, known: frozenset[str]) -> str | None:
    """Why a valid credential may not send events (None: it may). Pure."""
    caller = credential.caller
    if caller.kind is not CallerKind.department or caller.principal not in known:
        return "only a department's credential sends events / イベントを送れるのは部署の認証情報だけです"
    if not credential.allows(SCOPE_INGEST):
        return f"this credential lacks the {SCOPE_INGEST} scope / この認証情報には {SCOPE_INGEST} の権限がありません"
    return None


_STRUCTURED_BODY = {"type": "object", "description": "one structured-mode CloudEvent"}
_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/cloudevents+json": {"schema": _STRUCTURED_BODY},
        BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": _STRUCTURED_BODY}},
        "application/json": {"schema": {"description": "binary mode: the event's data; ce-* headers"}},
    },
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": EventsAnswer, "description": "every event accepted and acknowledged by the broker"},
    400: {"model": ErrorAnswer, "description": "a batch that is not a JSON array"},
    401: {"model": ErrorAnswer, "description": "no credential, or one that does not count"},
    403: {"model": ErrorAnswer, "description": "not a department's ingest:write credential, or another "
          "department's dataset"},
    413: {"model": ErrorAnswer, "description": "event, batch or request too large"},
    415: {"model": ErrorAnswer, "description": "a content type no CloudEvents mode takes"},
    422: {"model": EventsAnswer, "description": "an event refused (a batch: its accepted events are written)"},
    429: {"model": ErrorAnswer, "description": "the department's rate limit; see Retry-After"},
    503: {"model": ErrorAnswer, "description": "the broker is unreachable or did not acknowledge; retry"},
}  # fmt: skip


@dataclass(slots=True)
class IngestHttp:
    """Everything one request needs; a request is judged by ``handle``."""

    registry: ValidatorRegistry
    topics: Topics
    limits: Limits
    credentials: Credentials
    delivery: Delivery
    metrics: HttpIngestMetrics
    departments: frozenset[str]
    topic_for: Callable[[str], str]
    limiter: RateLimiter
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        department, mode, answer = await self._answer(request)
        self.metrics.requests.labels(department, str(answer.status_code)).inc()
        self.metrics.seconds.labels(mode).observe(time.perf_counter() - started)
        return answer

    async def _answer(self, request: Request) -> tuple[str, str, Response]:
        department, admitted = await self._admit(request)
        if isinstance(admitted, Response):
            return department, "none", admitted
        limit_headers = admitted
        mode = mode_of(request.headers.get("content-type"))
        if mode is None:
            detail = "use application/cloudevents+json, application/cloudevents-batch+json or binary mode with JSON data"
            return department, "none", _error(415, "unsupported_media_type", detail, limit_headers)
        if not self.delivery.ready:
            detail = (
                "the event broker is unreachable; nothing was taken, retry later / 一時的に受け付けられません"
            )
            headers = {**limit_headers, "Retry-After": str(NOT_READY_RETRY_S)}
            return department, mode, _error(503, "not_ready", detail, headers)
        answer = await self._events(department, mode, await request.body(), request.headers.raw)
        answer.headers.update(limit_headers)
        return department, mode, answer

    async def _admit(self, request: Request) -> tuple[str, dict[str, str] | Response]:
        """The sending department (its metrics label) and its rate-limit headers, or the refusal
        (401, 403, 429)."""
        key = presented_key(request)
        if key is None:
            detail = "send a department credential as Authorization: Bearer / 認証情報が必要です"
            return ANONYMOUS, _error(401, "missing_credential", detail, {"WWW-Authenticate": "Bearer"})
        found = await self.credentials.resolve(key)
        if isinstance(found, KeyRefusal):
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return ANONYMOUS, _error(401, "invalid_api_key", REFUSAL_TEXT[found], headers)
        refusal = department_refusal(found, self.departments)
        if refusal is not None:
            return ANONYMOUS, _error(403, "missing_scope", refusal)
        department = found.caller.principal or UNKNOWN
        limit = found.rate_limit_per_minute or self.limits.rate_per_minute
        decision = self.limiter.check(f"department:{department}", limit)
        if not decision.allowed:
            detail = f"over {decision.limit} requests per minute for {department}; retry after {decision.retry_after_s} s"
            return department, _error(429, "rate_limited", detail, decision.headers())
        return department, decision.headers()

    async def _events(
        self, department: str, mode: Mode, body: bytes, headers: Sequence[tuple[bytes, bytes]]
    ) -> Response:
        now = self.clock()
        try:
            messages = inbound_messages(
                mode,
                body,
                headers,
                topic=self.topic_for(department),
                received_ms=int(now.timestamp() * 1000),
                max_batch_events=self.limits.max_batch_events,
            )
        except TooManyEvents as exc:
            return _error(413, "too_many_events", f"{exc} / 1 回に送れるのは {exc.limit} 件までです")
        except NotAnArray as exc:
            return _error(400, "malformed_batch", f"{exc} / バッチは CloudEvents の JSON 配列です")
        routed = [
            route(m, registry=self.registry, topics=self.topics, now=now, max_future=self.limits.max_future)
            for m in messages
        ]
        if not await self.delivery.deliver([r.outbound for r in routed if r.reason is None]):
            detail = "the broker did not acknowledge every event; send them again (nothing is doubled)"
            return _error(503, "not_acknowledged", detail, {"Retry-After": "1"})
        reasons = [r.reason for r in routed]
        self._count(department, routed)
        results = [result_of(index, r) for index, r in enumerate(routed)]
        refused = len(reasons) - reasons.count(None)
        answer = {"accepted": len(reasons) - refused, "refused": refused, "results": results}
        return _json(answer_status(mode, reasons), answer)

    def _count(self, department: str, routed: Sequence[Routed]) -> None:
        # Tallied per dataset and outcome first: a label is looked up once per request, not per event.
        tally: dict[tuple[str, str], int] = {}
        for one in routed:
            seen = (one.dataset, one.reason or "accepted")
            tally[seen] = tally.get(seen, 0) + 1
        for (dataset, outcome), count in tally.items():
            self.metrics.events.labels(department, self._dataset_label(dataset), str(outcome)).inc(count)

    def _dataset_label(self, dataset: str) -> str:
        meta = self.registry.dataset(dataset)
        return UNKNOWN if meta is None else dataset_label(dataset, meta.classification)


DOCS_TEXT = DocsText(
    title={"ja": "HTTP イベント受付 API ドキュメント", "en": "CloudEvents over HTTP: API documentation"},
    intro={
        "ja": "Kafka クライアントを持たない部局システムが CloudEvents を送るための API です。"
        "送信には ingest:write 権限の認証情報（Bearer）が必要です。",
        "en": "The API departmental systems without a Kafka client use to send CloudEvents. "
        "Sending needs a credential with the ingest:write scope (Bearer).",
    },
)


def create_app(
    ingest: IngestHttp,
    *,
    follower: SchemaFollower | None = None,
    on_stop: Callable[[], None] | None = None,
    web_assets_dir: Path | None = None,
) -> Any:
    """The ASGI app: the events route, probes, metrics and OpenAPI docs (Swagger UI from this
    service's own origin, ``web_assets_dir`` defaulting to the settings'), under the body cap."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_follow_schemas(ingest.registry, follower)) if follower else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            if on_stop is not None:
                on_stop()

    app = FastAPI(
        title="CityOS Connector — CloudEvents over HTTP / HTTP でのイベント受付",
        version="1",
        description="Departments send CloudEvents (binary, structured or batched mode) with their "
        "ingest:write credential; each event is validated as on Kafka and answered at once.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    mount_vendor_assets(app, web_assets_dir or get_settings().web_assets_dir, ("swagger-ui",))
    install_api_docs(app, DOCS_TEXT, openapi_url="/openapi.json", paths={"ja": "/docs"})

    @app.post(
        EVENTS_PATH,
        status_code=202,
        responses=_RESPONSES,
        openapi_extra={"requestBody": _REQUEST_BODY},
        response_model=EventsAnswer,
        summary="Send CloudEvents (binary, structured or batched mode)",
    )
    async def send_events(request: Request) -> Response:
        return await ingest.handle(request)

    @app.get("/healthz", response_model=Probe)
    async def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/readyz", response_model=Probe, responses={503: {"model": Probe}})
    async def readyz() -> Response:
        if ingest.delivery.ready:
            return _json(200, {"status": "ready"})
        return _json(503, {"status": "broker unreachable"}, {"Retry-After": str(NOT_READY_RETRY_S)})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(ingest.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return BodyLimitMiddleware(app, max_body_bytes=ingest.limits.max_batch_bytes)


async def _follow_schemas(registry: ValidatorRegistry, follower: SchemaFollower) -> None:
    # On the event loop, like the requests: the registry is only ever touched from this one thread.
    while True:
        apply_schema_changes(registry, follower.poll())
        await asyncio.sleep(SCHEMA_POLL_S)

"""Schema registry and dead-letter admin API of the catalog (port 8001).

Every endpoint here is for administrators (``Authorization: Bearer`` with a personal ``admin``
credential, see ``admin_auth``), reads included: a personal dataset's schema names its
anonymisation rules, and dead letters' bytes may hold personal data. The CLI does the same on the
database and Kafka directly.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from confluent_kafka import Producer
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.dlq import (
    DeadLetterDetails,
    DeadLetterFilter,
    DeadLetterList,
    ReplayReportView,
    ReplayTargets,
    parse_id,
    read_deadletters,
    replay,
    replay_counts,
    replay_tally,
)
from cityos.domain.registry.http_models import (
    CompatibilityBody,
    CompatibilityView,
    ReplayBody,
    SchemaVersionsView,
    SchemaVersionView,
)
from cityos.domain.registry.service import register, republish_all
from cityos.domain.registry.store import (
    EvaluationView,
    UnknownDataset,
    bundled_definitions,
    compatibility_mode,
    evaluate,
    set_compatibility_mode,
    versions_of,
)
from cityos.domain.registry.topic import ensure_schema_topic
from cityos.kernel.errors import CityOSError
from cityos.kernel.kafka import producer_config
from cityos.kernel.kafka_access import KafkaAccess, Principal, kafka_access
from cityos.kernel.settings import Settings
from cityos.kernel.timeutil import parse_instant
from services.catalog.admin_auth import admin_actor, credential_of
from services.catalog.context import RouterContext, app_context
from services.catalog.error_responses import refusals

REGISTRATION_OUTCOMES = ("registered", "existing", "refused")
log = logging.getLogger(__name__)


class _ReplayTallyCollector(Collector):
    """``cityos_dlq_replays_total{outcome}`` from the database, so replays made by the CLI count too."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "cityos_dlq_replays", "Dead-letter replay attempts, by outcome.", labels=["outcome"]
        )
        try:
            with self._sessions() as session:
                counts = replay_tally(session)
        except Exception:  # a scrape must not fail because the database is away
            return
        for outcome, count in counts.items():
            family.add_metric([outcome], count)
        yield family


class LazyProducer:
    """A producer made on first use, acting as one principal.

    Schema changes are written as the registry, the only principal the broker lets write the
    schemas topic (whose existence is checked first, so it is never left to defaults); dead-letter
    repairs are sent as the catalog, which may write department topics."""

    def __init__(self, settings: Settings, principal: Principal, *, schemas: bool = False) -> None:
        self._settings = settings
        self._principal = principal
        self._schemas = schemas
        self._lock = threading.Lock()
        self._access: KafkaAccess | None = None
        self._producer: Producer | None = None

    def access(self) -> KafkaAccess:
        """The principal's credential, read from the secrets folder once."""
        if self._access is None:
            self._access = kafka_access(self._settings, self._principal)
        return self._access

    def __call__(self) -> Producer:
        with self._lock:
            if self._producer is None:
                access = self.access()
                if self._schemas:
                    ensure_schema_topic(access, self._settings.schemas_topic)
                self._producer = Producer(producer_config(access))
            return self._producer


@dataclass(frozen=True)
class RegistryContext(RouterContext):
    registrations: Counter
    targets: ReplayTargets
    producer: LazyProducer  # schema changes, as the registry
    replayer: LazyProducer  # dead-letter reads and repairs, as the catalog

    @classmethod
    def create(
        cls, sessions: sessionmaker[Session], registry: CollectorRegistry, settings: Settings
    ) -> "RegistryContext":
        registrations = Counter(
            "cityos_registry_registrations",
            "Schema registrations through the admin API, by outcome (registered, existing, refused).",
            ["outcome"],
            registry=registry,
        )
        for outcome in REGISTRATION_OUTCOMES:
            registrations.labels(outcome)
        registry.register(_ReplayTallyCollector(sessions))
        return cls(
            sessions,
            settings,
            registrations,
            ReplayTargets.of(settings),
            LazyProducer(settings, Principal.registry, schemas=True),
            LazyProducer(settings, Principal.catalog),
        )

    def republish(self) -> None:
        """Every registered version to the schemas topic, so ingest instances catch up."""
        topic = self.settings.schemas_topic
        try:
            count = republish_all(self.sessions, producer=self.producer(), schemas_topic=topic)
        except Exception as exc:  # the API still serves; ingest still has schemas/ and the topic
            log.warning("could not republish schema versions: %s", exc)
            return
        log.info("republished %d schema versions to %s", count, topic)


STATE = "registry"  # the attribute of ``app.state`` holding the RegistryContext


@asynccontextmanager
async def _republish_on_start(app: Any) -> AsyncIterator[None]:
    context = getattr(app.state, STATE, None)
    if isinstance(context, RegistryContext):
        # In the background: the API must not wait for Kafka to start serving.
        threading.Thread(target=context.republish, name="schema-republish", daemon=True).start()
    yield


router = APIRouter(prefix="/api/v1/admin", tags=["registry"], responses=refusals(400, 404, 503))
router.lifespan_context = _republish_on_start


def _context(request: Request) -> RegistryContext:
    return app_context(request, STATE, RegistryContext)


ContextDep = Annotated[RegistryContext, Depends(_context)]


def _session(context: ContextDep) -> Iterator[Session]:
    yield from context.session()


SessionDep = Annotated[Session, Depends(_session)]


def _admin(request: Request, context: ContextDep, session: SessionDep) -> str:
    return admin_actor(credential_of(request, session, context.settings))


AdminDep = Annotated[str, Depends(_admin)]


def _unknown(dataset_id: str) -> HTTPException:
    return HTTPException(404, f"unknown dataset {dataset_id!r}")


@router.get("/schemas/{dataset_id}")
def list_versions(dataset_id: str, session: SessionDep, _actor: AdminDep) -> SchemaVersionsView:
    rows = versions_of(session, dataset_id)
    if not rows:
        raise _unknown(dataset_id)
    return SchemaVersionsView(
        dataset=dataset_id,
        compatibility=compatibility_mode(session, dataset_id),
        versions=[
            SchemaVersionView(version=r.version, uri=r.uri, registered_at=r.registered_at) for r in rows
        ],
    )


@router.post("/schemas/{dataset_id}/check")
def check(
    dataset_id: str,
    context: ContextDep,
    session: SessionDep,
    _actor: AdminDep,
    document: Annotated[dict[str, Any], Body()],
) -> EvaluationView:
    try:
        evaluation = evaluate(
            session,
            dataset_id=dataset_id,
            document=document,
            bundle=bundled_definitions(context.settings.schemas_dir),
        )
    except UnknownDataset as exc:
        raise _unknown(dataset_id) from exc
    return evaluation.view()


@router.post(
    "/schemas/{dataset_id}",
    responses={
        201: {"model": EvaluationView, "description": "registered as a new version"},
        409: {"model": EvaluationView, "description": "refused: incompatible with registered versions"},
    },
)
def register_version(
    dataset_id: str,
    response: Response,
    context: ContextDep,
    actor: AdminDep,
    document: Annotated[dict[str, Any], Body()],
) -> EvaluationView:
    """200 when the same schema is already registered, 201 when registered; refused, 409 when it
    is incompatible with registered versions, 422 (with the same body) when the schema itself has
    problems."""
    settings = context.settings
    try:
        evaluation = register(
            context.sessions,
            producer=context.producer(),
            schemas_topic=settings.schemas_topic,
            dataset_id=dataset_id,
            document=document,
            actor=actor,
            bundle=bundled_definitions(settings.schemas_dir),
        )
    except UnknownDataset as exc:
        raise _unknown(dataset_id) from exc
    except CityOSError as exc:
        raise HTTPException(503, f"not registered: {exc}") from exc
    if evaluation.existing:
        context.registrations.labels("existing").inc()
        response.status_code = 200
    elif evaluation.acceptable:
        context.registrations.labels("registered").inc()
        response.status_code = 201
    else:
        context.registrations.labels("refused").inc()
        response.status_code = 409 if evaluation.incompatibilities else 422
    return evaluation.view()


@router.get("/schemas/{dataset_id}/compatibility")
def get_compatibility(dataset_id: str, session: SessionDep, _actor: AdminDep) -> CompatibilityView:
    if not versions_of(session, dataset_id):
        raise _unknown(dataset_id)
    return CompatibilityView(dataset=dataset_id, compatibility=compatibility_mode(session, dataset_id))


@router.put("/schemas/{dataset_id}/compatibility")
def put_compatibility(
    dataset_id: str, body: CompatibilityBody, context: ContextDep, actor: AdminDep
) -> CompatibilityView:
    try:
        with context.sessions.begin() as session:
            set_compatibility_mode(session, dataset_id=dataset_id, mode=body.compatibility, actor=actor)
    except UnknownDataset as exc:
        raise _unknown(dataset_id) from exc
    return CompatibilityView(dataset=dataset_id, compatibility=body.compatibility)


@router.get("/dlq")
def list_deadletters(
    context: ContextDep,
    session: SessionDep,
    _actor: AdminDep,
    dataset: str | None = None,
    reason: str | None = None,
    department: str | None = None,
    since: str | None = Query(default=None, description="ISO 8601 instant"),
    until: str | None = Query(default=None, description="ISO 8601 instant"),
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> DeadLetterList:
    settings = context.settings
    where = _filter(dataset=dataset, reason=reason, department=department, since=since, until=until)
    letters = read_deadletters(context.replayer.access(), settings.deadletter_topic, where=where, limit=limit)
    counts = replay_counts(session, settings.deadletter_topic, letters)
    return DeadLetterList(
        count=len(letters),
        deadletters=[letter.summary(counts.get((letter.partition, letter.offset), 0)) for letter in letters],
    )


@router.get("/dlq/{letter_id}")
def show_deadletter(
    letter_id: str, context: ContextDep, session: SessionDep, _actor: AdminDep
) -> DeadLetterDetails:
    settings = context.settings
    try:
        position = parse_id(letter_id)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    letters = read_deadletters(
        context.replayer.access(),
        settings.deadletter_topic,
        where=DeadLetterFilter(ids=frozenset({position})),
    )
    if not letters:
        raise HTTPException(404, f"no dead letter {letter_id}")
    counts = replay_counts(session, settings.deadletter_topic, letters)
    return letters[0].details(counts.get(position, 0))


@router.post("/dlq/replay")
def replay_deadletters(body: ReplayBody, context: ContextDep, actor: AdminDep) -> ReplayReportView:
    if not body.selects_something():
        raise HTTPException(400, "say which dead letters: ids, a filter, or all=true")
    try:
        ids = frozenset(parse_id(i) for i in body.ids) if body.ids else None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    where = DeadLetterFilter(
        dataset=body.dataset,
        reason=body.reason,
        department=body.department,
        since=body.since,
        until=body.until,
        ids=ids,
    )
    settings = context.settings
    letters = read_deadletters(context.replayer.access(), settings.deadletter_topic, where=where)
    replacement = orjson.dumps(body.value) if body.value is not None else None
    if replacement is not None and len(letters) != 1:
        raise HTTPException(400, "a corrected payload replaces exactly one dead letter")
    with context.sessions.begin() as session:
        report = replay(
            session,
            producer=context.replayer(),
            letters=letters,
            targets=context.targets,
            actor=actor,
            force=body.force,
            replacement=replacement,
        )
    return report.view()


def _filter(
    *, dataset: str | None, reason: str | None, department: str | None, since: str | None, until: str | None
) -> DeadLetterFilter:
    def instant(name: str, text: str | None) -> datetime | None:
        if text is None:
            return None
        try:
            return parse_instant(text, name)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc

    return DeadLetterFilter(
        dataset=dataset,
        reason=reason,
        department=department,
        since=instant("since", since),
        until=instant("until", until),
    )

"""Access API of the catalog (port 8001): departments and their credentials, grants,
subscriptions, the audit log and the Kafka ACLs a secured cluster needs.

Authentication: ``Authorization: Bearer <key>``. A department's API key (``cityos departments
credential issue``) acts as that department. An administrator presents ``CITYOS_ADMIN_TOKEN``
(compared in constant time; when the setting is empty, HTTP administration is off and operators
use the CLI, which works on the database directly). Anything else is a 401.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain import grants as admin
from cityos.domain.access import Caller, CallerKind
from cityos.domain.acls import acl_specs
from cityos.domain.apikeys import (
    DEPARTMENT_SCOPES,
    SCOPE_MANAGE,
    SCOPE_SUBSCRIBE,
    KeyRefusal,
    OwnerKind,
    authenticate,
    issue_key,
    list_keys,
    revoke_key,
)
from cityos.domain.audit import audit_as_dict, audit_csv, audit_ndjson, list_audit
from cityos.kernel.db.models import ApiKey, Department
from cityos.kernel.settings import Settings, get_settings
from cityos.kernel.timeutil import assume_utc
from services.catalog.admin_auth import bearer, is_admin_token

ADMIN = Caller(CallerKind.admin)


class AccessMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.grant_changes = Counter(
            "cityos_access_grant_changes",
            "Grants created and revoked through the access API.",
            ["action"],
            registry=registry,
        )
        self.refusals = Counter(
            "cityos_access_refusals",
            "Access API requests refused by the access rules, by operation.",
            ["operation"],
            registry=registry,
        )
        for action in ("created", "revoked"):
            self.grant_changes.labels(action)
        for operation in ("manage_grants", "subscribe", "other"):
            self.refusals.labels(operation)


class GrantBody(BaseModel):
    grantee: str = Field(description="department id")
    fields: list[str] | None = Field(default=None, description="granted fields; omit for every field")


class SubscriptionBody(BaseModel):
    dataset: str
    department: str | None = Field(default=None, description="administrators only: for whom")
    filter: dict[str, Any] = Field(default_factory=dict, description="equality on declared fields")
    fields: list[str] | None = Field(default=None, description="projection; omit for every readable field")
    start: admin.StartMode = admin.StartMode.snapshot


class CredentialBody(BaseModel):
    purpose: str = "department credential"
    scopes: list[str] = Field(default_factory=lambda: list(DEPARTMENT_SCOPES))
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def create_access_router(
    sessions: sessionmaker[Session],
    registry: CollectorRegistry,
    settings: Settings | None = None,
    *,
    ensure_topic: Callable[[str], None] | None = None,
) -> APIRouter:
    """The router; ``ensure_topic`` creates a new subscription's feed topic (None: the republisher
    creates it when it activates the subscription)."""
    settings = settings or get_settings()
    metrics = AccessMetrics(registry)
    router = APIRouter(prefix="/api/v1", tags=["access"])

    def session_dep() -> Iterator[Session]:
        with sessions() as session:
            yield session

    def caller_dep(
        session: Annotated[Session, Depends(session_dep)],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Caller:
        token = bearer(authorization)
        if token is None:
            raise HTTPException(401, "a Bearer credential is required", {"WWW-Authenticate": "Bearer"})
        if is_admin_token(token, settings.admin_token):
            return ADMIN
        found = authenticate(session, token)
        if isinstance(found, KeyRefusal) or found.kind is not CallerKind.department:
            raise HTTPException(401, "credential not valid here", {"WWW-Authenticate": "Bearer"})
        return found

    SessionDep = Annotated[Session, Depends(session_dep)]
    CallerDep = Annotated[Caller, Depends(caller_dep)]

    def refused(exc: admin.AccessRefused, operation: str) -> HTTPException:
        metrics.refusals.labels(operation).inc()
        return HTTPException(exc.status, {"error": exc.code, "detail": exc.detail})

    def commit_refusal(session: Session) -> None:
        # Refusals are audited in the same session: keep those entries, nothing else was changed.
        session.commit()

    def require_scope(session: Session, caller: Caller, scope: str) -> None:
        if caller.kind is CallerKind.admin:
            return
        key = session.get(ApiKey, caller.key_id) if caller.key_id else None
        if key is None or scope not in (key.scopes or []):
            metrics.refusals.labels("other").inc()
            raise HTTPException(403, {"error": "missing_scope", "detail": f"this credential lacks {scope}"})

    def require_admin(caller: Caller) -> None:
        if caller.kind is not CallerKind.admin:
            metrics.refusals.labels("other").inc()
            raise HTTPException(403, "administrators only")

    @router.get("/departments")
    def departments(session: SessionDep, caller: CallerDep) -> list[dict[str, Any]]:
        rows = session.scalars(select(Department).order_by(Department.id))
        return [
            {"id": d.id, "name": {"ja": d.name_ja, "en": d.name_en}, "kafka_principal": d.kafka_principal}
            for d in rows
        ]

    @router.post("/departments/{department_id}/credentials", status_code=201)
    def issue_credential(
        department_id: str, body: CredentialBody, session: SessionDep, caller: CallerDep
    ) -> dict[str, Any]:
        require_admin(caller)
        if session.get(Department, department_id) is None:
            raise HTTPException(404, f"no department {department_id!r}")
        expires = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
        issued = issue_key(
            session,
            owner_kind=OwnerKind.department,
            owner_id=department_id,
            purpose=body.purpose,
            actor=caller.actor,
            scopes=body.scopes,
            expires_at=expires,
        )
        session.commit()
        return {"key_id": issued.key_id, "secret": issued.secret, "department": department_id}

    @router.get("/departments/{department_id}/credentials")
    def credentials(department_id: str, session: SessionDep, caller: CallerDep) -> list[dict[str, Any]]:
        if caller.kind is not CallerKind.admin and caller.principal != department_id:
            raise HTTPException(403, "administrators or the department itself")
        return [
            _key_dict(k) for k in list_keys(session, owner_kind=OwnerKind.department, owner_id=department_id)
        ]

    @router.delete("/credentials/{key_id}")
    def revoke_credential(key_id: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
        row = session.get(ApiKey, key_id)
        own = row is not None and row.owner_kind == OwnerKind.department and row.owner_id == caller.principal
        if caller.kind is not CallerKind.admin and not own:
            raise HTTPException(404, f"no credential {key_id}")
        if not revoke_key(session, key_id, actor=caller.actor):
            raise HTTPException(404, f"no credential {key_id}")
        session.commit()
        return {"key_id": key_id, "revoked": True}

    @router.get("/datasets/{dataset_id}/grants")
    def grants(
        dataset_id: str, session: SessionDep, caller: CallerDep, include_revoked: bool = False
    ) -> list[dict[str, Any]]:
        try:
            rows = admin.list_grants(
                session, caller=caller, dataset_id=dataset_id, include_revoked=include_revoked
            )
        except admin.AccessRefused as exc:
            commit_refusal(session)
            raise refused(exc, "manage_grants") from exc
        return [admin.grant_as_dict(r) for r in rows]

    @router.post("/datasets/{dataset_id}/grants", status_code=201)
    def create_grant(
        dataset_id: str, body: GrantBody, session: SessionDep, caller: CallerDep
    ) -> dict[str, Any]:
        require_scope(session, caller, SCOPE_MANAGE)
        try:
            row = admin.grant(
                session, caller=caller, dataset_id=dataset_id, grantee=body.grantee, fields=body.fields
            )
        except admin.AccessRefused as exc:
            session.rollback()
            _reaudit(sessions, caller, dataset_id, exc)
            raise refused(exc, "manage_grants") from exc
        session.commit()
        metrics.grant_changes.labels("created").inc()
        return admin.grant_as_dict(row)

    @router.delete("/datasets/{dataset_id}/grants/{grantee}")
    def delete_grant(dataset_id: str, grantee: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
        require_scope(session, caller, SCOPE_MANAGE)
        try:
            row = admin.revoke(session, caller=caller, dataset_id=dataset_id, grantee=grantee)
        except admin.AccessRefused as exc:
            commit_refusal(session)
            raise refused(exc, "manage_grants") from exc
        session.commit()
        metrics.grant_changes.labels("revoked").inc()
        return admin.grant_as_dict(row)

    @router.post("/subscriptions", status_code=201)
    def create_subscription(body: SubscriptionBody, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
        require_scope(session, caller, SCOPE_SUBSCRIBE)
        request = admin.SubscriptionRequest(
            dataset_id=body.dataset, filter=body.filter, fields=body.fields, start=body.start
        )
        try:
            row = admin.subscribe(
                session,
                caller=caller,
                department=body.department,
                request=request,
                topic_prefix=settings.topic_prefix,
            )
        except admin.AccessRefused as exc:
            session.rollback()
            _reaudit(sessions, caller, body.dataset, exc, action="subscription.refused")
            raise refused(exc, "subscribe") from exc
        session.commit()
        if ensure_topic is not None:
            ensure_topic(row.topic)
        return admin.subscription_as_dict(row)

    @router.get("/subscriptions")
    def subscriptions(
        session: SessionDep, caller: CallerDep, include_cancelled: bool = False
    ) -> list[dict[str, Any]]:
        rows = admin.list_subscriptions(session, caller=caller, include_cancelled=include_cancelled)
        return [admin.subscription_as_dict(r) for r in rows]

    @router.get("/subscriptions/{subscription_id}")
    def subscription(subscription_id: int, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
        try:
            row = admin.get_subscription(session, caller=caller, subscription_id=subscription_id)
        except admin.AccessRefused as exc:
            raise refused(exc, "other") from exc
        return admin.subscription_as_dict(row)

    @router.delete("/subscriptions/{subscription_id}")
    def cancel(subscription_id: int, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
        try:
            row = admin.cancel_subscription(session, caller=caller, subscription_id=subscription_id)
        except admin.AccessRefused as exc:
            raise refused(exc, "other") from exc
        session.commit()
        return admin.subscription_as_dict(row)

    @router.get("/audit")
    def audit(
        session: SessionDep,
        caller: CallerDep,
        action: str | None = None,
        actor: str | None = None,
        subject_kind: str | None = None,
        subject_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> list[dict[str, Any]]:
        require_admin(caller)
        rows = list_audit(
            session,
            action=action,
            actor=actor,
            subject_kind=subject_kind,
            subject_id=subject_id,
            since=assume_utc(since),
            until=assume_utc(until),
            limit=limit,
        )
        return [audit_as_dict(r) for r in rows]

    @router.get("/audit/export")
    def audit_export(
        session: SessionDep,
        caller: CallerDep,
        format: Literal["ndjson", "csv"] = "ndjson",
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
    ) -> Response:
        require_admin(caller)
        rows = [
            audit_as_dict(r)
            for r in list_audit(session, since=assume_utc(since), until=assume_utc(until), limit=limit)
        ]
        if format == "csv":
            return Response(
                audit_csv(rows),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
            )
        return Response(audit_ndjson(rows), media_type="application/x-ndjson")

    @router.get("/feeds/acls")
    def acls(session: SessionDep, caller: CallerDep) -> list[str]:
        require_admin(caller)
        departments = session.execute(select(Department.id, Department.kafka_principal)).tuples()
        specs = acl_specs(
            departments,
            topic_prefix=settings.topic_prefix,
            validated_topic=settings.validated_topic,
            feeds_group=settings.feeds_group,
            feeds_transactional_id_prefix=settings.topic_prefix + settings.feeds_transactional_id_name,
            state_topic=settings.feeds_state_topic,
        )
        return [spec.line() for spec in specs]

    return router


def _reaudit(
    sessions: sessionmaker[Session],
    caller: Caller,
    dataset_id: str,
    exc: admin.AccessRefused,
    *,
    action: str = "grant.refused",
) -> None:
    """Audit a refused change in a fresh transaction (the refused one was rolled back whole)."""
    with sessions() as session, session.begin():
        admin.audit_refusal(session, caller, action, dataset_id, exc)


def _key_dict(row: ApiKey) -> dict[str, Any]:
    return {
        "key_id": row.id,
        "purpose": row.purpose,
        "scopes": row.scopes,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }

"""Access API of the catalog (port 8001): departments and their credentials, grants,
subscriptions, the audit log and the Kafka ACLs a secured cluster needs.

Authentication: ``Authorization: Bearer <key>`` (``admin_auth``). A department's API key
(``cityos departments credential issue``) acts as that department, within its scopes. An
administrator presents a personal credential (``cityos admins issue NAME``) and is audited by name.
A missing, unknown, revoked or expired credential is a 401; another kind of key is a 403.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at runtime.

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain import grants as admin
from cityos.domain.access import Caller, CallerKind
from cityos.domain.acls import TopicLayout, acl_specs
from cityos.domain.apikeys import (
    DEPARTMENT_SCOPES,
    SCOPE_MANAGE,
    SCOPE_SUBSCRIBE,
    Credential,
    CredentialView,
    OwnerKind,
    issue_key,
    list_keys,
    revoke_key,
)
from cityos.domain.audit import AuditEntryView, audit_csv, audit_ndjson, list_audit
from cityos.domain.grants import GrantView, SubscriptionView
from cityos.domain.wire import Instant
from cityos.kernel.db.models import ApiKey, Department
from cityos.kernel.settings import Settings
from cityos.kernel.timeutil import assume_utc
from services.catalog.admin_auth import credential_of
from services.catalog.context import RouterContext, app_context
from services.catalog.error_responses import refusals


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
    expires_in_days: int | None = Field(
        default=None, ge=1, le=3650, description="omit for the configured lifetime (90 days by default)"
    )


class LocalizedName(BaseModel):
    ja: str
    en: str


class DepartmentView(BaseModel):
    id: str
    name: LocalizedName
    kafka_principal: str | None = Field(description="the department's Kafka principal, e.g. User:dept-fire")


class IssuedCredential(BaseModel):
    """A new department credential: the secret is in this answer only."""

    key_id: str
    secret: str
    department: str
    expires_at: Instant


class RevokedCredential(BaseModel):
    key_id: str
    revoked: bool


@dataclass(frozen=True)
class AccessContext(RouterContext):
    """What the access handlers need besides the database: their metrics, and ``ensure_topic``,
    which creates a new subscription's feed topic (None: the republisher creates it when it
    activates the subscription)."""

    metrics: AccessMetrics
    ensure_topic: Callable[[str], None] | None = None

    @classmethod
    def create(
        cls,
        sessions: sessionmaker[Session],
        registry: CollectorRegistry,
        settings: Settings,
        *,
        ensure_topic: Callable[[str], None] | None = None,
    ) -> "AccessContext":
        return cls(sessions, settings, AccessMetrics(registry), ensure_topic)


STATE = "access"  # the attribute of ``app.state`` holding the AccessContext

router = APIRouter(prefix="/api/v1", tags=["access"], responses=refusals(400, 403, 404))


def _context(request: Request) -> AccessContext:
    return app_context(request, STATE, AccessContext)


ContextDep = Annotated[AccessContext, Depends(_context)]


def _session(context: ContextDep) -> Iterator[Session]:
    yield from context.session()


SessionDep = Annotated[Session, Depends(_session)]


def _credential(request: Request, context: ContextDep, session: SessionDep) -> Credential:
    found = credential_of(request, session, context.settings)
    if found.caller.kind not in (CallerKind.admin, CallerKind.department):
        raise HTTPException(403, "administrators and departments only")
    return found


CredentialDep = Annotated[Credential, Depends(_credential)]


def _caller(credential: CredentialDep) -> Caller:
    return credential.caller


CallerDep = Annotated[Caller, Depends(_caller)]
# A database integer: a larger number names no subscription (and is a 422, not a failed query).
SubscriptionId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _refused(context: AccessContext, exc: admin.AccessRefused, operation: str) -> HTTPException:
    context.metrics.refusals.labels(operation).inc()
    return HTTPException(exc.status, {"error": exc.code, "detail": exc.detail})


def _commit_refusal(session: Session) -> None:
    # Refusals are audited in the same session: keep those entries, nothing else was changed.
    session.commit()


def _require_scope(context: AccessContext, credential: Credential, scope: str) -> None:
    if credential.caller.kind is CallerKind.admin:
        return
    if not credential.allows(scope):
        context.metrics.refusals.labels("other").inc()
        raise HTTPException(403, {"error": "missing_scope", "detail": f"this credential lacks {scope}"})


def _require_admin(context: AccessContext, caller: Caller) -> None:
    if caller.kind is not CallerKind.admin:
        context.metrics.refusals.labels("other").inc()
        raise HTTPException(403, "administrators only")


@router.get("/departments")
def departments(session: SessionDep, caller: CallerDep) -> list[DepartmentView]:
    rows = session.scalars(select(Department).order_by(Department.id))
    return [
        DepartmentView(
            id=d.id, name=LocalizedName(ja=d.name_ja, en=d.name_en), kafka_principal=d.kafka_principal
        )
        for d in rows
    ]


@router.post("/departments/{department_id}/credentials", status_code=201)
def issue_credential(
    department_id: str, body: CredentialBody, context: ContextDep, session: SessionDep, caller: CallerDep
) -> IssuedCredential:
    _require_admin(context, caller)
    if session.get(Department, department_id) is None:
        raise HTTPException(404, f"no department {department_id!r}")
    days = body.expires_in_days or context.settings.credential_lifetime_days
    expires = datetime.now(UTC) + timedelta(days=days)
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
    return IssuedCredential(
        key_id=issued.key_id, secret=issued.secret, department=department_id, expires_at=expires
    )


@router.get("/departments/{department_id}/credentials")
def credentials(department_id: str, session: SessionDep, caller: CallerDep) -> list[CredentialView]:
    if caller.kind is not CallerKind.admin and caller.principal != department_id:
        raise HTTPException(403, "administrators or the department itself")
    return [
        CredentialView.of(k)
        for k in list_keys(session, owner_kind=OwnerKind.department, owner_id=department_id)
    ]


@router.delete("/credentials/{key_id}")
def revoke_credential(key_id: str, session: SessionDep, caller: CallerDep) -> RevokedCredential:
    row = session.get(ApiKey, key_id)
    own = row is not None and row.owner_kind == OwnerKind.department and row.owner_id == caller.principal
    if caller.kind is not CallerKind.admin and not own:
        raise HTTPException(404, f"no credential {key_id}")
    if not revoke_key(session, key_id, actor=caller.actor):
        raise HTTPException(404, f"no credential {key_id}")
    session.commit()
    return RevokedCredential(key_id=key_id, revoked=True)


@router.get("/datasets/{dataset_id}/grants")
def grants(
    dataset_id: str,
    context: ContextDep,
    session: SessionDep,
    caller: CallerDep,
    include_revoked: bool = False,
) -> list[GrantView]:
    try:
        rows = admin.list_grants(
            session, caller=caller, dataset_id=dataset_id, include_revoked=include_revoked
        )
    except admin.AccessRefused as exc:
        _commit_refusal(session)
        raise _refused(context, exc, "manage_grants") from exc
    return [GrantView.of(r) for r in rows]


@router.post("/datasets/{dataset_id}/grants", status_code=201)
def create_grant(
    dataset_id: str, body: GrantBody, context: ContextDep, session: SessionDep, credential: CredentialDep
) -> GrantView:
    _require_scope(context, credential, SCOPE_MANAGE)
    caller = credential.caller
    try:
        row = admin.grant(
            session, caller=caller, dataset_id=dataset_id, grantee=body.grantee, fields=body.fields
        )
    except admin.AccessRefused as exc:
        session.rollback()
        _reaudit(context.sessions, caller, dataset_id, exc)
        raise _refused(context, exc, "manage_grants") from exc
    session.commit()
    context.metrics.grant_changes.labels("created").inc()
    return GrantView.of(row)


@router.delete("/datasets/{dataset_id}/grants/{grantee}")
def delete_grant(
    dataset_id: str, grantee: str, context: ContextDep, session: SessionDep, credential: CredentialDep
) -> GrantView:
    _require_scope(context, credential, SCOPE_MANAGE)
    caller = credential.caller
    try:
        row = admin.revoke(session, caller=caller, dataset_id=dataset_id, grantee=grantee)
    except admin.AccessRefused as exc:
        _commit_refusal(session)
        raise _refused(context, exc, "manage_grants") from exc
    session.commit()
    context.metrics.grant_changes.labels("revoked").inc()
    return GrantView.of(row)


@router.post("/subscriptions", status_code=201)
def create_subscription(
    body: SubscriptionBody, context: ContextDep, session: SessionDep, credential: CredentialDep
) -> SubscriptionView:
    _require_scope(context, credential, SCOPE_SUBSCRIBE)
    caller = credential.caller
    request = admin.SubscriptionRequest(
        dataset_id=body.dataset, filter=body.filter, fields=body.fields, start=body.start
    )
    try:
        row = admin.subscribe(
            session,
            caller=caller,
            department=body.department,
            request=request,
            topic_prefix=context.settings.topic_prefix,
        )
    except admin.AccessRefused as exc:
        session.rollback()
        _reaudit(context.sessions, caller, body.dataset, exc, action="subscription.refused")
        raise _refused(context, exc, "subscribe") from exc
    session.commit()
    if context.ensure_topic is not None:
        context.ensure_topic(row.topic)
    return SubscriptionView.of(row)


@router.get("/subscriptions")
def subscriptions(
    session: SessionDep, caller: CallerDep, include_cancelled: bool = False
) -> list[SubscriptionView]:
    rows = admin.list_subscriptions(session, caller=caller, include_cancelled=include_cancelled)
    return [SubscriptionView.of(r) for r in rows]


@router.get("/subscriptions/{subscription_id}")
def subscription(
    subscription_id: SubscriptionId, context: ContextDep, session: SessionDep, caller: CallerDep
) -> SubscriptionView:
    try:
        row = admin.get_subscription(session, caller=caller, subscription_id=subscription_id)
    except admin.AccessRefused as exc:
        raise _refused(context, exc, "other") from exc
    return SubscriptionView.of(row)


@router.delete("/subscriptions/{subscription_id}")
def cancel(
    subscription_id: SubscriptionId, context: ContextDep, session: SessionDep, caller: CallerDep
) -> SubscriptionView:
    try:
        row = admin.cancel_subscription(session, caller=caller, subscription_id=subscription_id)
    except admin.AccessRefused as exc:
        raise _refused(context, exc, "other") from exc
    session.commit()
    return SubscriptionView.of(row)


@router.get("/audit")
def audit(
    context: ContextDep,
    session: SessionDep,
    caller: CallerDep,
    action: str | None = None,
    actor: str | None = None,
    subject_kind: str | None = None,
    subject_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[AuditEntryView]:
    _require_admin(context, caller)
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
    return [AuditEntryView.of(r) for r in rows]


AUDIT_EXPORT_TYPES = {
    "application/x-ndjson": {"schema": {"type": "string", "description": "one audit entry (JSON) a line"}},
    "text/csv": {"schema": {"type": "string", "description": "UTF-8 with a BOM; detail as a JSON cell"}},
}


@router.get(
    "/audit/export",
    response_class=Response,
    responses={200: {"description": "the audit log, NDJSON or CSV", "content": AUDIT_EXPORT_TYPES}},
)
def audit_export(
    context: ContextDep,
    session: SessionDep,
    caller: CallerDep,
    format: Literal["ndjson", "csv"] = "ndjson",
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
) -> Response:
    _require_admin(context, caller)
    rows = [
        AuditEntryView.of(r).model_dump(mode="json")
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
def acls(context: ContextDep, session: SessionDep, caller: CallerDep) -> list[str]:
    _require_admin(context, caller)
    settings = context.settings
    departments = session.execute(select(Department.id, Department.kafka_principal)).tuples()
    specs = acl_specs(departments, TopicLayout.of(settings))
    return [spec.line() for spec in specs]


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

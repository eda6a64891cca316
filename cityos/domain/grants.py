"""Managing grants and subscriptions: the rules behind the catalog API and the CLI.

Service functions take keyword-only arguments, write the audit entry next to the change and never
commit: the caller owns the transaction, so a change and its audit entry land together.

Who may do what:

* grants of a dataset are managed by the department that owns it, or by an administrator; only
  ``internal`` datasets take grants (``public`` needs none, ``personal`` never leaves raw);
* a department subscribes to a dataset it may read (``cityos.domain.access.read_access``); an
  administrator may subscribe on a department's behalf, under the same rule;
* a caller that may not read a dataset is told it does not exist (404), like the records API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.access import Caller, CallerKind, ReadAccess, active_grant, read_access
from cityos.domain.audit import record_audit
from cityos.domain.readmodel.queries import latest_schema
from cityos.domain.wire import Instant
from cityos.kernel.db.access_models import AccessGrant, FeedSubscription
from cityos.kernel.db.models import Dataset, Department

GRANTABLE = "internal"
MAX_FILTER_FIELDS = 16


class StartMode(StrEnum):
    snapshot = "snapshot"  # every record's current state first, then the live changes
    now = "now"  # only changes the republisher sees from its activation on


class SubscriptionState(StrEnum):
    active = "active"
    cancelled = "cancelled"


class AccessRefused(Exception):
    """A request the rules refuse; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def feed_topic(prefix: str, department: str, dataset: str) -> str:
    return f"{prefix}feed.{department}.{dataset}"


def _not_found(dataset_id: str) -> AccessRefused:
    # Same words for "does not exist" and "you may not see it": existence must not leak.
    return AccessRefused(404, "not_found", f"no dataset {dataset_id!r} visible to this caller")


def declared_fields(session: Session, dataset_id: str) -> frozenset[str]:
    """Property names of the dataset's latest schema version."""
    schema = latest_schema(session, dataset_id=dataset_id)
    document = None if schema is None else schema.document
    properties = (document or {}).get("properties", {})
    return frozenset(properties) if isinstance(properties, Mapping) else frozenset()


def _department(session: Session, department_id: str) -> Department:
    department = session.get(Department, department_id)
    if department is None:
        raise AccessRefused(404, "unknown_department", f"no department {department_id!r}")
    return department


def _managed_dataset(session: Session, *, caller: Caller, dataset_id: str) -> Dataset:
    """The dataset, if ``caller`` may manage its grants; refuses otherwise."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        missing = _not_found(dataset_id)
        audit_refusal(session, caller, "grant.refused", dataset_id, missing)
        raise missing
    owner = caller.kind is CallerKind.department and caller.principal == dataset.department_id
    if not owner and caller.kind is not CallerKind.admin:
        refused = AccessRefused(403, "not_owner", "only the owning department or an administrator")
        # A dataset the caller cannot even read looks absent.
        if read_access(session, caller, dataset, audit=False) is None:
            refused = _not_found(dataset_id)
        audit_refusal(session, caller, "grant.refused", dataset_id, refused)
        raise refused
    if dataset.classification != GRANTABLE:
        why = (
            "public datasets are readable by everyone and take no grants"
            if dataset.classification == "public"
            else f"{dataset.classification} datasets are never shared raw"
        )
        refused = AccessRefused(409, "not_grantable", why)
        audit_refusal(session, caller, "grant.refused", dataset_id, refused)
        raise refused
    return dataset


def audit_refusal(session: Session, caller: Caller, action: str, dataset_id: str, why: AccessRefused) -> None:
    """The audit entry of a refused grant or subscription (the admin API and CLI write the same)."""
    record_audit(
        session,
        actor=caller.actor,
        action=action,
        subject_kind="dataset",
        subject_id=dataset_id,
        detail={"status": why.status, "code": why.code, "detail": why.detail},
    )


def _checked_fields(names: Sequence[str] | None, *, allowed: frozenset[str], what: str) -> list[str] | None:
    if names is None:
        return None
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise AccessRefused(
            400, f"unknown_{what}", f"{what} not declared or not readable: {', '.join(unknown)}"
        )
    if not names:
        raise AccessRefused(400, f"empty_{what}", f"give at least one field, or omit {what}")
    return sorted(set(names))


def grant(
    session: Session,
    *,
    caller: Caller,
    dataset_id: str,
    grantee: str,
    fields: Sequence[str] | None = None,
    now: datetime | None = None,
) -> AccessGrant:
    """Grant ``grantee`` read access to ``dataset_id`` (all fields, or ``fields``). An existing
    grant of the pair is replaced (revoked, then granted anew), so the log shows both."""
    dataset = _managed_dataset(session, caller=caller, dataset_id=dataset_id)
    _department(session, grantee)
    if grantee == dataset.department_id:
        raise AccessRefused(409, "owner", "the owning department already reads its dataset")
    checked = _checked_fields(fields, allowed=declared_fields(session, dataset_id), what="fields")
    moment = now or datetime.now(UTC)
    previous = active_grant(session, dataset_id=dataset_id, grantee=grantee)
    if previous is not None:
        _revoke_row(session, previous, caller=caller, now=moment)
    row = AccessGrant(
        dataset_id=dataset_id,
        grantee_id=grantee,
        fields=checked,
        granted_by=caller.actor,
        granted_at=moment,
    )
    session.add(row)
    session.flush()
    record_audit(
        session,
        actor=caller.actor,
        action="grant.created",
        subject_kind="dataset",
        subject_id=dataset_id,
        detail={"grant_id": row.id, "grantee": grantee, "fields": checked if checked is not None else "all"},
        at=moment,
    )
    return row


def _revoke_row(session: Session, row: AccessGrant, *, caller: Caller, now: datetime) -> None:
    row.revoked_at = now
    row.revoked_by = caller.actor
    record_audit(
        session,
        actor=caller.actor,
        action="grant.revoked",
        subject_kind="dataset",
        subject_id=row.dataset_id,
        detail={"grant_id": row.id, "grantee": row.grantee_id},
        at=now,
    )


def revoke(
    session: Session, *, caller: Caller, dataset_id: str, grantee: str, now: datetime | None = None
) -> AccessGrant:
    """Revoke the grantee's grant. The API answers 404 from the commit on, and the republisher
    checks grants again before every feed transaction commits, so nothing read after this commit
    reaches the grantee's feed."""
    _managed_dataset(session, caller=caller, dataset_id=dataset_id)
    row = active_grant(session, dataset_id=dataset_id, grantee=grantee)
    if row is None:
        raise AccessRefused(404, "no_grant", f"{grantee!r} holds no grant of {dataset_id!r}")
    _revoke_row(session, row, caller=caller, now=now or datetime.now(UTC))
    return row


def list_grants(
    session: Session, *, caller: Caller, dataset_id: str, include_revoked: bool = False
) -> list[AccessGrant]:
    _managed_dataset(session, caller=caller, dataset_id=dataset_id)
    query = select(AccessGrant).where(AccessGrant.dataset_id == dataset_id).order_by(AccessGrant.id)
    if not include_revoked:
        query = query.where(AccessGrant.revoked_at.is_(None))
    return list(session.scalars(query))


@dataclass(frozen=True)
class SubscriptionRequest:
    dataset_id: str
    filter: Mapping[str, Any]
    fields: Sequence[str] | None
    start: StartMode


def subscribe(
    session: Session,
    *,
    caller: Caller,
    department: str | None,
    request: SubscriptionRequest,
    topic_prefix: str,
    now: datetime | None = None,
) -> FeedSubscription:
    """Create a department's subscription; refused (404) when the department may not read the
    dataset, exactly as the records API would answer it."""
    if caller.kind is CallerKind.admin:
        if department is None:
            raise AccessRefused(400, "department_required", "an administrator names the department")
        subscriber = Caller(CallerKind.department, principal=department)
    elif caller.kind is CallerKind.department and caller.principal is not None:
        if department not in (None, caller.principal):
            raise AccessRefused(403, "other_department", "a department subscribes for itself only")
        subscriber = caller
    else:
        raise AccessRefused(403, "department_only", "feeds are for department credentials")
    assert subscriber.principal is not None
    _department(session, subscriber.principal)
    dataset = session.get(Dataset, request.dataset_id)
    access: ReadAccess | None = (
        None if dataset is None else read_access(session, subscriber, dataset, audit=False)
    )
    if dataset is None or access is None:
        refused = _not_found(request.dataset_id)
        audit_refusal(session, caller, "subscription.refused", request.dataset_id, refused)
        raise refused
    readable = declared_fields(session, dataset.id)
    if access.fields is not None:
        readable &= access.fields
    if len(request.filter) > MAX_FILTER_FIELDS:
        raise AccessRefused(400, "filter_too_large", f"at most {MAX_FILTER_FIELDS} filter fields")
    _checked_fields(list(request.filter) or None, allowed=readable, what="filter")
    projection = _checked_fields(request.fields, allowed=readable, what="fields")
    existing = session.scalar(
        select(FeedSubscription).where(
            FeedSubscription.department_id == subscriber.principal,
            FeedSubscription.dataset_id == dataset.id,
            FeedSubscription.state == SubscriptionState.active,
        )
    )
    if existing is not None:
        raise AccessRefused(
            409, "already_subscribed", f"subscription {existing.id} already feeds {existing.topic}"
        )
    moment = now or datetime.now(UTC)
    row = FeedSubscription(
        department_id=subscriber.principal,
        dataset_id=dataset.id,
        filter=dict(request.filter),
        projection=projection,
        start_mode=str(request.start),
        topic=feed_topic(topic_prefix, subscriber.principal, dataset.id),
        state=str(SubscriptionState.active),
        created_by=caller.actor,
        created_at=moment,
    )
    session.add(row)
    session.flush()
    record_audit(
        session,
        actor=caller.actor,
        action="subscription.created",
        subject_kind="dataset",
        subject_id=dataset.id,
        detail={
            "subscription_id": row.id,
            "department": subscriber.principal,
            "topic": row.topic,
            "start": row.start_mode,
            "filter": row.filter,
            "fields": projection if projection is not None else "all",
        },
        at=moment,
    )
    return row


def _visible_subscription(session: Session, *, caller: Caller, subscription_id: int) -> FeedSubscription:
    row = session.get(FeedSubscription, subscription_id)
    if row is None or (caller.kind is not CallerKind.admin and caller.principal != row.department_id):
        raise AccessRefused(404, "not_found", f"no subscription {subscription_id}")
    return row


def get_subscription(session: Session, *, caller: Caller, subscription_id: int) -> FeedSubscription:
    return _visible_subscription(session, caller=caller, subscription_id=subscription_id)


def cancel_subscription(
    session: Session, *, caller: Caller, subscription_id: int, now: datetime | None = None
) -> FeedSubscription:
    row = _visible_subscription(session, caller=caller, subscription_id=subscription_id)
    if row.state != SubscriptionState.cancelled:
        row.state = str(SubscriptionState.cancelled)
        row.cancelled_at = now or datetime.now(UTC)
        record_audit(
            session,
            actor=caller.actor,
            action="subscription.cancelled",
            subject_kind="dataset",
            subject_id=row.dataset_id,
            detail={"subscription_id": row.id, "department": row.department_id},
            at=row.cancelled_at,
        )
    return row


def list_subscriptions(
    session: Session, *, caller: Caller, include_cancelled: bool = False
) -> list[FeedSubscription]:
    query = select(FeedSubscription).order_by(FeedSubscription.id)
    if caller.kind is not CallerKind.admin:
        query = query.where(FeedSubscription.department_id == caller.principal)
    if not include_cancelled:
        query = query.where(FeedSubscription.state == SubscriptionState.active)
    return list(session.scalars(query))


class GrantView(BaseModel):
    """A grant as the access API and ``cityos grants`` show it; ``fields`` is "all" for every field."""

    id: int
    dataset: str
    grantee: str
    fields: list[str] | Literal["all"]
    granted_by: str
    granted_at: Instant
    revoked_by: str | None
    revoked_at: Instant | None

    @classmethod
    def of(cls, row: AccessGrant) -> GrantView:
        return cls(
            id=row.id,
            dataset=row.dataset_id,
            grantee=row.grantee_id,
            fields=row.fields if row.fields is not None else "all",
            granted_by=row.granted_by,
            granted_at=row.granted_at,
            revoked_by=row.revoked_by,
            revoked_at=row.revoked_at,
        )


class SubscriptionView(BaseModel):
    """A feed subscription as the access API and ``cityos subscriptions`` show it."""

    id: int
    department: str
    dataset: str
    filter: dict[str, Any]
    fields: list[str] | Literal["all"]
    start: str
    topic: str
    state: str
    created_by: str
    created_at: Instant
    cancelled_at: Instant | None

    @classmethod
    def of(cls, row: FeedSubscription) -> SubscriptionView:
        return cls(
            id=row.id,
            department=row.department_id,
            dataset=row.dataset_id,
            filter=row.filter,
            fields=row.projection if row.projection is not None else "all",
            start=row.start_mode,
            topic=row.topic,
            state=row.state,
            created_by=row.created_by,
            created_at=row.created_at,
            cancelled_at=row.cancelled_at,
        )

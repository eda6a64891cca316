"""The republisher's view of the access policy: one route per active subscription, with the
access its department has right now. Loaded in bulk (a handful of small queries), compared whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.access import Caller, CallerKind, decide_read
from cityos.kernel.db.access_models import AccessGrant, FeedSubscription
from cityos.kernel.db.models import Dataset


@dataclass(frozen=True)
class Route:
    """Where and how one subscription's events go. Equality covers everything that decides
    delivery, so two policies compare equal exactly when they would deliver the same events."""

    subscription_id: int
    department: str
    dataset: str
    topic: str
    start_mode: str
    filter_json: bytes  # canonical JSON of the filter (hashable, comparable)
    fields: frozenset[str] | None  # delivered fields; None: every field
    allowed: bool  # the department may read the dataset now
    filter: dict[str, Any] = field(compare=False, hash=False)

    @property
    def label(self) -> str:
        """Metrics label: one active subscription per (department, dataset) bounds it."""
        return f"{self.department}.{self.dataset}"


@dataclass(frozen=True)
class Policy:
    routes: tuple[Route, ...] = ()
    active_grants: int = 0

    def by_dataset(self) -> dict[str, list[Route]]:
        grouped: dict[str, list[Route]] = defaultdict(list)
        for route in self.routes:
            grouped[route.dataset].append(route)
        return dict(grouped)


def load_policy(session: Session) -> Policy:
    subscriptions = list(
        session.scalars(
            select(FeedSubscription).where(FeedSubscription.state == "active").order_by(FeedSubscription.id)
        )
    )
    grants = list(session.scalars(select(AccessGrant).where(AccessGrant.revoked_at.is_(None))))
    grant_fields: dict[tuple[str, str], list[str] | None] = {}
    for grant in sorted(grants, key=lambda g: g.id):  # the newest grant of a pair wins
        grant_fields[(grant.dataset_id, grant.grantee_id)] = grant.fields
    dataset_ids = sorted({s.dataset_id for s in subscriptions})
    datasets = {d.id: d for d in session.scalars(select(Dataset).where(Dataset.id.in_(dataset_ids)))}
    routes: list[Route] = []
    for sub in subscriptions:
        dataset = datasets.get(sub.dataset_id)
        if dataset is None:
            continue
        key = (sub.dataset_id, sub.department_id)
        access = decide_read(
            classification=dataset.classification,
            owner=dataset.department_id,
            record_key=dataset.record_key,
            caller=Caller(CallerKind.department, principal=sub.department_id),
            grant_fields=grant_fields.get(key, False),
        )
        fields: frozenset[str] | None = None
        if access is not None:
            wanted = frozenset(sub.projection) | {dataset.record_key} if sub.projection is not None else None
            fields = access.narrowed(wanted).fields
        routes.append(
            Route(
                subscription_id=sub.id,
                department=sub.department_id,
                dataset=sub.dataset_id,
                topic=sub.topic,
                start_mode=sub.start_mode,
                filter_json=orjson.dumps(sub.filter, option=orjson.OPT_SORT_KEYS),
                fields=fields,
                allowed=access is not None,
                filter=dict(sub.filter),
            )
        )
    return Policy(routes=tuple(routes), active_grants=len(grants))

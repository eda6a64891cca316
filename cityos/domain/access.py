"""Who may read what: the one place every read path (records API, CKAN, DCAT, exports, usage,
feeds) asks before serving a dataset.

A ``Caller`` is resolved from the request's credential by the HTTP layer (anonymous when there is
none). ``read_access`` answers with the fields the caller may see, or ``None`` -- which every
endpoint must turn into the same 404 as a missing dataset, so existence does not leak.

The policy, by classification:

* ``public``: everyone, every field.
* ``internal``: the owning department, every field; a department holding an unrevoked grant, the
  granted fields (plus the record key, which is the record's identity); no one else.
* ``personal``: no one, ever -- raw personal data never leaves; only anonymized releases do.

``decide_read`` is the pure decision (the feed republisher calls it with grants it loaded in
bulk); ``read_access`` looks the grant up and writes the audit trail: every read of a non-public
dataset by an identified caller, allowed (``access.read``) or refused (``access.denied``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cityos.domain.audit import record_audit
from cityos.kernel.db.access_models import AccessGrant
from cityos.kernel.db.models import Dataset
from cityos.kernel.db.release_models import Release, ReleaseProposal

log = logging.getLogger(__name__)


class CallerKind(StrEnum):
    anonymous = "anonymous"
    developer = "developer"  # an external developer's registered API key
    department = "department"  # a department's credential (cross-department use)
    applicant = "applicant"  # an approved applicant of an anonymized release
    admin = "admin"  # an operator (CITYOS_ADMIN_TOKEN): manages grants, reads no raw data here


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    # Who: the department id or applicant id behind the credential; None for anonymous/developer.
    principal: str | None = None
    # The credential's public id (its visible prefix), for limits, usage and logs; never the secret.
    key_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        if self.principal is not None:
            return f"{self.kind}:{self.principal}"
        return f"{self.kind}:{self.key_id}" if self.key_id else str(self.kind)


ANONYMOUS = Caller(CallerKind.anonymous)


@dataclass(frozen=True)
class ReadAccess:
    """What a caller may read of one dataset: ``fields`` None means every field."""

    fields: frozenset[str] | None = None

    def project(self, record: dict[str, object]) -> dict[str, object]:
        if self.fields is None:
            return record
        return {name: value for name, value in record.items() if name in self.fields}

    def covers(self, names: Iterable[str]) -> bool:
        """Whether every one of ``names`` may be read."""
        return self.fields is None or all(name in self.fields for name in names)

    def location(self, declared: tuple[str, str] | None) -> tuple[str, str] | None:
        """The dataset's (latitude, longitude) fields when this access reads both, else None.

        A record's position is its location fields under another name (geometry, bbox and
        ``near`` filters, a dataset's spatial extent): a grant that leaves them out leaves out all
        of these.
        """
        return declared if declared is not None and self.covers(declared) else None

    def schema(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON Schema as this access may see it: only the readable properties (and required
        names), so a grantee does not learn the names of the fields it was not given."""
        if self.fields is None:
            return dict(document)
        shown = dict(document)
        properties = document.get("properties")
        if isinstance(properties, Mapping):
            shown["properties"] = {name: rule for name, rule in properties.items() if name in self.fields}
        required = document.get("required")
        if isinstance(required, list):
            shown["required"] = [name for name in required if name in self.fields]
        return shown

    def narrowed(self, wanted: frozenset[str] | None) -> ReadAccess:
        """The fields both allowed here and ``wanted`` (None: no further narrowing)."""
        if wanted is None:
            return self
        return ReadAccess(wanted if self.fields is None else self.fields & wanted)


FULL = ReadAccess()


def grant_access(fields: list[str] | None, record_key: str) -> ReadAccess:
    """The access a grant gives: all fields, or the granted ones plus the record key."""
    if fields is None:
        return FULL
    return ReadAccess(frozenset(fields) | {record_key})


def decide_read(
    *, classification: str, owner: str, record_key: str, caller: Caller, grant_fields: list[str] | None | bool
) -> ReadAccess | None:
    """The pure policy. ``grant_fields``: False when the caller's department holds no unrevoked
    grant of the dataset, else the grant's fields (None: every field)."""
    if classification == "public":
        return FULL
    if classification == "internal":
        if caller.kind is not CallerKind.department or caller.principal is None:
            return None
        if caller.principal == owner:
            return FULL
        if grant_fields is False:
            return None
        return grant_access(grant_fields if isinstance(grant_fields, list) else None, record_key)
    # personal, and any classification this code does not know: refuse. A new classification
    # (as partner releases did) gets its own branch in ``read_access``, calling its own function.
    return None


def active_grant(session: Session, *, dataset_id: str, grantee: str) -> AccessGrant | None:
    return session.scalar(
        select(AccessGrant)
        .where(
            AccessGrant.dataset_id == dataset_id,
            AccessGrant.grantee_id == grantee,
            AccessGrant.revoked_at.is_(None),
        )
        .order_by(AccessGrant.id.desc())
        .limit(1)
    )


# Proposal states in which a partner release may be read by its applicant.
READABLE_STATES = ("accepted", "contracted")


def release_access(session: Session, caller: Caller, dataset: Dataset) -> ReadAccess | None:
    """A partner release is readable by its own applicant only, while the proposal stands."""
    release = session.scalar(select(Release).where(Release.dataset_id == dataset.id))
    if release is None or caller.kind != CallerKind.applicant or caller.principal != release.applicant_id:
        return None
    if release.proposal_id is not None:
        proposal = session.get(ReleaseProposal, release.proposal_id)
        if proposal is None or proposal.status not in READABLE_STATES:
            return None
    return FULL


def read_access(
    session: Session, caller: Caller, dataset: Dataset, *, audit: bool = True
) -> ReadAccess | None:
    """The caller's access to ``dataset``, or None when it must look absent.

    The audit entry is written in a transaction of its own (read paths never commit). Code that
    changes something in ``session`` and audits there itself passes ``audit=False``: a second
    writer on the same SQLite file would wait for the first one's lock.
    """
    if dataset.classification == "public":
        return FULL  # open data: no lookup, no audit
    if dataset.classification == "partner":  # an anonymized release, for its applicant only
        partner = release_access(session, caller, dataset)
        if audit and caller.kind is not CallerKind.anonymous:
            _audit_access(session, caller, dataset, partner)
        return partner
    grant_fields: list[str] | None | bool = False
    if (
        dataset.classification == "internal"
        and caller.kind is CallerKind.department
        and caller.principal is not None
        and caller.principal != dataset.department_id
    ):
        grant = active_grant(session, dataset_id=dataset.id, grantee=caller.principal)
        if grant is not None:
            grant_fields = list(grant.fields) if grant.fields is not None else None
    access = decide_read(
        classification=dataset.classification,
        owner=dataset.department_id,
        record_key=dataset.record_key,
        caller=caller,
        grant_fields=grant_fields,
    )
    if audit and caller.kind is not CallerKind.anonymous:
        _audit_access(session, caller, dataset, access)
    return access


def _audit_access(session: Session, caller: Caller, dataset: Dataset, access: ReadAccess | None) -> None:
    """Audit in a transaction of its own: read paths use read-only sessions that never commit.
    Anonymous callers are not audited (nothing to name; a scraper would flood the log)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    detail: dict[str, object] = {"dataset": dataset.id, "classification": dataset.classification}
    if caller.key_id:
        detail["key_id"] = caller.key_id
    if access is not None:
        detail["fields"] = sorted(access.fields) if access.fields is not None else "all"
    try:
        with Session(engine) as audit_session, audit_session.begin():
            record_audit(
                audit_session,
                actor=caller.actor,
                action="access.read" if access is not None else "access.denied",
                subject_kind="dataset",
                subject_id=dataset.id,
                detail=detail,
                at=datetime.now(UTC),
            )
    except SQLAlchemyError as exc:
        # The answer stands (a read is no change); the failure is loud in the log.
        log.error("could not audit %s reading %s: %s", caller.actor, dataset.id, exc)

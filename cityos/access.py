"""Who may read what: the one place every read path (records API, CKAN, DCAT, exports, usage,
feeds) asks before serving a dataset.

A ``Caller`` is resolved from the request's credential by the HTTP layer (anonymous when there is
none). ``read_access`` answers with the fields the caller may see, or ``None`` -- which every
endpoint must turn into the same 404 as a missing dataset, so existence does not leak.

Today: ``public`` datasets are readable by everyone, in full; ``internal`` and ``personal`` by no
one through these paths. Grants for internal data (issue 5) and partner releases (issue 6) extend
``read_access`` here, so no endpoint needs to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from cityos.db.models import Dataset


class CallerKind(StrEnum):
    anonymous = "anonymous"
    developer = "developer"  # an external developer's registered API key
    department = "department"  # a department's credential (cross-department use)
    applicant = "applicant"  # an approved applicant of an anonymized release


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    # Who: the department id or applicant id behind the credential; None for anonymous/developer.
    principal: str | None = None
    # The credential's public id (its visible prefix), for limits, usage and logs; never the secret.
    key_id: str | None = None


ANONYMOUS = Caller(CallerKind.anonymous)


@dataclass(frozen=True)
class ReadAccess:
    """What a caller may read of one dataset: ``fields`` None means every field."""

    fields: frozenset[str] | None = None

    def project(self, record: dict[str, object]) -> dict[str, object]:
        if self.fields is None:
            return record
        return {name: value for name, value in record.items() if name in self.fields}


FULL = ReadAccess()


def read_access(session: Session, caller: Caller, dataset: Dataset) -> ReadAccess | None:
    """The caller's access to ``dataset``, or None when it must look absent."""
    if dataset.classification == "public":
        return FULL
    return None

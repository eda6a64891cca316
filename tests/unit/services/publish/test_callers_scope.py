"""Publish serves reads only: a credential without ``records:read`` is refused whatever its kind."""

from __future__ import annotations

from cityos.domain.access import Caller, CallerKind
from cityos.domain.apikeys import DEPARTMENT_SCOPES, SCOPE_READ, SCOPE_SUBSCRIBE, Credential
from services.publish.callers import scope_refusal


def _credential(kind: CallerKind, *scopes: str) -> Credential:
    return Credential(Caller(kind, principal="digital", key_id="cos_00000000"), frozenset(scopes))


def test_records_read_is_required_of_every_kind() -> None:
    assert scope_refusal(_credential(CallerKind.department, *DEPARTMENT_SCOPES)) is None
    assert scope_refusal(_credential(CallerKind.developer, SCOPE_READ)) is None
    for refused in (
        _credential(CallerKind.department, SCOPE_SUBSCRIBE),
        _credential(CallerKind.developer),
        _credential(CallerKind.admin, "admin"),
    ):
        reason = scope_refusal(refused)
        assert reason is not None and SCOPE_READ in reason and "権限" in reason

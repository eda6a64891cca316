"""When a key issued from the CLI expires: department and administrator credentials always do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cityos.cli.keys import DEVELOPER_KEY_DAYS, expiry
from cityos.domain.apikeys import OwnerKind

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def test_defaults_by_kind() -> None:
    assert expiry(OwnerKind.department, None, now=NOW, lifetime_days=90) == NOW + timedelta(days=90)
    assert expiry(OwnerKind.admin, None, now=NOW, lifetime_days=30) == NOW + timedelta(days=30)
    assert expiry(OwnerKind.developer, None, now=NOW, lifetime_days=90) == NOW + timedelta(
        days=DEVELOPER_KEY_DAYS
    )
    assert expiry(OwnerKind.department, 7, now=NOW, lifetime_days=90) == NOW + timedelta(days=7)


def test_never_is_for_developers_and_applicants_only() -> None:
    assert expiry(OwnerKind.developer, 0, now=NOW, lifetime_days=90) is None
    assert expiry(OwnerKind.applicant, 0, now=NOW, lifetime_days=90) is None
    for kind in (OwnerKind.department, OwnerKind.admin):
        with pytest.raises(ValueError, match="must expire"):
            expiry(kind, 0, now=NOW, lifetime_days=90)
    with pytest.raises(ValueError):
        expiry(OwnerKind.developer, -1, now=NOW, lifetime_days=90)

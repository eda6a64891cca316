"""Instants: everything inside the platform is a timezone-aware datetime in UTC.

SQLite hands back naive datetimes (the catalog writes them in UTC), HTTP dates may lack a zone and
callers may type one without an offset; these helpers are the one place that decides what each means.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def assume_utc(moment: datetime) -> datetime: ...
@overload
def assume_utc(moment: None) -> None: ...
def assume_utc(moment: datetime | None) -> datetime | None:
    """A naive datetime read as UTC (SQLite's stored form, a zone-less query parameter); aware ones in UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def require_aware(moment: datetime, what: str = "datetime") -> datetime:
    """The instant in UTC; a naive value is refused (ValueError) because its zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive {what} {moment.isoformat()}: a timezone-aware value is required")
    return moment.astimezone(UTC)


def parse_instant(text: str, name: str) -> datetime:
    """An ISO 8601 instant with an explicit offset, as typed by an operator; ValueError says what is wrong."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{name}: not an ISO 8601 instant: {text!r}") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{name}: give a time zone offset, e.g. 2026-11-27T09:00+09:00")
    return moment


def utc_now() -> datetime:
    return datetime.now(UTC)

"""ETag / Last-Modified validators and conditional-request evaluation (RFC 9110 §13). Pure."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from cityos.kernel.timeutil import assume_utc


def weak_etag(media: str, body: bytes) -> str:
    """A weak validator: a digest of the representation's bytes and its media type."""
    digest = hashlib.sha256(media.encode() + b"\x1f" + body).hexdigest()[:32]
    return f'W/"{digest}"'


def export_etag(media: str, changed: datetime | None, query: str, fields: frozenset[str] | None) -> str:
    """A weak validator of a whole-dataset export, known before its first byte: the dataset's last
    applied change and everything that shapes the rendering (format, options and filters in the
    query, the fields the caller may read)."""
    shown = "*" if fields is None else ",".join(sorted(fields))
    moment = "-" if changed is None else changed.isoformat()
    return weak_etag(media, "\x1f".join((moment, query, shown)).encode())


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    # Weak comparison: W/"x" and "x" both match.
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


def not_modified(
    *, etag: str, last_modified: datetime | None, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """Whether a GET may be answered 304. If-None-Match wins over If-Modified-Since, as specified."""
    if if_none_match is not None:
        return _etag_matches(if_none_match, etag)
    if if_modified_since is None or last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an unparsable date is ignored, per RFC 9110
    since = assume_utc(since)
    return last_modified.replace(microsecond=0) <= since

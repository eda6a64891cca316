"""Usage report: requests, rows and bytes per hour, dataset, caller class, key and format.

Open data itself (JSON or CSV): keys appear only as a keyed pseudonym (HMAC), anonymous callers as one class, and
only datasets the caller may read are reported. A key holder can ask for their own key's usage.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cityos.kernel.timeutil import assume_utc
from services.publish import render
from services.publish.context import (
    COMMON_RESPONSES,
    ContextDep,
    SessionDep,
    bad_request,
    caller_of,
    visible_dataset,
    visible_datasets,
)
from services.publish.responses import UsageReport
from services.publish.usage import REPORT_COLUMNS, hashed_key, pseudonym_key, usage_rows

# RFC 3339 date-times, parsed here rather than by pydantic (which also takes bare numbers as times).
_DATE_TIME: dict[str, Any] = {"json_schema_extra": {"format": "date-time"}}


def _moment(raw: str | None, parameter: str) -> datetime | None:
    if raw is None:
        return None
    text = raw.strip().upper().replace("Z", "+00:00")
    # RFC 3339 allows a leap second; Python's datetime does not.
    text = text[:17] + "59" + text[19:] if text[17:19] == "60" else text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(parameter, f"expected an RFC 3339 date-time, got {raw!r}") from None
    # A time without an offset is read as UTC, the report's own zone.
    return assume_utc(moment)


router = APIRouter(tags=["usage"], responses=COMMON_RESPONSES)


@router.get(
    "/api/v1/usage",
    summary="Usage report (open data): per hour, dataset, caller class, hashed key and format",
    response_class=Response,
    responses={
        200: {
            "model": UsageReport,
            "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
        },
        404: {"description": "No dataset with this id that you may read"},
    },
)
def usage_report(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    start: Annotated[
        str | None, Query(alias="from", description="Start, default 7 days ago", **_DATE_TIME)
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", description="End, exclusive; default now", **_DATE_TIME)
    ] = None,
    dataset: Annotated[str | None, Query(description="One dataset id")] = None,
    key: Annotated[str | None, Query(description="One key, as its hash in this report, or `me`")] = None,
    format: Annotated[Literal["json", "csv"], Query(description="Output format")] = "json",
) -> Response:
    request.state.response_format = format
    # Counts still in memory are written first, before this session's first read takes its
    # snapshot, so the report includes the latest requests.
    ctx.usage.flush(ctx.writer_sessions)
    now = datetime.now(UTC)
    until = _moment(end, "to") or now
    since = _moment(start, "from") or _week_before(until)
    caller = caller_of(request)
    if dataset is not None:
        ids = [visible_dataset(session, caller, dataset)[0].id]
    else:
        ids = [d.id for d, _ in visible_datasets(session, caller)]
    secret = pseudonym_key(ctx.settings.secrets_dir)
    if key == "me":
        if caller.key_id is None:
            raise bad_request("key", "`me` needs a request made with an API key")
        key = hashed_key(caller.key_id, secret)
    rows = usage_rows(session, start=since, end=until, dataset_ids=ids, pseudonym_secret=secret)
    if key is not None:
        rows = [row for row in rows if row["key"] == key]
    if format == "csv":
        body = render.render_csv(list(REPORT_COLUMNS), rows, bom=False)
        headers = {"Content-Disposition": render.content_disposition("usage.csv")}
        return Response(body, media_type="text/csv; charset=utf-8; header=present", headers=headers)
    payload = {"from": render.iso_utc(since), "to": render.iso_utc(until), "rows": rows}
    return Response(orjson.dumps(payload), media_type="application/json")


def _week_before(moment: datetime) -> datetime:
    try:
        return moment - timedelta(days=7)
    except OverflowError:  # `to` in the first week of year 1: the report starts at the beginning
        return datetime.min.replace(tzinfo=UTC)

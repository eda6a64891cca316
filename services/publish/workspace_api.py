"""A department's analysis workspace over HTTP: ``GET /api/v1/workspace.duckdb``.

The caller's credential decides what the file holds (``cityos.domain.analysis.workspace``): a
department's key gets public data, its own datasets and what others granted it; an applicant's key
gets public data and its partner releases. Anonymous callers and external developers get no
workspace -- open data has its own exports -- so the route needs an identified credential.

A build reads every readable record, so it is limited: a few builds per credential per minute, a
few at once per process, and a ceiling on the records of one file. The file is built in a
temporary folder, which is removed as soon as the file is open for sending (or when the build fails).
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from cityos.domain.access import CallerKind
from cityos.kernel.ratelimit import RateLimiter
from services.publish.context import COMMON_RESPONSES, SessionDep, caller_of

PATH = "/api/v1/workspace.duckdb"
# DuckDB has no registered media type: the file is served as the bytes it is.
MEDIA_TYPE = "application/octet-stream"
# Callers whose credential names who they are, and so whose workspace it is.
WORKSPACE_CALLERS = frozenset({CallerKind.department, CallerKind.applicant})
BUILDS_PER_MINUTE = 4  # per credential: a workspace is a day's working copy, not a polling target
CONCURRENT_BUILDS = 2  # per process: each build reads the catalog and writes a file at full speed
MAX_ROWS = 5_000_000  # records of all tables together; beyond, the department asks for a snapshot
CHUNK_BYTES = 1 << 20
_FILENAME_SAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class WorkspaceGate:
    """The limits of one app: per-credential build rate and concurrent builds."""

    limiter: RateLimiter = field(default_factory=RateLimiter)
    slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(CONCURRENT_BUILDS)
    )
    max_rows: int = MAX_ROWS


def install(app: FastAPI, gate: WorkspaceGate | None = None) -> None:
    """Give ``app`` its own limits (two apps in one process never share them)."""
    app.state.workspace_gate = gate or WorkspaceGate()


def _gate(request: Request) -> WorkspaceGate:
    gate = getattr(request.app.state, "workspace_gate", None)
    assert isinstance(gate, WorkspaceGate), "the app was built without services.publish.workspace_api.install"
    return gate


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def download_name(principal: str | None, day: datetime) -> str:
    """``workspace-<who>-<YYYYMMDD>.duckdb``, with only filename-safe characters of who."""
    who = _FILENAME_SAFE.sub("_", principal or "")[:64] or "caller"
    return f"workspace-{who}-{day:%Y%m%d}.duckdb"


router = APIRouter(tags=["analysis"], responses=COMMON_RESPONSES)


@router.get(
    PATH,
    summary="Your analysis workspace: every dataset you may read, as one DuckDB file",
    description=(
        "A DuckDB database with one table per dataset the credential may read (named by the dataset "
        "id; columns are the schema's Japanese field names, and only the granted ones for a grant of "
        "some fields), plus `_datasets` (what the file holds) and `_wards` (the city's wards). "
        "Needs a department's or an applicant's credential with `records:read`. Open it with "
        "`duckdb -readonly workspace.duckdb`. Built on request; limited to "
        f"{BUILDS_PER_MINUTE} builds per credential per minute and {MAX_ROWS:,} records."
    ),
    response_class=Response,
    responses={
        200: {
            "description": "The workspace file",
            "content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        401: {"description": "No credential, or one that is malformed, unknown, revoked or expired"},
        403: {"description": "The credential is not a department's or an applicant's"},
        413: {"description": "The readable records exceed the workspace's limit"},
        429: {"description": "Over the credential's workspace builds per minute, or the server is busy"},
    },
)
def workspace(request: Request, session: SessionDep) -> Response:
    caller = caller_of(request)
    if caller.kind is CallerKind.anonymous:
        return _error(
            401,
            "credential_required",
            "a department's or an applicant's API key is needed / 部局または申請者の API キーが必要です",
            {"WWW-Authenticate": 'Bearer realm="cityos"'},
        )
    if caller.kind not in WORKSPACE_CALLERS:
        return _error(
            403,
            "forbidden",
            "workspaces are for departments and applicants; open data has its exports / "
            "ワークスペースは部局と申請者向けです",
        )
    gate = _gate(request)
    decision = gate.limiter.check(f"workspace:{caller.key_id}", BUILDS_PER_MINUTE)
    if not decision.allowed:
        return _error(429, "rate_limited", f"over {BUILDS_PER_MINUTE} workspace builds per minute; "
                      f"retry after {decision.retry_after_s} s", decision.headers())  # fmt: skip
    if not gate.slots.acquire(blocking=False):
        return _error(429, "busy", "other workspaces are being built; retry shortly / 混雑しています",
                      {"Retry-After": "10"})  # fmt: skip
    # DuckDB and pyarrow are loaded on the first build, not at start (~50 MB in every process).
    from cityos.domain.analysis.workspace import WorkspaceTooLarge, build_workspace

    folder = Path(tempfile.mkdtemp(prefix="cityos-workspace-"))
    try:
        manifest = build_workspace(session, caller, folder / "workspace.duckdb", max_rows=gate.max_rows)
    except WorkspaceTooLarge as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return _error(413, "too_large", f"{exc}; ask for a Parquet snapshot instead")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        gate.slots.release()
    chunks, size = _stream_and_forget(manifest.path, folder)
    return StreamingResponse(
        chunks,
        media_type=MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{download_name(caller.principal, manifest.built_at)}"',
            "Content-Length": str(size),
            "Cache-Control": "no-store",
            "X-Workspace-Rows": str(manifest.rows),
        },
    )


def _stream_and_forget(path: Path, folder: Path) -> tuple[Iterator[bytes], int]:
    """The file's bytes, in chunks, with its folder already removed.

    The open handle keeps the bytes readable until it is closed, so nothing is left on disk however
    the download ends -- a client that hangs up halfway included.
    """
    handle = path.open("rb")
    size = os.fstat(handle.fileno()).st_size
    shutil.rmtree(folder, ignore_errors=True)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    return chunks(), size

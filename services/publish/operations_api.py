"""Operational endpoints of the publish service: liveness, readiness and Prometheus metrics."""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.publish.context import ContextDep
from services.publish.responses import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Process is alive")
async def healthz() -> Health:
    # Answered on the event loop itself, never queued behind requests waiting for a worker thread:
    # it says whether the process can still take requests.
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Database is reachable",
    response_class=JSONResponse,
    responses={
        200: {"model": Readiness},
        503: {"description": "The database cannot be queried", "model": Readiness},
    },
)
def readyz(ctx: ContextDep) -> JSONResponse:
    try:
        with ctx.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        # The exception class is enough for an operator and reveals no connection string.
        return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition (OpenMetrics when the Accept header asks for it)",
            "content": {"text/plain": {}, "application/openmetrics-text": {}},
        }
    },
)
def prometheus_metrics(ctx: ContextDep, accept: Annotated[str | None, Header()] = None) -> Response:
    body, content_type = ctx.metrics.exposition(accept)
    return Response(body, media_type=content_type)

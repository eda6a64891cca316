"""Catalog admin API (port 8001): health, metrics, every dataset with counts, schema documents."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from cityos.kernel.db.models import Dataset, SchemaVersionRow
from cityos.kernel.schemas import schema_uri
from services.catalog.access_api import create_access_router
from services.catalog.keys_api import create_keys_router
from services.catalog.registry_api import create_registry_router
from services.catalog.release_api import create_release_router


def create_catalog_app(sessions: sessionmaker[Session], registry: CollectorRegistry) -> FastAPI:
    app = FastAPI(
        title="CityOS catalog admin API",
        description="Operators' view of the catalog: every dataset of every classification, schemas.",
        version="0.1.0",
    )

    app.include_router(create_access_router(sessions, registry))  # departments, grants, feeds, audit
    app.include_router(create_registry_router(sessions, registry))  # schema registry, dead-letter repair
    app.include_router(create_release_router(sessions, registry))  # proposals, releases
    app.include_router(create_keys_router(sessions))  # API keys: issue, list, revoke

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, str]:
        try:
            with sessions() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # any DB failure means not ready
            response.status_code = 503
            return {"status": "unavailable", "detail": type(exc).__name__}
        return {"status": "ready"}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/admin/datasets")
    def datasets() -> list[dict[str, Any]]:
        with sessions() as session:
            rows = session.scalars(select(Dataset).order_by(Dataset.id)).all()
            return [
                {
                    "id": row.id,
                    "title": {"ja": row.title_ja, "en": row.title_en},
                    "department": row.department_id,
                    "classification": row.classification,
                    "record_count": row.record_count,
                    "last_record_at": row.last_record_at.isoformat() if row.last_record_at else None,
                }
                for row in rows
            ]

    @app.get("/schemas/{dataset_id}/{version}")
    def schema(dataset_id: str, version: int) -> dict[str, Any]:
        with sessions() as session:
            row = session.scalar(
                select(SchemaVersionRow).where(SchemaVersionRow.uri == schema_uri(dataset_id, version))
            )
            if row is None:
                raise HTTPException(404, f"no schema version {version} for dataset {dataset_id}")
            return row.document

    return app

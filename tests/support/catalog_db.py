"""Set-up shared by the unit tests of the access and feeds code: a migrated catalog database that
knows the repository's datasets and schemas."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cityos.kernel.db.engine import make_engine, migrate
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from services.catalog.store import sync_schema_set


def catalog_engine(url: str) -> Engine:
    """An engine on `url`, migrated and holding `schemas/`; the caller disposes of it."""
    migrate(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        sync_schema_set(session, schema_set=load_schema_dir(REPO_ROOT / "schemas"))
    return engine

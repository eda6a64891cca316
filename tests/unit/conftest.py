"""Fixtures shared by the unit tests: a real SQLite catalog that knows the repository's datasets and
schemas (what the access, feeds, keys and registry code read at run time), and the ingest validators
for those schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cityos.kernel.db.engine import make_engine, migrate, session_factory
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT, Settings
from cityos.kernel.validation import ValidatorRegistry
from services.catalog.store import sync_schema_set


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    """URL of a new SQLite catalog file, migrated and holding `schemas/`, for code that opens the
    database itself (the CLI)."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session, session.begin():
            sync_schema_set(session, schema_set=load_schema_dir(REPO_ROOT / "schemas"))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    """An engine on the `catalog_url` catalog, disposed of after the test."""
    engine = make_engine(catalog_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on `engine` (whichever `engine` the test module uses)."""
    with session_factory(engine)() as session:
        yield session


@pytest.fixture(scope="module")
def registry() -> ValidatorRegistry:
    """Ingest's validators for the repository's schemas (compiled once per module: it is slow)."""
    return ValidatorRegistry(load_schema_dir(Settings().schemas_dir))

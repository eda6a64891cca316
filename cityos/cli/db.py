"""The catalog database for one CLI command: migrated first, its engine disposed afterwards.

Shared by the admin sub-commands (access, keys, schemas) so they open the database the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from cityos.kernel.settings import get_settings


@contextmanager
def cli_sessions() -> Iterator[sessionmaker[Session]]:
    # Imported here so that `cityos --help` and the commands without a database stay fast.
    from cityos.kernel.db.engine import make_engine, migrate, session_factory

    settings = get_settings()
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        # IMMEDIATE: an SQLite writer takes its lock up front instead of failing at its first write.
        yield session_factory(engine, sqlite_begin="IMMEDIATE")
    finally:
        engine.dispose()


@contextmanager
def cli_session() -> Iterator[Session]:
    """One session of `cli_sessions` (the caller begins and commits its transactions)."""
    with cli_sessions() as sessions, sessions() as session:
        yield session

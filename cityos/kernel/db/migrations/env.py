"""Alembic environment of the catalog database.

At runtime ``cityos.kernel.db.engine.migrate`` hands over an open connection (already inside its locked
transaction) through ``config.attributes["connection"]``. Without one -- a developer calling
``alembic.command`` with ``cityos.kernel.db.engine.alembic_config(url)`` -- the URL comes from the config,
else from the settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cityos.kernel.db.engine import make_engine, normalize_url
from cityos.kernel.db.models import Base
from cityos.kernel.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    return normalize_url(url).render_as_string(hide_password=False)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL script instead of running it (``alembic upgrade --sql``)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run on the connection given by ``migrate`` or on a fresh one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as fresh:
            _run(fresh)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

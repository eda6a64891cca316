"""Engines, sessions and migrations of the catalog database (SQLite by default, PostgreSQL in production).

Everything that depends on the backend is decided here, so service code stays portable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"

# Execution option naming how a SQLite transaction begins. DEFERRED (default) suits readers; a writer
# that reads before it writes (the catalog consumer) should use IMMEDIATE: it then waits for the write
# lock up front (busy timeout). A deferred reader that then writes while another writer is active
# fails at once with "database is locked": SQLite cannot let it wait without risking a deadlock.
# Writers use ``session_factory(engine, sqlite_begin="IMMEDIATE")``.
SQLITE_BEGIN: Final = "cityos_sqlite_begin"
SqliteBegin = Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"]
_SQLITE_BEGIN_MODES: Final = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})

# Long enough to ride out another process's migration or batch; short enough to surface a stuck lock.
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000

# Key of the PostgreSQL advisory lock that serialises concurrent migrations: the ASCII bytes
# "cityosdb" read as a big-endian integer (fits a signed bigint), so it is recognisable in pg_locks.
MIGRATION_LOCK_KEY: Final = int.from_bytes(b"cityosdb", "big")


def normalize_url(url: str | URL) -> URL:
    """The URL with PostgreSQL pinned to psycopg 3, the only PostgreSQL driver we ship."""
    if isinstance(url, str):
        # SQLAlchemy dropped the "postgres" alias, yet it is what many hosting providers hand out.
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        url = make_url(url)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _json_dumps(value: Any) -> str:
    # UTF-8 text rather than \u escapes: Japanese values stay readable (and shorter) in SQLite files.
    # The standard library rather than orjson: it keeps integers beyond 64 bits exact and refuses
    # NaN/Infinity (orjson would write null), and the documents are small enough not to matter.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 module begins transactions lazily and on its own rules; turning that off lets
    # the "begin" hook below issue the real BEGIN, so reads and writes of one unit of work share one
    # transaction (and DDL in migrations is transactional too).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers (publish API) never block the writer (catalog consumer) and vice versa.
        cursor.execute("PRAGMA journal_mode=WAL")
        # SQLite ignores foreign keys unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # synchronous stays FULL (the default), not NORMAL: Kafka offsets are committed right after
        # our commit, so a committed batch must survive a power cut, not only a process crash.
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    if mode not in _SQLITE_BEGIN_MODES:
        raise ValueError(f"{SQLITE_BEGIN} must be one of {sorted(_SQLITE_BEGIN_MODES)}, not {mode!r}")
    connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for ``url``: SQLite (file created on demand, WAL, foreign keys) or PostgreSQL (psycopg)."""
    sa_url = normalize_url(url)
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_file(sa_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            sa_url,
            echo=echo,
            # Bound parameters are records (a resident's move, a name): an error's text, a log
            # line or a dead letter's header must never carry them.
            hide_parameters=True,
            json_serializer=_json_dumps,
            json_deserializer=json.loads,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    if backend == "postgresql":
        return create_engine(
            sa_url,
            echo=echo,
            # Bound parameters are records (a resident's move, a name): an error's text, a log
            # line or a dead letter's header must never carry them.
            hide_parameters=True,
            json_serializer=_json_dumps,
            json_deserializer=json.loads,
            # Connections die behind a pool (server restarts, idle timeouts); test before use.
            pool_pre_ping=True,
        )
    raise ValueError(f"unsupported database backend {backend!r} (use sqlite or postgresql)")


def refusal_text(exc: BaseException, *, limit: int = 900) -> str:
    """What an operator may read of a database error: its kind, SQLSTATE and the schema objects it
    names, and the statement, never a value.

    ``hide_parameters`` keeps SQLAlchemy from printing the bound parameters, but the driver's own
    message can still quote them: PostgreSQL's ``DETAIL: Failing row contains (...)`` is the whole
    row, and ``invalid input syntax for type integer: "..."`` the offending value. So PostgreSQL
    errors are described by their diagnostics fields (table, column, constraint names), while
    SQLite's messages, which name constraints and columns only, are kept; any other driver's
    message is dropped.
    """
    original = getattr(exc, "orig", None)
    cause = original if isinstance(original, BaseException) else exc
    parts = [f"{type(cause).__module__.split('.')[0]}.{type(cause).__name__}"]
    diagnostics = getattr(cause, "diag", None)
    if diagnostics is not None:
        parts += [
            f"{name}={value}"
            for name in ("sqlstate", "table_name", "column_name", "constraint_name")
            if (value := getattr(diagnostics, name, None))
        ]
    elif type(cause).__module__.startswith("sqlite3"):
        parts.append(str(cause).splitlines()[0] if str(cause) else "")
    statement = getattr(exc, "statement", None)
    if isinstance(statement, str):
        parts.append(f"[SQL: {' '.join(statement.split())}]")
    return " ".join(part for part in parts if part)[:limit]


def session_factory(engine: Engine, *, sqlite_begin: SqliteBegin = "DEFERRED") -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit (API handlers serialise them).

    Writers pass ``sqlite_begin="IMMEDIATE"`` (see ``SQLITE_BEGIN``); PostgreSQL ignores it.
    """
    if sqlite_begin != "DEFERRED":
        engine = engine.execution_options(**{SQLITE_BEGIN: sqlite_begin})
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` built in code: the migrations ship inside the package, no alembic.ini.

    Developers create a revision with, e.g.::

        from alembic import command
        command.revision(alembic_config("sqlite:///var/dev.db"), message="...", autogenerate=True)
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        # ConfigParser interpolation would eat a '%' of a URL-encoded password.
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def migrate(url: str | URL, *, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``; a no-op when it is already there.

    Safe on every service start and from several processes at once: the whole upgrade runs in one
    transaction that first takes a lock (PostgreSQL advisory lock; SQLite write lock), so the second
    process waits, then finds the schema current and does nothing.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Transaction-scoped: released by the commit or rollback below, even on error.
                    connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
                config = alembic_config()
                # env.py runs on this connection; being inside our transaction, Alembic adds none.
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
    finally:
        engine.dispose()
